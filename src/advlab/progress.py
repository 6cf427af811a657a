"""Progress bars that callers can switch off, and that ``TQDM_DISABLE=1`` always switches off."""
from __future__ import annotations

import os

from tqdm import tqdm  # text bars: tqdm.auto probes for ipywidgets and warns in notebooks


def bar(iterable=None, *, enabled: bool = True, **kwargs):
    # An explicit disable=False would override tqdm's TQDM_DISABLE default, so decide here.
    off = not enabled or os.environ.get("TQDM_DISABLE", "").lower() in ("1", "true", "yes")
    return tqdm(iterable, disable=off, **kwargs)
