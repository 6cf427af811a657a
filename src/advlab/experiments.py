"""Compositions the chapters need: several models, minimal perturbations, transfer matrices.

Each returns a per-example or per-pair DataFrame; aggregation and display stay in ``evaluate``.
"""
from __future__ import annotations

import math
import time

import pandas as pd
import torch

from .attacks import fgsm, run_attack
from .data import Dataset
from .evaluate import check_adversarial, clopper_pearson, predict
from .progress import bar
from .threat import ThreatModel
from .training import TrainConfig, load_or_train


def load_models(configs: dict[str, TrainConfig], device=None, progress: bool = True):
    """``{name: model}`` and a table of their checkpoints (trained now or loaded, clean accuracy)."""
    models, rows = {}, []
    for name, cfg in configs.items():
        model, info = load_or_train(cfg, device=device, progress=progress)
        models[name] = model
        rows.append({"model": name, "architecture": cfg.model, "dataset": cfg.dataset, "epochs": cfg.epochs,
                     "train examples": cfg.train_subset or "all",
                     "parameters": sum(p.numel() for p in model.parameters())})
    return models, pd.DataFrame(rows).set_index("model")


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def fgsm_eps_for_rate(model, x, y, rate: float = 0.9, norm: str = "linf", hi: float = 1.0,
                      iterations: int = 14) -> float:
    """Smallest FGSM budget (bisection) that misclassifies at least ``rate`` of the batch.

    This is how the DeepFool paper makes FGSM comparable to a minimum-norm attack: the budget is
    set so that FGSM fools 90% of the data. Returns ``hi`` if even that budget falls short.
    FGSM's fooling rate need not grow with ε; the result is the upper end of the final bisection
    bracket, whose lower end (2^-iterations below) fools fewer than ``rate``.
    """
    needed = math.ceil(rate * len(y) - 1e-9)  # count, not a float32 mean: 54/60 must reach 0.9

    def enough(eps):
        adv = fgsm(model, x, y, threat=ThreatModel(norm, eps)).x_adv
        return int((predict(model, adv) != y).sum()) >= needed

    if not enough(hi):
        return hi
    lo = 0.0
    for _ in range(iterations):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if enough(mid) else (mid, hi)
    return hi


def rho_adv_table(models: dict, data: Dataset, *, deepfool_params: dict | None = None,
                  fgsm_rate: float = 0.9) -> pd.DataFrame:
    """The DeepFool paper's Table 1: ρ_adv = mean ‖r‖₂/‖x‖₂ and time per example, DeepFool vs FGSM.

    ρ_adv is averaged over the examples each attack fools; FGSM's budget is the smallest L∞ ε
    that fools ``fgsm_rate`` of the examples (found by bisection, its cost not counted in the time).
    """
    x, y = data.images(), data.y
    xnorm = x.flatten(1).norm(dim=1)
    rows = []
    for name, model in models.items():
        err = (predict(model, x) != y).float().mean().item()
        df, t_df = _timed(lambda: run_attack("deepfool", model, x, y, **(deepfool_params or {})))
        check_adversarial(x, df.x_adv)
        r_df = (df.x_adv - x).flatten(1).norm(dim=1) / xnorm
        eps = fgsm_eps_for_rate(model, x, y, fgsm_rate)
        fg, t_fg = _timed(lambda: fgsm(model, x, y, threat=ThreatModel("linf", eps)))
        fooled = predict(model, fg.x_adv) != y
        r_fg = (fg.x_adv - x).flatten(1).norm(dim=1) / xnorm
        rows.append({
            "model": name, "test error (%)": 100 * err,
            "ρ_adv DeepFool": r_df[df.success].mean().item(),
            "DeepFool success (%)": 100 * df.success.float().mean().item(),
            "DeepFool time": 1e3 * t_df / len(x),
            "ρ_adv FGSM": r_fg[fooled].mean().item(), "FGSM ε (L∞)": eps,
            "FGSM fooled (%)": 100 * fooled.float().mean().item(), "FGSM time": 1e3 * t_fg / len(x),
        })
    return pd.DataFrame(rows).set_index("model")


def transfer_matrix(models: dict, data: Dataset, *, attack: str, threat: ThreatModel, batch_size: int = 500,
                    seed: int = 0, progress: bool = True, **params) -> pd.DataFrame:
    """Accuracy of every target model on adversarial inputs crafted on every source model.

    One row per (source, target) with ``n``, ``correct``, ``accuracy``, ``ci_low``, ``ci_high``;
    the diagonal is the white-box accuracy.
    """
    x, y = data.images(), data.y
    rows = []
    for src, m_src in bar(models.items(), desc="transfer", enabled=progress):
        gen = torch.Generator(device=x.device).manual_seed(seed)
        adv = torch.cat([run_attack(attack, m_src, x[i:i + batch_size], y[i:i + batch_size], threat=threat,
                                    generator=gen, **params).x_adv for i in range(0, len(x), batch_size)])
        check_adversarial(x, adv, threat)
        for tgt, m_tgt in models.items():
            k, n = int((predict(m_tgt, adv) == y).sum()), len(y)
            lo, hi = clopper_pearson(k, n)
            rows.append({"source": src, "target": tgt, "n": n, "correct": k, "accuracy": k / n,
                         "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows)


def minimal_norms(models: dict, data: Dataset, attacks: dict[str, tuple[str, dict]],
                  progress: bool = True) -> pd.DataFrame:
    """Per-example minimal perturbations: one row per (model, attack, example).

    ``attacks`` maps a label to ``(attack name, parameters)``; columns ``l2`` and ``linf`` hold
    the perturbation norms and ``success`` whether the input was misclassified.
    """
    x, y = data.images(), data.y
    frames = []
    for mname, model in bar(models.items(), desc="minimal norms", enabled=progress):
        for label, (attack, params) in attacks.items():
            res, secs = _timed(lambda: run_attack(attack, model, x, y, **params))
            check_adversarial(x, res.x_adv)
            d = (res.x_adv - x).flatten(1)
            clean_ok = predict(model, x) == y
            frames.append(pd.DataFrame({
                "model": mname, "attack": label, "example": data.indices.cpu().numpy(),
                "clean_correct": clean_ok.cpu().numpy(), "success": res.success.cpu().numpy(),
                "l2": d.norm(dim=1).cpu().numpy(), "linf": d.abs().amax(1).cpu().numpy(),
                "seconds": secs / len(x),
            }))
    return pd.DataFrame(pd.concat(frames, ignore_index=True))


def norm_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Median and quartiles of the minimal norms over examples the attack fooled and that were
    correctly classified to begin with, with the success rate and its 95% interval."""
    ok = rows[rows.clean_correct]
    out = []
    for (m, a), g in ok.groupby(["model", "attack"], sort=False):
        s = g[g.success]
        lo, hi = clopper_pearson(int(g.success.sum()), len(g))
        out.append({"model": m, "attack": a, "n": len(g),
                    "success (%)": 100 * g.success.mean(), "95% CI (%)": f"[{100 * lo:.1f}, {100 * hi:.1f}]",
                    "median L2": s.l2.median(), "median L∞": s.linf.median(),
                    "L2 IQR": f"[{s.l2.quantile(0.25):.3f}, {s.l2.quantile(0.75):.3f}]"})
    return pd.DataFrame(out).set_index(["model", "attack"])
