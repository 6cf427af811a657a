"""Per-example evaluation tables and accuracy with exact (Clopper-Pearson) intervals.

Every table and curve in the book is aggregated from the rows :func:`evaluate_attack` returns.
"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch
from scipy import stats

from .attacks import get_attack, run_attack
from .attacks.base import eval_mode
from .checks import check_images
from .data import Dataset, to_float
from .errors import BudgetError, InputError
from .progress import bar
from .threat import ATOL, ThreatModel


def check_adversarial(x: torch.Tensor, x_adv: torch.Tensor, threat: ThreatModel | None = None,
                      atol: float = ATOL) -> None:
    """Refuse adversarial inputs with NaNs, outside the pixel box, or outside the threat's ball."""
    if x_adv.shape != x.shape:
        raise BudgetError(f"x_adv has shape {tuple(x_adv.shape)}, x has {tuple(x.shape)}")
    if not torch.isfinite(x_adv).all():
        raise BudgetError(f"x_adv holds NaN or infinite values in {int((~torch.isfinite(x_adv)).flatten(1).any(1).sum())} examples")
    lo, hi = x_adv.min().item(), x_adv.max().item()
    if lo < -atol or hi > 1 + atol:
        raise BudgetError(f"x_adv leaves the pixel box [0, 1]: values in [{lo:.6g}, {hi:.6g}]")
    if threat is not None:
        d = threat.distance(x, x_adv)
        if (d > threat.eps + atol).any():
            raise BudgetError(f"x_adv leaves the {threat}: largest distance {d.max().item():.6g}")


