"""Statistics of per-example rows: exact binomial intervals, accuracies, perturbation-size summaries."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ..checks import check_choice
from ..errors import InputError

ALTERNATIVES = ("two-sided", "greater", "less")


def clopper_pearson(k: int, n: int, confidence: float = 0.95, alternative: str = "two-sided") -> tuple[float, float]:
    """Exact (Clopper-Pearson) confidence interval for a proportion k / n, from scipy's ``binomtest``.

    ``alternative="greater"`` gives the one-sided interval ``(lower, 1)``: with probability at
    least ``confidence`` the true proportion is above ``lower`` (randomized smoothing's bound on
    p_A); ``"less"`` gives ``(0, upper)``.
    """
    check_choice(alternative, ALTERNATIVES, "alternative")
    if n <= 0:
        raise InputError("an accuracy needs at least one example")
    if not 0 <= k <= n:
        raise InputError(f"k must be in [0, n], got k = {k}, n = {n}")
    if not 0 < confidence < 1:
        raise InputError(f"confidence must be in (0, 1), got {confidence}")
    ci = stats.binomtest(int(k), int(n), alternative=alternative).proportion_ci(
        confidence_level=confidence, method="exact")
    return float(ci.low), float(ci.high)


def accuracy(df: pd.DataFrame, column: str = "robust", by=None, confidence: float = 0.95) -> pd.DataFrame:
    """Accuracy of a boolean column with its Clopper-Pearson interval, optionally per group.

    The default column, ``robust``, counts an example only if it is classified correctly clean
    and under the attack. Returns columns ``n``, ``correct``, ``accuracy``, ``ci_low``,
    ``ci_high`` (fractions in [0, 1]).
    """
    def one(g):
        k, n = int(g[column].sum()), len(g)
        lo, hi = clopper_pearson(k, n, confidence)
        return pd.Series({"n": n, "correct": k, "accuracy": k / n, "ci_low": lo, "ci_high": hi})

    if by is None:
        return one(df).to_frame().T.astype({"n": int, "correct": int})
    out = df.groupby(by, sort=True)[[column]].apply(one).reset_index()
    return out.astype({"n": int, "correct": int})


def norm_summary(rows: pd.DataFrame, by=("model", "attack")) -> pd.DataFrame:
    """Minimal-perturbation statistics per group, from :func:`minimal_norms` rows.

    The rule for every perturbation-size statistic in advlab: sizes are taken over the examples
    that were classified correctly to begin with and that the attack fooled (a misclassified input
    needs no perturbation, and counting its zero would shrink the average). The success rate is
    over the correctly classified examples. Columns: ``n``, ``success``, ``ci_low``, ``ci_high``
    (fractions), ``median_l2`` with its order-statistic interval ``median_l2_low`` /
    ``median_l2_high``, ``median_linf``, ``l2_q25``, ``l2_q75`` (pixel units).
    """
    ok = rows[rows.clean_correct]
    out = []
    for keys, g in ok.groupby(list(by), sort=False):
        s = g[g.success]
        lo, hi = clopper_pearson(int(g.success.sum()), len(g))
        _, mlo, mhi = median_interval(s.l2)
        out.append({**dict(zip(by, keys)), "n": len(g), "success": g.success.mean(), "ci_low": lo, "ci_high": hi,
                    "median_l2": s.l2.median(), "median_l2_low": mlo, "median_l2_high": mhi,
                    "median_linf": s.linf.median(), "l2_q25": s.l2.quantile(0.25), "l2_q75": s.l2.quantile(0.75)})
    return pd.DataFrame(out).set_index(list(by))


def success_by_queries(rows: pd.DataFrame, budgets, by=None, confidence: float = 0.95) -> pd.DataFrame:
    """Success rate of a black-box attack against its query budget, from one run's rows.

    An example counts as fooled within budget b if the attack fooled it using at most b queries;
    the rate is over the examples classified correctly clean (a misclassified input needs no
    attack), with Clopper-Pearson intervals. Returns ``budget``, ``n``, ``fooled``, ``rate``,
    ``ci_low``, ``ci_high`` (plus the ``by`` columns).
    """
    out = []
    groups = rows.groupby(by, sort=False) if by else [((), rows)]
    for key, g in groups:
        g = g[g.clean_correct]
        for b in budgets:
            k = int((g.success & (g.queries <= b)).sum())
            lo, hi = clopper_pearson(k, len(g), confidence)
            keys = dict(zip([by] if isinstance(by, str) else (by or []), key if isinstance(key, tuple) else (key,)))
            out.append({**keys, "budget": b, "n": len(g), "fooled": k, "rate": k / len(g), "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(out)


def accuracy_by_queries(rows: pd.DataFrame, budgets, by=None, confidence: float = 0.95) -> pd.DataFrame:
    """Robust accuracy against the query budget, from one run's rows of a black-box attack.

    At budget b an example counts as robust if it is classified correctly clean and the attack
    did not fool it within b queries; over every attacked example, as :func:`accuracy`. Returns
    ``budget``, ``n``, ``correct``, ``accuracy``, ``ci_low``, ``ci_high`` (plus the ``by`` columns).
    """
    frames = []
    for b in budgets:
        robust = rows.clean_correct & ~(rows.success & (rows.queries <= b))
        acc = accuracy(rows.assign(robust=robust), by=by, confidence=confidence)
        frames.append(acc.assign(budget=b))
    return pd.concat(frames, ignore_index=True)


def query_grid(max_queries: int, points: int = 25) -> list[int]:
    """Budgets 1 … ``max_queries``, evenly spaced on a log scale (the x axis of a query curve)."""
    return sorted({int(round(q)) for q in np.geomspace(1, max_queries, points)})


def median_interval(values, confidence: float = 0.95) -> tuple[float, float, float]:
    """Median with a distribution-free interval from order statistics (the binomial(n, ½) quantiles)."""
    v = np.sort(np.asarray(values, dtype=float))
    n = len(v)
    if n == 0:
        return (float("nan"),) * 3
    alpha = 1 - confidence
    lo = int(stats.binom.ppf(alpha / 2, n, 0.5))  # P(B < lo) <= alpha / 2, B ~ Bin(n, 1/2)
    hi = int(stats.binom.isf(alpha / 2, n, 0.5))
    return float(np.median(v)), float(v[max(lo - 1, 0)]), float(v[min(hi, n - 1)])


def query_summary(rows: pd.DataFrame, by=None, confidence: float = 0.95) -> pd.DataFrame:
    """Queries spent on the examples a black-box attack fooled (classified correctly clean):
    mean with a t-interval and median with an order-statistic interval."""
    out = []
    groups = rows.groupby(by, sort=False) if by else [((), rows)]
    for key, g in groups:
        q = g[g.clean_correct & g.success].queries.to_numpy(dtype=float)
        med, mlo, mhi = median_interval(q, confidence)
        mean = float(q.mean()) if len(q) else float("nan")
        half = float(stats.t.ppf(0.5 + confidence / 2, len(q) - 1) * q.std(ddof=1) / np.sqrt(len(q))) \
            if len(q) > 1 else float("nan")
        keys = dict(zip([by] if isinstance(by, str) else (by or []), key if isinstance(key, tuple) else (key,)))
        out.append({**keys, "fooled": len(q), "mean": mean, "mean_low": mean - half, "mean_high": mean + half,
                    "median": med, "median_low": mlo, "median_high": mhi})
    return pd.DataFrame(out)


def nearest(values, target: float) -> float:
    """The value of ``values`` closest to ``target``: the level of a sweep a published number,
    measured at ``target``, is set beside."""
    return min(values, key=lambda v: abs(v - target))


def rho_adv_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """The DeepFool paper's Table 1 from :func:`~advlab.evaluate.rho_adv_rows`, one row per model:
    ``n`` (correct), ``test_error``, ``rho_deepfool`` (mean ‖r‖₂/‖x‖₂ over the fooled), its
    ``deepfool_success`` and ``deepfool_ms`` per example, and the same for FGSM at ``fgsm_eps``."""
    out = []
    for model, g in rows.groupby("model", sort=False):
        c = g[g.correct]
        out.append({"model": model, "n": len(c), "test_error": 1 - len(c) / len(g),
                    "rho_deepfool": c.deepfool_rho[c.deepfool_success].mean(),
                    "deepfool_success": c.deepfool_success.mean(), "deepfool_ms": 1e3 * c.deepfool_seconds.mean(),
                    "rho_fgsm": c.fgsm_rho[c.fgsm_success].mean(), "fgsm_eps": g.fgsm_eps.iloc[0],
                    "fgsm_fooled": c.fgsm_success.mean(), "fgsm_ms": 1e3 * c.fgsm_seconds.mean()})
    return pd.DataFrame(out).set_index("model")


def noise_summary(rows: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Per σ, from :func:`~advlab.evaluate.noise_injection` rows: the mean accuracy over draws with a
    t-interval over examples (draws of one example are not independent), the worst-of-K accuracy
    with its Clopper-Pearson interval, and the noise's median L2 and L∞ norms (pixel units)."""
    out = []
    for sigma, g in rows.groupby("sigma", sort=True):
        a = g.mean_correct.to_numpy(dtype=float)
        half = float(stats.t.ppf(0.5 + confidence / 2, len(a) - 1) * a.std(ddof=1) / np.sqrt(len(a))) \
            if len(a) > 1 else float("nan")
        k = int(g.robust.sum())
        lo, hi = clopper_pearson(k, len(g), confidence)
        out.append({"sigma": sigma, "n": len(g), "mean_accuracy": a.mean(), "mean_low": max(a.mean() - half, 0.0),
                    "mean_high": min(a.mean() + half, 1.0), "worst_accuracy": k / len(g), "worst_low": lo,
                    "worst_high": hi, "median_l2": g.l2.median(), "median_linf": g.linf.median()})
    return pd.DataFrame(out).set_index("sigma")


