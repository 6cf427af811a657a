"""Figures of the book: labelled axes with units, confidence bands, example grids."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch

from .threat import NORM_SYMBOLS, geometry

NORM_LABEL = NORM_SYMBOLS


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
    dists = geometry(norm).norm(delta)
    for j in range(n):
        d = delta[j]
        scale = d.abs().max().clamp_min(1e-12)
        dist = dists[j].item()
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


def attack_grid(model, data, *, attack: str, threat=None, n: int = 8, seed: int | None = None,
                generator=None, title: str | None = None, **params):
    """Attack the first ``n`` examples of ``data`` and draw :func:`example_grid`.

    ``threat`` bounds the attack (required by bounded attacks, optional for minimum-norm ones,
    which take their ``norm`` among ``params``); the perturbation row is measured in the norm
    the attack works in. Random starts come from ``generator`` or a generator seeded with ``seed``.
    """
    from . import seeded_generator
    from .attacks import get_attack, run_attack
    from .evaluate import check_adversarial
    from .models import predict

    if seed is not None:
        generator = seeded_generator(seed, data.x.device)
    x, y = data.images()[:n], data.y[:n]
    kwargs = dict(params, generator=generator)
    if threat is not None:
        kwargs["threat"] = threat
    res = run_attack(attack, model, x, y, **kwargs)
    check_adversarial(x, res.x_adv, threat)
    norm = get_attack(attack).norm_for(threat, params)
    return example_grid(x, res.x_adv, clean_pred=predict(model, x).tolist(), adv_pred=res.pred.tolist(),
                        labels=y.tolist(), classes=data.classes, norm=norm,
                        title=title or (f"{attack}, {threat}" if threat
                                        else f"{attack} (minimum {NORM_LABEL[norm]} norm)"))


def accuracy_panels(acc: pd.DataFrame, *, panel: str, hue: str, title: str | None = None):
    """One :func:`accuracy_vs_eps` panel per value of ``panel`` (e.g. per attack), side by side."""
    keys = list(dict.fromkeys(acc[panel]))
    fig, axes = plt.subplots(1, len(keys), figsize=(5.2 * len(keys), 3.8), squeeze=False)
    for ax, k in zip(axes[0], keys):
        g = acc[acc[panel] == k]
        accuracy_vs_eps(g, hue=hue, ax=ax, title=NORM_LABEL.get(k, str(k)),
                        norm=g["norm"].iloc[0] if "norm" in g else None)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def transfer_heatmap(matrix: pd.DataFrame, *, title: str | None = None):
    """Heatmap of accuracy (%) of each target model (columns) on inputs crafted on each source (rows)."""
    pivot = 100 * matrix.pivot(index="source", columns="target", values="accuracy")
    order = list(dict.fromkeys(matrix["source"]))
    pivot = pivot.loc[order, order]
    fig, ax = plt.subplots(figsize=(1.6 * len(order) + 2, 1.2 * len(order) + 1.2))
    sns.heatmap(pivot, annot=True, fmt=".1f", vmin=0, vmax=100, cmap="viridis", ax=ax,
                cbar_kws={"label": "target accuracy (%)"})
    ax.set_xlabel("target model (evaluated)")
    ax.set_ylabel("source model (attacked)")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def norm_scatter(rows: pd.DataFrame, *, x_attack: str, y_attack: str, x_norm: str = "l2", y_norm: str = "linf",
                 title: str | None = None):
    """Per-example minimal norms of two attacks against each other, one colour per model."""
    ok = rows[rows.clean_correct & rows.success]
    a = ok[ok.attack == x_attack].set_index(["model", "example"])[x_norm]
    b = ok[ok.attack == y_attack].set_index(["model", "example"])[y_norm]
    both = pd.concat([a.rename("x"), b.rename("y")], axis=1, join="inner").reset_index()
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    sns.scatterplot(data=both, x="x", y="y", hue="model", s=14, alpha=0.7, ax=ax)
    ax.set_xlabel(f"{x_attack}: minimal {NORM_LABEL[x_norm]} norm (pixel units)")
    ax.set_ylabel(f"{y_attack}: minimal {NORM_LABEL[y_norm]} norm (pixel units)")
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
