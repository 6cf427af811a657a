"""Kinds that attack every model of an evaluation: clean predictions, one attack, sweeps over ε, minimum-norm
attacks, transfer, the robust ensemble and the DeepFool paper's ρ_adv."""
from __future__ import annotations

from ...attacks import get_attack
from ...checks import check_choice
from ...evaluate import (clean_table, evaluate_attack, minimal_norms, rho_adv_rows, robust_evaluation, sweep,
                         transfer_rows)
from ..spec import per_model, register_kind, threat_of


# what evaluate_attack itself takes beside the attack's own parameters (the kinds pass the rest)
_ROWS_OPTIONS = {"budget", "output", "keep_inputs"}


def _attack_options(params: dict, extra: set) -> None:
    """The names an attack kind passes on: the attack's own parameters, or evaluate_attack's options."""
    spec = get_attack(params["attack"])
    spec.check_params(extra - _ROWS_OPTIONS)


@register_kind("clean", "clean predictions of every model (evaluate.clean_table)")
def _clean(models, data, *, seed, batch_size):
    return per_model(models, lambda m: clean_table(m, data, batch_size=batch_size))


@register_kind("attack", "one attack on every model (evaluate.evaluate_attack); params: attack, threat, its parameters",
               check=_attack_options)
def _attack(models, data, *, seed, batch_size, attack, threat=None, **params):
    t = threat_of(threat)
    return per_model(models, lambda m: evaluate_attack(m, data, attack=attack, threat=t, batch_size=batch_size,
                                                         seed=seed, progress=False, **params))


@register_kind("sweep", "attacks over a grid of ε (evaluate.sweep); params: attacks, norm, eps_grid")
def _sweep(models, data, *, seed, batch_size, attacks, norm, eps_grid):
    return sweep(models, data, attacks=attacks, norm=norm, eps_grid=eps_grid, batch_size=batch_size, seed=seed,
                 progress=False)


@register_kind("minimal_norms", "minimum-norm attacks (evaluate.minimal_norms); "
                                "params: attacks {label: [name, params]}")
def _minimal(models, data, *, seed, batch_size, attacks):
    return minimal_norms(models, data, {k: (a, dict(p)) for k, (a, p) in attacks.items()}, progress=False)


@register_kind("transfer", "attacks crafted on every model, scored on every model (evaluate.transfer_rows); "
                      "params: attack, threat, its parameters", check=_attack_options)
def _transfer(models, data, *, seed, batch_size, attack, threat, **params):
    return transfer_rows(models, data, attack=attack, threat=threat_of(threat), batch_size=batch_size, seed=seed,
                         progress=False, **params)


@register_kind("transferred", "an attack crafted on the model `source` and scored on every other model (the transfer "
                         "attack, evaluate.evaluate_attack); params: source, source_attack, threat, output, "
                         "source_params")
def _transferred(models, data, *, seed, batch_size, source, source_attack, threat, output="logits",
                 source_params=None):
    check_choice(source, models, "source model")
    targets = {k: m for k, m in models.items() if k != source}
    return per_model(targets, lambda m: evaluate_attack(
        m, data, attack="transfer", threat=threat_of(threat), surrogate=models[source], source_attack=source_attack,
        source_params=source_params or {}, output=output, batch_size=batch_size, seed=seed, progress=False))


@register_kind("robust", "the adaptive evaluation (evaluate.robust_evaluation): the cascade APGD-CE → APGD-T → "
                    "Square, escalated where the model's gradients mislead; params: threats, steps, restarts, targets, "
                    "queries, escalation_queries, eot_draws, surrogate (the name of one of the models, not evaluated)")
def _robust(models, data, *, seed, batch_size, threats, steps=100, restarts=1, targets=9, queries=5000,
            escalation_queries=None, eot_draws=8, surrogate=None):
    return robust_evaluation(models, data, [threat_of(t) for t in threats], steps=steps, restarts=restarts,
                             targets=targets, queries=queries, escalation_queries=escalation_queries,
                             surrogate=surrogate, eot_draws=eot_draws, batch_size=batch_size, seed=seed,
                             progress=False)


@register_kind("rho_adv", "the DeepFool paper's ρ_adv rows, DeepFool against FGSM at the ε that fools `fgsm_rate` "
                     "(evaluate.rho_adv_rows; one block: declare block ≥ the subset); params: deepfool, fgsm_rate",
               whole_subset=True)
def _rho_adv(models, data, *, seed, batch_size, deepfool, fgsm_rate):
    return rho_adv_rows(models, data, deepfool_params=deepfool, fgsm_rate=fgsm_rate)
