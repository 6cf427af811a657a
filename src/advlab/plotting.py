"""Figures of the book: labelled axes with units, confidence bands, example grids."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch

NORM_LABEL = {"linf": "L∞", "l2": "L2"}


def accuracy_vs_eps(acc: pd.DataFrame, *, hue: str = "attack", ax=None, title: str | None = None,
                    norm: str | None = None, confidence: float = 0.95):
    """Accuracy (%) against ε with shaded Clopper-Pearson bands; ``acc`` from ``evaluate.accuracy``."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    palette = sns.color_palette("colorblind", n_colors=max(1, acc[hue].nunique()))
    for color, (name, g) in zip(palette, acc.groupby(hue, sort=False)):
        g = g.sort_values("eps")
        ax.plot(g["eps"], 100 * g["accuracy"], marker="o", ms=4, color=color, label=str(name))
        ax.fill_between(g["eps"], 100 * g["ci_low"], 100 * g["ci_high"], color=color, alpha=0.2, lw=0)
    norm = norm or (acc["norm"].iloc[0] if "norm" in acc else None)
    ax.set_xlabel(f"ε ({NORM_LABEL.get(norm, norm)} radius, pixel units of [0, 1])")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    ax.legend(title=f"{hue} ({int(confidence * 100)}% CI shaded)")
    if title:
        ax.set_title(title)
    return ax


def _img(t: torch.Tensor) -> np.ndarray:
    a = t.detach().cpu().float()
    return a[0].numpy() if a.shape[0] == 1 else a.permute(1, 2, 0).numpy()


def example_grid(x: torch.Tensor, x_adv: torch.Tensor, *, clean_pred, adv_pred, labels, classes,
                 title: str | None = None, norm: str = "linf"):
    """Rows: clean input, perturbation rescaled to the full grey range, adversarial input.

    Column titles give the true label and the predictions; the perturbation row states its norm.
    """
    n = x.shape[0]
    fig, axes = plt.subplots(3, n, figsize=(1.6 * n, 5.2), squeeze=False)
    gray = x.shape[1] == 1
    delta = (x_adv - x).detach().cpu()
    for j in range(n):
        d = delta[j]
        scale = d.abs().max().clamp_min(1e-12)
        dist = d.abs().max().item() if norm == "linf" else d.norm().item()
        panels = [(_img(x[j]), f"y={classes[labels[j]]}\npred {classes[clean_pred[j]]}"),
                  (_img(d / (2 * scale) + 0.5), f"{NORM_LABEL[norm]} = {dist:.3f}"),
                  (_img(x_adv[j]), f"pred {classes[adv_pred[j]]}")]
        for i, (im, t) in enumerate(panels):
            ax = axes[i, j]
            ax.imshow(im.clip(0, 1), cmap="gray" if gray else None, vmin=0, vmax=1)
            ax.set_title(t, fontsize=8, color=("C3" if i == 2 and adv_pred[j] != labels[j] else "black"))
            ax.set_xticks([])
            ax.set_yticks([])
    for i, name in enumerate(["clean", "perturbation\n(rescaled)", "adversarial"]):
        axes[i, 0].set_ylabel(name, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def attack_grid(model, data, *, attack: str, threat, n: int = 8, generator=None, title: str | None = None,
                **params):
    """Attack the first ``n`` examples of ``data`` and draw :func:`example_grid`."""
    from .attacks import run_attack
    from .evaluate import check_adversarial, predict

    x, y = data.images()[:n], data.y[:n]
    res = run_attack(attack, model, x, y, threat=threat, generator=generator, **params)
    check_adversarial(x, res.x_adv, threat)
    return example_grid(x, res.x_adv, clean_pred=predict(model, x).tolist(),
                        adv_pred=predict(model, res.x_adv).tolist(), labels=y.tolist(),
                        classes=data.classes, norm=threat.norm,
                        title=title or f"{attack.upper()}, {threat}")