@torch.no_grad()
def predict(model, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Predicted classes (N,) of the eval-mode model; the caller's mode is restored."""
    with eval_mode(model):
        return torch.cat([model(x[i:i + batch_size]).argmax(1) for i in range(0, x.shape[0], batch_size)])


def clean_table(model, data: Dataset, batch_size: int = 1024) -> pd.DataFrame:
    """One row per example: dataset index, label, prediction, correct."""
    x, y = data.images(), data.y
    pred = predict(model, x, batch_size)
    return pd.DataFrame({
        "example": data.indices.cpu().numpy(), "label": y.cpu().numpy(),
        "pred": pred.cpu().numpy(), "correct": (pred == y).cpu().numpy(),
    })


def evaluate_attack(model, data: Dataset, *, attack: str, threat: ThreatModel | None,
                    batch_size: int = 256, generator: torch.Generator | None = None,
                    progress: bool = True, **params) -> pd.DataFrame:
    """Attack every example of ``data`` and return one row per example.

    Columns: ``example`` (index in the split), ``label``, ``clean_pred``, ``clean_correct``,
    ``adv_pred``, ``adv_correct``, ``linf`` and ``l2`` (perturbation norms in pixel units),
    ``forwards`` / ``backwards`` (passes spent, per example), ``seconds`` (wall time per example),
    plus ``attack``, ``norm`` and ``eps`` so several runs concatenate into one long table.

    Budgets are asserted before returning (:func:`check_adversarial`); a violation is an error,
    never a silently reported number.
    """
    get_attack(attack)  # an unknown name fails before any work
    rows = []
    it = range(0, len(data), batch_size)
    for i in bar(it, desc=f"{attack} {threat.norm + ' ε=' + format(threat.eps, '.4g') if threat else ''}",
                 enabled=progress, leave=False):
        x = to_float(data.x[i:i + batch_size])
        y = data.y[i:i + batch_size]
        check_images(x)
        clean = predict(model, x)
        t0 = time.perf_counter()
        kwargs = dict(params, generator=generator)
        if threat is not None:
            kwargs["threat"] = threat
        res = run_attack(attack, model, x, y, **kwargs)
        seconds = time.perf_counter() - t0
        check_adversarial(x, res.x_adv, threat)
        adv = predict(model, res.x_adv)
        delta = (res.x_adv - x).flatten(1)
        n = x.shape[0]
        rows.append(pd.DataFrame({
            "example": data.indices[i:i + batch_size].cpu().numpy(),
            "label": y.cpu().numpy(),
            "clean_pred": clean.cpu().numpy(), "clean_correct": (clean == y).cpu().numpy(),
            "adv_pred": adv.cpu().numpy(), "adv_correct": (adv == y).cpu().numpy(),
            "linf": delta.abs().amax(1).cpu().numpy(), "l2": delta.norm(dim=1).cpu().numpy(),
            "forwards": res.forwards / n, "backwards": res.backwards / n, "seconds": seconds / n,
        }))
    df = pd.concat(rows, ignore_index=True)
    df.insert(0, "attack", attack)
    df.insert(1, "norm", threat.norm if threat else None)
    df.insert(2, "eps", threat.eps if threat else np.nan)
    return df


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact binomial confidence interval for a proportion k / n (scipy's ``binomtest``)."""
    if n <= 0:
        raise InputError("an accuracy needs at least one example")
    ci = stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="exact")
    return float(ci.low), float(ci.high)


def accuracy(df: pd.DataFrame, column: str = "adv_correct", by=None, confidence: float = 0.95) -> pd.DataFrame:
    """Accuracy of a boolean column with its Clopper-Pearson interval, optionally per group.

    Returns columns ``n``, ``correct``, ``accuracy``, ``ci_low``, ``ci_high`` (fractions in [0, 1]).
    """
    def one(g):
        k, n = int(g[column].sum()), len(g)
        lo, hi = clopper_pearson(k, n, confidence)
        return pd.Series({"n": n, "correct": k, "accuracy": k / n, "ci_low": lo, "ci_high": hi})

    if by is None:
        return one(df).to_frame().T.astype({"n": int, "correct": int})
    out = df.groupby(by, sort=True)[[column]].apply(one).reset_index()
    return out.astype({"n": int, "correct": int})


def format_accuracy(row, digits: int = 1) -> str:
    """'97.3% [96.2, 98.1]' from a row of :func:`accuracy`."""
    return (f"{100 * row['accuracy']:.{digits}f}% "
            f"[{100 * row['ci_low']:.{digits}f}, {100 * row['ci_high']:.{digits}f}]")


def sweep(model, data: Dataset, *, attacks: dict, norm: str, eps_grid, batch_size: int = 256,
          seed: int = 0, progress: bool = True) -> pd.DataFrame:
    """Per-example rows for every (attack, ε) pair; ``attacks`` maps a name to its parameters.

    Each (attack, ε) run draws its random starts from a generator seeded with ``seed`` on the
    data's device, so adding a budget to the grid does not change the others' numbers.
    ε = 0 is evaluated too (the attack then cannot move; its accuracy is the clean accuracy).
    """
    frames = []
    for name, params in attacks.items():
        for eps in bar(list(eps_grid), desc=name, enabled=progress):
            gen = torch.Generator(device=data.x.device).manual_seed(seed)
            frames.append(evaluate_attack(model, data, attack=name, threat=ThreatModel(norm, eps),
                                          batch_size=batch_size, generator=gen, progress=False, **params))
    return pd.concat(frames, ignore_index=True)


def accuracy_table(acc: pd.DataFrame, index=("attack", "eps"), digits: int = 1) -> pd.DataFrame:
    """A display table from :func:`accuracy`: accuracy and its 95% interval in percent, and n."""
    out = pd.DataFrame({
        "accuracy (%)": (100 * acc["accuracy"]).round(digits),
        "95% CI (%)": [f"[{100 * lo:.{digits}f}, {100 * hi:.{digits}f}]" for lo, hi in zip(acc["ci_low"], acc["ci_high"])],
        "n": acc["n"],
    })
    cols = [c for c in index if c in acc]
    if cols:
        out.index = pd.MultiIndex.from_frame(acc[cols]) if len(cols) > 1 else pd.Index(acc[cols[0]])
    return out


def format_columns(df: pd.DataFrame, formats: dict[str, str], default: str = "{:.3g}") -> pd.DataFrame:
    """A display copy with every float column rendered by its format string (``default`` otherwise).

    Plain strings rather than a pandas Styler: the Styler's HTML carries a random id, which a
    regression test of the rendered table would flag on every run.
    """
    out = df.copy()
    for col in out.columns:
        if col in formats:
            out[col] = [formats[col].format(v) for v in out[col]]
        elif pd.api.types.is_float_dtype(out[col]):
            out[col] = [default.format(v) for v in out[col]]
    return out