def transfer_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per-example transfer rows (``source``, ``target``, ``correct``; any other grouping column such
    as ``attack`` is kept) -> one row per (source, target) with ``n``, ``correct``, ``accuracy`` and
    the 95% Clopper-Pearson ``ci_low`` / ``ci_high``."""
    keys = [c for c in rows.columns if c not in ("example", "correct", "block")]
    out = []
    for key, g in rows.groupby(keys, sort=False):
        k, n = int(g.correct.sum()), len(g)
        lo, hi = clopper_pearson(k, n)
        out.append({**dict(zip(keys, key)), "n": n, "correct": k, "accuracy": k / n, "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(out)


def transfer_summary(matrix: pd.DataFrame, by: str = "attack") -> pd.DataFrame:
    """White-box (diagonal) and transferred (off-diagonal) mean target accuracy per ``by`` value,
    from :func:`~advlab.evaluate.transfer_table` rows that carry a ``by`` column."""
    diag = matrix.source == matrix.target
    return pd.DataFrame({
        "white_box": matrix[diag].groupby(by, sort=False).accuracy.mean(),
        "transfer": matrix[~diag].groupby(by, sort=False).accuracy.mean(),
        "transfer_min": matrix[~diag].groupby(by, sort=False).accuracy.min(),
        "transfer_max": matrix[~diag].groupby(by, sort=False).accuracy.max(),
    })

