"""Display tables: accuracies in percent with their intervals, floats rendered as fixed strings."""
from __future__ import annotations

import pandas as pd


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
