"""Display tables: accuracies in percent with their intervals, floats rendered as fixed strings, and
the summaries several chapters share (clean and robust accuracy per group, certified accuracy by radius)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .stats import accuracy, clopper_pearson


def accuracy_table(acc: pd.DataFrame, index=("attack", "eps"), digits: int = 1) -> pd.DataFrame:
    """A display table from :func:`accuracy`: accuracy and its 95% interval in percent, and n."""
    out = pd.DataFrame({
        "accuracy (%)": (100 * acc["accuracy"]).round(digits),
        "95% CI (%)": [interval(lo, hi, digits) for lo, hi in zip(acc["ci_low"], acc["ci_high"])],
        "n": acc["n"],
    })
    cols = [c for c in index if c in acc]
    if cols:
        out.index = pd.MultiIndex.from_frame(acc[cols]) if len(cols) > 1 else pd.Index(acc[cols[0]])
    return out


def interval(lo: float, hi: float, digits: int = 1) -> str:
    """'[96.2, 98.1]' from fractions."""
    return f"[{100 * lo:.{digits}f}, {100 * hi:.{digits}f}]"


def value_interval(value: float, lo: float, hi: float, digits: int = 1) -> str:
    """'61.5 [54.4, 68.3]' from fractions: a table cell in percent with its 95% interval (the one
    formatter of such cells)."""
    return f"{100 * value:.{digits}f} " + interval(lo, hi, digits)


def format_accuracy(row, digits: int = 1) -> str:
    """'97.3% [96.2, 98.1]' from a row of :func:`accuracy`."""
    return f"{100 * row['accuracy']:.{digits}f}% " + interval(row["ci_low"], row["ci_high"], digits)


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


def display_table(df: pd.DataFrame, columns: dict) -> pd.DataFrame:
    """Keep, rename and format columns for display: ``{data column: (label, format or None)}``.

    A format may use ``{:.1%}``-style specs; ``None`` keeps the value as it is. A tuple of columns
    fills one displayed column, e.g. ``("ci_low", "ci_high"): ("95% CI", "[{:.1%}, {:.1%}]")``.
    Data columns keep plain names; display names are chosen here, where the table is shown.
    """
    out = pd.DataFrame(index=df.index)
    for col, (label, fmt) in columns.items():
        if isinstance(col, tuple):
            out[label] = [fmt.format(*values) for values in zip(*(df[c] for c in col))]
        else:
            out[label] = df[col] if fmt is None else [fmt.format(v) for v in df[col]]
    return out


def robustness_summary(rows: pd.DataFrame, by="model") -> pd.DataFrame:
    """Clean and robust accuracy with their 95% intervals per group of per-example rows:
    ``clean``, ``clean_low``, ``clean_high``, ``robust``, ``robust_low``, ``robust_high``, ``n``."""
    by = [by] if isinstance(by, str) else list(by)
    c = accuracy(rows, "clean_correct", by=by).set_index(by)
    r = accuracy(rows, by=by).set_index(by)
    return pd.DataFrame({"clean": c["accuracy"], "clean_low": c["ci_low"], "clean_high": c["ci_high"],
                         "robust": r["accuracy"], "robust_low": r["ci_low"], "robust_high": r["ci_high"],
                         "n": r["n"]})


def interval_cells(table: pd.DataFrame, column: str, digits: int = 1) -> pd.Series:
    """'61.5 [54.4, 68.3]' (percent) for every row of a :func:`robustness_summary` column (or any
    ``column``, ``column_low``, ``column_high`` triple)."""
    return pd.Series([value_interval(v, lo, hi, digits) for v, lo, hi in
                      zip(table[column], table[f"{column}_low"], table[f"{column}_high"])], index=table.index)


def rate(k: int, n: int) -> dict:
    """``accuracy`` k/n with its 95% Clopper-Pearson ``ci_low``, ``ci_high`` and ``n``."""
    lo, hi = clopper_pearson(k, n)
    return {"accuracy": k / n if n else np.nan, "ci_low": lo, "ci_high": hi, "n": n}


def certified_curve(rows: pd.DataFrame, radii) -> pd.DataFrame:
    """Certified accuracy at every radius with 95% intervals, from rows with ``correct`` and ``radius``
    (randomized smoothing's): correct and certified at radius ≥ r."""
    return pd.DataFrame([{"radius": r, **rate(int((rows["correct"] & (rows["radius"] >= r)).sum()), len(rows))}
                         for r in radii])
