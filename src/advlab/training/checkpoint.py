"""Checkpoints: the trained model of a :class:`TrainConfig` loaded from the artifact store, or trained
and stored (atomically, with a weights digest, loaded with ``weights_only=True``)."""
from __future__ import annotations

import hashlib
import platform
import sys
from pathlib import Path

import pandas as pd
import torch

from .. import __version__
from ..cache import load_checkpoint
from ..errors import CheckpointError
from ..models import build_model, to_device
from ..store import load_or_make
from .config import CHECKPOINT_FORMAT, TrainConfig
from .loop import train


def _versions() -> dict:
    return {"advlab": __version__, "torch": str(torch.__version__), "python": sys.version.split()[0],
            "platform": platform.platform()}


def weights_digest(state_dict: dict) -> str:
    """sha256 over the names, dtypes, shapes and bytes of every tensor of a state dict (key order)."""
    h = hashlib.sha256()
    for k, v in state_dict.items():
        t = v.detach().cpu().contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def load_models(configs: dict[str, TrainConfig], device=None, progress: bool = True):
    """``{name: model}`` and a table of their checkpoints (trained now or loaded)."""
    models, rows = {}, []
    for name, cfg in configs.items():
        model, _ = load_or_train(cfg, device=device, progress=progress)
        models[name] = model
        rows.append({"model": name, "architecture": cfg.model, "dataset": cfg.dataset, "epochs": cfg.epochs,
                     "train examples": cfg.train_subset or "all",
                     "parameters": sum(p.numel() for p in model.parameters())})
    return models, pd.DataFrame(rows).set_index("model")


def load_or_train(config: TrainConfig, device=None, cache_root=None, progress: bool = True,
                  retrain: bool = False):
    """The trained model for ``config`` (eval mode) and its checkpoint record.

    The checkpoint lives at ``config.checkpoint_path(cache_root)`` in the artifact store
    (``advlab.store.load_or_make``): it carries the config, metrics and library versions and
    is written atomically. A truncated or foreign file is reported, discarded and retrained, never
    loaded; so is one whose weights do not match the sha256 digest stored beside them (flipped
    bytes that still unpickle). Under torchrun every rank trains (DDP) and rank 0 writes; with
    ``ADVLAB_CACHED_ONLY=1`` a missing checkpoint is a :class:`~advlab.errors.CacheMiss`.
    Returns ``(model, info)`` where ``info`` holds ``config``, ``metrics``, ``versions``, ``path``
    and ``trained`` (False when loaded).
    """
    device = torch.device(device or "cpu")
    path = config.checkpoint_path(cache_root)

    def make():
        init = (None if config.init is None  # fine-tuning: the model it starts from, trained (or loaded) first
                else load_or_train(config.init, device=device, progress=progress)[0].state_dict())
        model, metrics = train(config, device=device, progress=progress, init_state=init)
        state = {k: v.cpu().contiguous() for k, v in model.state_dict().items()}
        ckpt = {"format": CHECKPOINT_FORMAT, "config": config.to_dict(), "metrics": metrics,
                "versions": _versions(), "state_dict": state, "weights_sha256": weights_digest(state)}
        info = {k: ckpt[k] for k in ("config", "metrics", "versions")}
        return (model, {**info, "path": str(path), "trained": True}), ckpt

    return load_or_make(path, read=lambda p: _read(config, p, device), make=make, what="checkpoint",
                        again="retraining", fresh=retrain)[0]


def _read(config: TrainConfig, path: Path, device):
    """``(model, info)`` from a valid checkpoint at ``path``; CheckpointError otherwise."""
    ckpt = load_checkpoint(path, map_location=device)
    if ckpt.get("config") != config.to_dict() or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"checkpoint {path} was written for another configuration")
    if ckpt.get("weights_sha256") != weights_digest(ckpt["state_dict"]):
        raise CheckpointError(f"checkpoint {path} fails its weights digest (corrupt, or written "
                              "before advlab stored digests)")
    model = to_device(build_model(config.model, config.dataset, **config.model_options), device)
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    info = {k: ckpt[k] for k in ("config", "metrics", "versions")}
    return model, {**info, "path": str(path), "trained": False}
