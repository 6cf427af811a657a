"""Result tables on disk: a DataFrame as exact tensors and plain lists (what ``torch.load(weights_only=True)``
accepts), with its evaluation's description and a sha256 digest."""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..cache import atomic_save
from ..errors import CheckpointError
from .spec import RESULT_FORMAT

# -- tables on disk ----------------------------------------------------------------------------------
def _plain(v):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return v.item() if isinstance(v, np.generic) else v


def encode_table(df: pd.DataFrame) -> dict:
    """A DataFrame as tensors (numeric and bool columns, exact) and lists (the rest): what
    ``torch.load(weights_only=True)`` accepts."""
    cols, kinds = {}, {}
    for c in df.columns:
        s = df[c]
        if s.dtype.kind in "biuf":
            cols[c], kinds[c] = torch.from_numpy(s.to_numpy().copy()), "tensor"
        else:  # pandas' string dtype, or objects (str, None, numbers)
            cols[c] = [_plain(v) for v in s.tolist()]
            kinds[c] = "str" if isinstance(s.dtype, pd.StringDtype) else "list"
    return {"columns": list(df.columns), "data": cols, "kinds": kinds}


def decode_table(enc: dict) -> pd.DataFrame:
    """The table back from its exact encoding (:func:`encode_table`), with its column types."""
    dtypes = {"list": object, "str": "str"}
    data = {c: (enc["data"][c].numpy() if enc["kinds"][c] == "tensor"
                else pd.Series(enc["data"][c], dtype=dtypes[enc["kinds"][c]]))
            for c in enc["columns"]}
    return pd.DataFrame(data, columns=enc["columns"])


def table_digest(enc: dict) -> str:
    """The sha256 of an encoded table's values (wall-time columns excluded), stored beside it and checked on load."""
    h = hashlib.sha256()
    for c in enc["columns"]:
        h.update(c.encode())
        v = enc["data"][c]
        if enc["kinds"][c] == "tensor":
            h.update(f"{v.dtype}|{tuple(v.shape)}".encode())
            h.update(v.contiguous().view(torch.uint8).numpy().tobytes())
        else:
            h.update(json.dumps(v).encode())
    return h.hexdigest()


def table_record(df: pd.DataFrame, describe: dict, extra: dict | None = None) -> dict:
    """What a result file holds: the encoded table, its evaluation's description and digest."""
    enc = encode_table(df)
    return {"format": RESULT_FORMAT, "evaluation": describe, "table": enc, "sha256": table_digest(enc),
            **(extra or {})}


def save_table(df: pd.DataFrame, path: Path, describe: dict, extra: dict | None = None) -> None:
    atomic_save(table_record(df, describe, extra), path)


def read_table(path: Path, describe: dict) -> tuple[pd.DataFrame, dict]:
    """The table stored at ``path`` for exactly ``describe``, or CheckpointError."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"result {path} is truncated or corrupt ({type(e).__name__}: {e})") from e
    if not isinstance(obj, dict) or obj.get("format") != RESULT_FORMAT or "table" not in obj:
        raise CheckpointError(f"result {path} is not an advlab result of format {RESULT_FORMAT}")
    if obj.get("evaluation") != describe:
        raise CheckpointError(f"result {path} was written for another evaluation or library version")
    if obj.get("sha256") != table_digest(obj["table"]):
        raise CheckpointError(f"result {path} fails its digest (corrupt)")
    return decode_table(obj["table"]), obj
