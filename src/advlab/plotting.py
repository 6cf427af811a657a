"""Figures of the book: labelled axes with units, confidence bands, example grids."""
from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator
import numpy as np
import pandas as pd
import seaborn as sns
import torch

from .threat import NORM_SYMBOLS, geometry

NORM_LABEL = NORM_SYMBOLS


def accuracy_vs_eps(acc: pd.DataFrame, *, hue: str = "attack", ax=None, title: str | None = None,
                    norm: str | None = None, confidence: float = 0.95, x: str = "eps", xlabel: str | None = None,
                    logx: bool = False):
    """Accuracy (%) against ε with shaded Clopper-Pearson bands; ``acc`` from ``evaluate.accuracy``.

    ``x`` names another column for the horizontal axis (with its ``xlabel``), e.g. a query budget.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    palette = sns.color_palette("colorblind", n_colors=max(1, acc[hue].nunique()))
    for color, (name, g) in zip(palette, acc.groupby(hue, sort=False)):
        g = g.sort_values(x)
        ax.plot(g[x], 100 * g["accuracy"], marker="o", ms=3, color=color, label=str(name))
        ax.fill_between(g[x], 100 * g["ci_low"], 100 * g["ci_high"], color=color, alpha=0.2, lw=0)
    if logx:
        ax.set_xscale("log")
    norm = norm or (acc["norm"].iloc[0] if "norm" in acc else None)
    ax.set_xlabel(xlabel or f"ε ({NORM_LABEL.get(norm, norm)} radius, pixel units of [0, 1])")
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


def attack_grid(rows: pd.DataFrame, data, *, n: int = 8, title: str | None = None):
    """:func:`example_grid` of the first ``n`` adversarial inputs an attack's rows kept
    (:func:`~advlab.evaluate.evaluate_attack` with ``keep_inputs``), rebuilt from ``data``'s clean
    images; the perturbation row is measured in the norm of the rows' threat model (draws only)."""
    from .evaluate import adversarial_inputs

    x_adv, kept = adversarial_inputs(rows, data)
    x_adv, kept = x_adv[:n], kept.iloc[:n]
    x = data.examples(kept.example).images()
    attack, norm, eps = kept.attack.iloc[0], kept.norm.iloc[0], kept.eps.iloc[0]
    threat = f"{NORM_LABEL[norm]} ε = {eps:.4g}" if eps == eps else f"minimum {NORM_LABEL[norm]} norm"
    return example_grid(x, x_adv, clean_pred=kept.clean_pred.tolist(), adv_pred=kept.adv_pred.tolist(),
                        labels=kept.label.tolist(), classes=data.classes, norm=norm,
                        title=title or f"{attack}, {threat}")


# Widest figure, in inches: the book's column at 1280 pixels shows about this much at a legible scale
# (three 5.2-inch panels side by side were shrunk to half size, their ticks and legends unreadable).
PAGE_WIDTH = 10.5


