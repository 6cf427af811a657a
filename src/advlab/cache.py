"""The cache root, configuration keys and atomic, weights-only checkpoint I/O."""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Callable

from .errors import CheckpointError
from .reproducibility import check_cache_kernels

CACHE_ENV = "ADVLAB_CACHE"
CACHED_ONLY_ENV = "ADVLAB_CACHED_ONLY"  # "1": a missing model or result is an error (a render-only run)


def cached_only() -> bool:
    return os.environ.get(CACHED_ONLY_ENV, "") == "1"


def user_cache() -> Path:
    """The library's cache when nothing names one: ``~/.cache/advlab``."""
    return Path.home() / ".cache" / "advlab"


def cache_root(root: str | os.PathLike | None = None) -> Path:
    """``root`` if given, else ``$ADVLAB_CACHE``, else ``~/.cache/advlab``."""
    if root is None:
        root = os.environ.get(CACHE_ENV) or user_cache()
    root = Path(root).expanduser()
    check_cache_kernels(root)
    return root


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes (read in 1 MiB chunks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def config_key(config: dict, length: int = 12) -> str:
    """A short hash of a JSON-able configuration (key order does not matter)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what open() would give: temporary files are created 0600


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(path: Path, legacy_age_s: float = 3600.0) -> None:
    """Delete temporary files an interrupted write of ``path`` left behind.

    Ours are named ``.NAME.PID.tmp``: removed once that process is gone. Earlier versions wrote
    ``NAME.RANDOM.tmp``: removed when older than ``legacy_age_s``.
    """
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        pid = tmp.name[len(path.name) + 2:-len(".tmp")]
        if not pid.isdigit() or not _pid_alive(int(pid)):
            tmp.unlink(missing_ok=True)
    for tmp in path.parent.glob(f"{path.name}.*.tmp"):
        try:
            if time.time() - tmp.stat().st_mtime > legacy_age_s:
                tmp.unlink(missing_ok=True)
        except FileNotFoundError:
            pass


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Write ``path`` through ``write(tmp)`` into a temporary file beside it, then rename.

    Readers see the old file or the new one, never a half-written one; a failed or interrupted
    write leaves no temporary behind (or one that the next write to the same path removes).
    The file gets the usual permissions (0666 less the umask), not a temporary file's 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_save(obj, path: str | os.PathLike) -> Path:
    """``torch.save`` through :func:`atomic_write`: never half-written."""
    import torch  # here, not at the top: the command line's --help must not wait for torch

    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def load_checkpoint(path: str | os.PathLike, map_location=None) -> dict:
    """Load a checkpoint written by :func:`atomic_save` with ``weights_only=True``.

    A truncated or corrupt file raises :class:`CheckpointError` (never a half-loaded model).
    """
    import torch

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
