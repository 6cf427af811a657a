"""The artifact store: one load / verify / compute / atomic-save path for every cached artifact
(classifier checkpoints, denoisers, result tables).

An artifact lives at a path under the cache root. :func:`load_or_make` reads it if a valid file is
there; a truncated, corrupt or foreign file is reported, removed and made again. A missing one is
made, unless the process renders from the cache only (``ADVLAB_CACHED_ONLY=1``), where it is a
:class:`~advlab.errors.CacheMiss` naming the command that fills the cache. Under ``torchrun`` rank 0
decides whether the file is valid (the cache must be on a filesystem every rank sees), every rank
takes the same branch, and rank 0 alone writes.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Callable, TypeVar

from .cache import atomic_save, cached_only
from .distributed import barrier, broadcast_from_main, context
from .errors import CacheMiss, CheckpointError

T = TypeVar("T")
FILL = "fill the cache with `advlab precompute CHAPTER --profile PROFILE` and the run's -p values"


def stamp(path: Path):
    """A file's identity for "was it written since": inode and modification time, or None if absent."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


def read_valid(path: Path, read: Callable[[Path], T], again: str = "recomputing") -> T | None:
    """``read(path)``, or None when the file is absent or invalid (``read`` raised
    :class:`CheckpointError`): an invalid file is reported and removed, so it is made again."""
    if not path.exists():
        return None
    try:
        return read(path)
    except CheckpointError as e:
        warnings.warn(f"{e}; {again}", stacklevel=3)
        if context().main:
            path.unlink(missing_ok=True)
        return None


def load_or_make(path: Path, *, read: Callable[[Path], T], make: Callable[[], tuple[T, object]], what: str,
                 again: str = "recomputing", every_rank: bool = True, fresh: bool = False) -> tuple[T, bool]:
    """``(artifact, made)``: the artifact at ``path`` if a valid one is stored, else made and stored.

    ``read(path)`` returns the artifact or raises :class:`CheckpointError`; ``make()`` returns
    ``(artifact, record)``, the record being what is saved (``torch.save``-able, loaded back with
    ``weights_only=True``; only rank 0's is used). ``every_rank``: all ranks make it together
    (DDP training, a sharded evaluation); otherwise rank 0 makes it and the others read its file.
    ``fresh`` ignores a stored file. ``what`` names the artifact in the cache-miss message.
    """
    ctx = context()
    found = read_valid(path, read, again) if ctx.main and not fresh else None
    if ctx.distributed and broadcast_from_main(found is not None) and not ctx.main:
        return read(path), False
    if found is not None:
        return found, False
    if cached_only():
        raise CacheMiss(f"no cached {what} {path.name}; {FILL} (or run without ADVLAB_CACHED_ONLY)")
    value = record = None
    if every_rank or ctx.main:
        value, record = make()
    if ctx.main:
        atomic_save(record, path)
    barrier()
    if not every_rank and not ctx.main:
        value = read(path)
    return value, True
