"""The cache root, configuration keys and atomic, weights-only checkpoint I/O."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch

from .errors import CheckpointError

CACHE_ENV = "ADVLAB_CACHE"


def cache_root(root: str | os.PathLike | None = None) -> Path:
    """``root`` if given, else ``$ADVLAB_CACHE``, else ``~/.cache/advlab``."""
    if root is None:
        root = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "advlab"
    return Path(root).expanduser()


def config_key(config: dict, length: int = 12) -> str:
    """A short hash of a JSON-able configuration (key order does not matter)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def atomic_save(obj, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file in the same folder, then rename: never half-written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | os.PathLike, map_location=None) -> dict:
    """Load a checkpoint written by :func:`atomic_save` with ``weights_only=True``.

    A truncated or corrupt file raises :class:`CheckpointError` (never a half-loaded model).
    """
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:  # RuntimeError (bad zip), UnpicklingError, EOFError, ...
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt ({type(e).__name__}: {e})") from e
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "config" not in ckpt:
        raise CheckpointError(f"checkpoint {path} is not an advlab checkpoint (no config/state_dict)")
    return ckpt
