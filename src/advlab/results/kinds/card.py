"""The model card as an evaluation kind: what a model is, measured on the evaluation's examples."""
from __future__ import annotations

from collections import Counter

import pandas as pd

from ...certify import relu_count
from ...defenses import EOT
from ...errors import InputError
from ...evaluate.audit import PROBE_N, is_randomized
from ..spec import register_kind


def _layer_kinds(model) -> str:
    leaves = [m for m in model.modules() if not list(m.children())]
    # a TorchScript module keeps its class name in original_name
    counts = Counter(getattr(m, "original_name", None) or type(m).__name__ for m in leaves)
    return ", ".join(f"{k} ×{v}" if v > 1 else k for k, v in counts.items())


@register_kind("model_card", "what each model is: parameter count, layer types, whether it answers an input "
                             "differently from call to call (eval mode) and is evaluated with EOT, and whether bound "
                             "propagation (IBP, CROWN) supports every layer, or why not; one row per model")
def _card(models, data, *, seed, batch_size):
    x = data.images()[:PROBE_N]
    rows = []
    for name, m in models.items():
        try:
            bounds, relus = "supported", relu_count(m, x)
        except InputError as e:
            bounds, relus = str(e), None
        rows.append({"model": name, "parameters": sum(p.numel() for p in m.parameters()),
                     "layers": _layer_kinds(m), "randomized": is_randomized(m, x),
                     "eot_draws": m.draws if isinstance(m, EOT) else None, "bounds": bounds, "relus": relus})
    return pd.DataFrame(rows)
