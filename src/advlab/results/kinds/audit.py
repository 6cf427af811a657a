"""The gradient-masking audit as an evaluation kind."""
from __future__ import annotations

from ...evaluate import gradient_masking_audit
from ...evaluate.adaptive import surrogate_of
from ..spec import per_model, register_kind, threat_of


@register_kind("audit", "the gradient-masking audit (evaluate.gradient_masking_audit) of every model: one row per "
                   "check; the audit's accuracies are over the whole subset, so declare block ≥ the subset; "
                   "params: threat, steps, queries, draws, surrogate (the name of one of the models: the transfer "
                   "check's source, not audited)", whole_subset=True)
def _audit(models, data, *, seed, batch_size, threat, steps, queries, draws, surrogate=None):
    source = surrogate_of(models, surrogate)  # the transfer check's source, not audited itself
    models = {k: m for k, m in models.items() if k != surrogate}
    return per_model(models, lambda m: gradient_masking_audit(m, data, threat_of(threat), steps=steps,
                                                               queries=queries, draws=draws, seed=seed,
                                                               batch_size=batch_size, surrogate=source))