def panel_grid(n: int, width: float, height: float, **kw):
    """``n`` panels of ``width`` × ``height`` inches, as many per row as :data:`PAGE_WIDTH` holds;
    returns the figure and the ``n`` axes in reading order (spare cells of the last row hidden)."""
    cols = max(1, min(n, int(PAGE_WIDTH // width)))
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False, **kw)
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def accuracy_panels(acc: pd.DataFrame, *, panel: str, hue: str, title: str | None = None):
    """One :func:`accuracy_vs_eps` panel per value of ``panel`` (e.g. per attack), side by side."""
    keys = list(dict.fromkeys(acc[panel]))
    fig, axes = panel_grid(len(keys), 5.2, 3.8)
    for ax, k in zip(axes, keys):
        g = acc[acc[panel] == k]
        accuracy_vs_eps(g, hue=hue, ax=ax, title=NORM_LABEL.get(k, str(k)),
                        norm=g["norm"].iloc[0] if "norm" in g else None)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def transfer_heatmap(matrix: pd.DataFrame, *, title: str | None = None, ax=None):
    """Heatmap of accuracy (%) of each target model (columns) on inputs crafted on each source (rows)."""
    pivot = 100 * matrix.pivot(index="source", columns="target", values="accuracy")
    order = list(dict.fromkeys(matrix["source"]))
    pivot = pivot.loc[order, order]
    if ax is None:
        _, ax = plt.subplots(figsize=(1.6 * len(order) + 2, 1.2 * len(order) + 1.2))
    sns.heatmap(pivot, annot=True, fmt=".1f", vmin=0, vmax=100, cmap="viridis", ax=ax,
                cbar_kws={"label": "target accuracy (%)"})
    ax.set_xlabel("target model (evaluated)")
    ax.set_ylabel("source model (attacked)")
    if title:
        ax.set_title(title)
    ax.figure.tight_layout()
    return ax.figure


def transfer_panels(matrix: pd.DataFrame, *, panel: str = "attack", title: str | None = None):
    """One :func:`transfer_heatmap` per value of ``panel`` (e.g. per source attack), side by side."""
    keys = list(dict.fromkeys(matrix[panel]))
    k = matrix["source"].nunique()
    fig, axes = panel_grid(len(keys), 1.3 * k + 2.2, 1.1 * k + 1.6)
    for ax, key in zip(axes, keys):
        transfer_heatmap(matrix[matrix[panel] == key], title=str(key), ax=ax)
    if title:
        fig.suptitle(title)
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


def norm_distributions(rows: pd.DataFrame, *, attack: str, norm: str = "l2", title: str | None = None):
    """Empirical distribution (ECDF) of the minimal perturbation an attack found per example, one curve
    per model; over the correctly classified examples it fooled (:func:`~advlab.evaluate.norm_summary`'s rule)."""
    ok = rows[rows.clean_correct & rows.success & (rows.attack == attack)]
    fig, ax = plt.subplots(figsize=(6, 3.8))
    sns.ecdfplot(data=ok, x=norm, hue="model", ax=ax)
    ax.set_xlabel(f"{attack}: minimal {NORM_LABEL[norm]} norm (pixel units)")
    ax.set_ylabel("fraction of fooled examples")
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def accuracy_vs_queries(acc: pd.DataFrame, *, hue: str = "attack", yardsticks: dict | None = None,
                        title: str | None = None, confidence: float = 0.95):
    """Robust accuracy (%) against the query budget per example (log scale), one curve per ``hue``.

    ``acc`` from :func:`advlab.evaluate.accuracy_by_queries`; ``yardsticks`` maps a label to an
    accuracy row (e.g. a white-box attack's), drawn as a dashed line with its interval.
    """
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    accuracy_vs_eps(acc, hue=hue, ax=ax, x="budget", xlabel="queries per example (log scale)", logx=True,
                    confidence=confidence)
    for color, (label, row) in zip(sns.color_palette("dark", n_colors=max(1, len(yardsticks or {}))),
                                   (yardsticks or {}).items()):
        ax.axhline(100 * row["accuracy"], color=color, ls="--", lw=1.2, label=label)
        ax.axhspan(100 * row["ci_low"], 100 * row["ci_high"], color=color, alpha=0.1, lw=0)
    ax.legend(title=f"{hue} ({int(confidence * 100)}% CI shaded)", fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def median_l2_vs_queries(summary: pd.DataFrame, *, yardsticks: dict | None = None, title: str | None = None):
    """Median L2 perturbation against the query budget, with its 95% interval, from
    :func:`advlab.evaluate.norm_summary` grouped by ``budget``; ``yardsticks`` maps a label to a
    white-box attack's median, drawn as a dashed line."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    g = summary.reset_index().sort_values("budget")
    ax.plot(g["budget"], g["median_l2"], marker="o", ms=4, label="median over fooled examples")
    ax.fill_between(g["budget"], g["median_l2_low"], g["median_l2_high"], alpha=0.2, lw=0,
                    label="95% CI of the median")
    for color, (label, value) in zip(sns.color_palette("dark", n_colors=max(1, len(yardsticks or {}))),
                                     (yardsticks or {}).items()):
        ax.axhline(value, color=color, ls="--", lw=1.2, label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("queries per example (log scale)")
    ax.set_ylabel("L2 norm of the perturbation (pixel units, log scale)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def changed_pixels_grid(x: torch.Tensor, advs: dict, *, labels, classes, clean_pred, title: str | None = None):
    """Few-pixel attacks drawn: the clean row, then one row per attack with its changed pixels circled.

    ``advs`` maps a row label to ``(x_adv, adv_pred)``; a prediction in red fooled the model.
    """
    n = x.shape[0]
    rows = [("clean", x, clean_pred)] + [(k, xa, p) for k, (xa, p) in advs.items()]
    fig, axes = plt.subplots(len(rows), n, figsize=(1.6 * n, 1.75 * len(rows)), squeeze=False)
    for i, (name, imgs, pred) in enumerate(rows):
        changed = (imgs != x).any(1).cpu()  # (N, H, W): pixels whose colour changed
        for j in range(n):
            ax = axes[i, j]
            ax.imshow(_img(imgs[j]).clip(0, 1), cmap="gray" if x.shape[1] == 1 else None, vmin=0, vmax=1)
            rr, cc = changed[j].nonzero(as_tuple=True)
            ax.scatter(cc.numpy(), rr.numpy(), s=90, facecolors="none", edgecolors="red", linewidths=1.2)
            wrong = pred[j] != labels[j]
            head = f"y={classes[labels[j]]}\n" if i == 0 else ""
            ax.set_title(f"{head}pred {classes[pred[j]]}", fontsize=8, color="C3" if wrong and i else "black")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[i, 0].set_ylabel(name, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def pixel_attack_grid(runs: dict, data, *, n: int = 6, title: str | None = None):
    """Few-pixel attacks drawn from their result rows: ``runs`` maps a row label (e.g. "3 pixels")
    to the rows of a run that kept its adversarial inputs (``keep_inputs``); the first ``n``
    examples every run kept are shown (draws only: nothing is attacked here)."""
    from .evaluate import adversarial_inputs

    rebuilt = {label: adversarial_inputs(rows, data) for label, rows in runs.items()}
    common = set.intersection(*(set(kept.example) for _, kept in rebuilt.values()))
    first = next(iter(rebuilt.values()))[1]
    show = [e for e in first.example if e in common][:n]
    if not show:
        raise ValueError("the runs kept no common example to draw")
    advs, x, head = {}, None, None
    for label, (x_adv, kept) in rebuilt.items():
        pos = kept.reset_index().set_index("example").loc[show, "index"].tolist()
        advs[label] = (x_adv[pos], kept.adv_pred.to_numpy()[pos].tolist())
        head = kept.iloc[pos]
    x = data.examples(show).images()
    return changed_pixels_grid(x, advs, labels=head.label.tolist(), classes=data.classes,
                               clean_pred=head.clean_pred.tolist(), title=title)


def tradeoff_scatter(df: pd.DataFrame, *, hue: str = "dataset", title: str | None = None):
    """Clean against robust accuracy (%), one point per model with both 95% intervals as error bars.

    ``df`` has one row per model (its index labels the points) with ``clean``, ``clean_low``,
    ``clean_high``, ``robust``, ``robust_low``, ``robust_high`` (fractions) and the ``hue`` column.
    """
    fig, ax = plt.subplots(figsize=(6.5, 4.8))
    palette = sns.color_palette("colorblind", n_colors=max(1, df[hue].nunique()))
    for color, (name, g) in zip(palette, df.groupby(hue, sort=False)):
        x, y = 100 * g["clean"], 100 * g["robust"]
        err_x = [100 * (g["clean"] - g["clean_low"]), 100 * (g["clean_high"] - g["clean"])]
        err_y = [100 * (g["robust"] - g["robust_low"]), 100 * (g["robust_high"] - g["robust"])]
        ax.errorbar(x, y, xerr=err_x, yerr=err_y, fmt="o", ms=4, color=color, alpha=0.8, lw=0.8, label=str(name))
        for label, xi, yi in zip(g.index, x, y):
            ax.annotate(str(label), (xi, yi), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("clean accuracy (%)")
    ax.set_ylabel("robust accuracy under the ensemble (%)")
    ax.grid(alpha=0.3)
    ax.legend(title=f"{hue} (95% CI bars)")
    if title:
        ax.set_title(title)
    return ax


def monitor_curves(histories: dict, *, title: str | None = None):
    """Held-out clean and PGD accuracy (%) after every training epoch, one line per run.

    ``histories`` maps a run's label to its checkpoint's ``metrics["history"]`` (rows with
    ``epoch``, ``holdout_clean``, ``holdout_pgd``); a cross marks the epoch the run kept.
    """
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    palette = sns.color_palette("colorblind", n_colors=max(1, len(histories)))
    for color, (name, (hist, kept)) in zip(palette, histories.items()):
        h = pd.DataFrame(hist)
        for ax, col in zip(axes, ("holdout_clean", "holdout_pgd")):
            ax.plot(h["epoch"], 100 * h[col], marker="o", ms=3, color=color, label=str(name))
            ax.plot([kept], [100 * h.loc[h.epoch == kept, col].iloc[0]], marker="x", ms=9, color=color)
    for ax, what in zip(axes, ("clean", "PGD-10")):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_title(f"held-out {what} accuracy")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy (%)")
    axes[0].set_ylim(-2, 102)
    axes[1].legend(title="training (× kept epoch)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def training_curves(histories: dict, *, column: str = "loss", ylabel: str = "training loss (cross-entropy)",
                    legend: str = "run", title: str | None = None):
    """One line per run of a per-epoch ``column`` of checkpoints' ``metrics["history"]``."""
    fig, ax = plt.subplots(figsize=(6, 3.8))
    palette = sns.color_palette("colorblind", n_colors=max(1, len(histories)))
    for color, (name, hist) in zip(palette, histories.items()):
        h = pd.DataFrame(hist)
        ax.plot(h["epoch"], h[column], marker="o", ms=3, color=color, label=str(name))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(title=legend)
    if title:
        ax.set_title(title)
    return ax


def sandwich(summary: pd.DataFrame, *, title: str | None = None):
    """Certified, exact and attacked accuracy (%) with 95% intervals: one panel per (architecture,
    ε), one group of points per training; ``summary`` from ``chapters.certification.sandwich_summary``."""
    panels = list(summary.groupby(["architecture", "eps"], sort=False))
    fig, axes = panel_grid(len(panels), 3.6, 3.8, sharey=True)
    bounds = list(dict.fromkeys(summary["bound"]))
    palette = dict(zip(bounds, sns.color_palette("colorblind", n_colors=len(bounds))))
    for ax, ((arch, eps), g) in zip(axes, panels):
        trainings = list(dict.fromkeys(g["training"]))
        for k, b in enumerate(bounds):
            h = g[g["bound"] == b].set_index("training").reindex(trainings)
            pos = np.arange(len(trainings)) + (k - (len(bounds) - 1) / 2) * 0.14
            y = 100 * h["accuracy"].to_numpy(dtype=float)
            err = np.abs(100 * h[["ci_low", "ci_high"]].to_numpy(dtype=float).T - y)
            ax.errorbar(pos, y, yerr=err, fmt="o", ms=4, capsize=2, color=palette[b], label=b)
        ax.set_xticks(range(len(trainings)), [f"{t}-trained" if t != "standard" else t for t in trainings])
        ax.set_title(f"{arch}, L∞ ε = {eps:g}")
        ax.set_ylim(-2, 102)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy within the ball (%)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(bounds), bbox_to_anchor=(0.5, -0.04))
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


def reachable_sets(sets: dict, *, title: str | None = None):
    """The toy network's true output set (dense image of the input box) inside the IBP box and the
    CROWN polygon; ``sets`` from ``chapters.certification.toy_sets``."""
    fig, ax = plt.subplots(figsize=(5, 4.6))
    p = sets["points"]
    ax.scatter(p[:, 0], p[:, 1], s=1, color="0.3", alpha=0.3, label="image of the input box (dense grid)")
    for name, color in (("ibp", "C3"), ("crown", "C0")):
        poly = np.vstack([sets[name], sets[name][:1]])
        ax.plot(poly[:, 0], poly[:, 1], color=color, lw=1.5,
                label={"ibp": "IBP box", "crown": "CROWN outer bound (72 directions)"}[name])
    ax.set_xlabel("output 1 (logit)")
    ax.set_ylabel("output 2 (logit)")
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    return fig


def smoothing_curves(curves: pd.DataFrame, *, reference: dict | None = None, title: str | None = None):
    """Certified accuracy (%) against L2 radius, one line per σ and one panel per dataset, with 95%
    bands; the empirical accuracy under attack as open markers where ``curves`` has ``kind`` ==
    "empirical"; ``reference`` adds published points ``{label: (dataset, radii, accuracy %)}``."""
    datasets = list(dict.fromkeys(curves["dataset"]))
    fig, axes = panel_grid(len(datasets), 5.2, 4)
    for ax, ds in zip(axes, datasets):
        g = curves[curves["dataset"] == ds]
        sigmas = sorted(g["sigma"].unique())
        palette = dict(zip(sigmas, sns.color_palette("colorblind", n_colors=len(sigmas))))
        for s in sigmas:
            c = g[(g["sigma"] == s) & (g["kind"] == "certified")].sort_values("radius")
            ax.step(c["radius"], 100 * c["accuracy"], where="post", color=palette[s], label=f"certified, σ = {s:g}")
            ax.fill_between(c["radius"], 100 * c["ci_low"], 100 * c["ci_high"], step="post", color=palette[s],
                            alpha=0.15, lw=0)
            e = g[(g["sigma"] == s) & (g["kind"] == "empirical")].sort_values("radius")
            if len(e):
                ax.plot(e["radius"], 100 * e["accuracy"], ls="--", marker="o", mfc="none", color=palette[s],
                        label=f"under SmoothAdv, σ = {s:g}")
        for label, (rds, radii, acc) in (reference or {}).items():
            if rds == ds:
                ax.plot(radii, acc, "k*", ms=8, label=label)
        ax.set_xlabel("L2 radius (pixel units of [0, 1])")
        ax.set_ylabel("accuracy of the smoothed classifier (%)")
        ax.set_ylim(-2, 102)
        ax.grid(alpha=0.3)
        ax.set_title(ds)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
