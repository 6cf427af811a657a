"""Training a DnCNN denoiser on adversarial examples of a classifier, cached like the classifiers.

The report's recipe: adversarial examples of the training images are crafted once on the
undefended classifier (FGSM by default), and the denoiser learns to map each back to its clean
image (mean squared error, Adam).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..attacks import get_attack, run_attack
from ..cache import cache_root, config_key, load_checkpoint
from ..config import coerce
from ..data import batches, dataset_spec, load_dataset
from ..defenses import DnCNN
from ..errors import CheckpointError, InputError
from ..progress import bar as progress_bar
from ..store import load_or_make
from ..threat import ThreatModel
from ..timing import Stopwatch
from . import TrainConfig, load_or_train, weights_digest

DENOISER_FORMAT = 1


@dataclass(frozen=True)
class DenoiserConfig:
    """Everything that determines a trained denoiser; ``classifier`` is the model whose
    adversarial examples (``attack`` in the ``norm`` ball of radius ``eps``) it learns to clean."""

    classifier: TrainConfig
    attack: str = "fgsm"
    norm: str = "linf"
    eps: float = 0.05
    depth: int = 10
    width: int = 64
    epochs: int = 5
    train_subset: int | None = 5000
    batch_size: int = 64
    lr: float = 1e-3
    seed: int = 0

    def __post_init__(self):
        if not isinstance(self.classifier, TrainConfig):
            raise InputError(f"classifier must be a TrainConfig, got {type(self.classifier).__name__}")
        if get_attack(self.attack).kind != "bounded" or get_attack(self.attack).black_box:
            raise InputError(f"the denoiser's training examples come from a bounded white-box attack, "
                             f"not {self.attack!r}")
        ThreatModel(self.norm, self.eps)
        for name, tp in {"depth": int, "width": int, "epochs": int, "batch_size": int, "seed": int,
                         "lr": float, "eps": float}.items():
            object.__setattr__(self, name, coerce(getattr(self, name), tp, f"DenoiserConfig.{name}"))
        for name in ("depth", "width", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise InputError(f"DenoiserConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.train_subset is not None and coerce(self.train_subset, int, "DenoiserConfig.train_subset") < 1:
            raise InputError(f"DenoiserConfig.train_subset must be a positive int or None, got {self.train_subset}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise InputError(f"DenoiserConfig.lr must be > 0, got {self.lr}")

    def to_dict(self) -> dict:
        """Every field, as plain data (what the key hashes)."""
        return dataclasses.asdict(self)

    def __hash__(self):
        return hash(self.key)

    @property
    def key(self) -> str:
        """The denoiser's cache key: every field (the classifier's configuration among them) and the format."""
        return config_key({"format": DENOISER_FORMAT, **self.to_dict()})

    def checkpoint_path(self, root=None) -> Path:
        """Where the denoiser's checkpoint lives under the cache ``root`` (default: the cache)."""
        c = self.classifier
        return (cache_root(root) / "models" /
                f"{c.dataset}-dncnn{self.depth}-{self.attack}_{self.norm}_{self.eps:g}-on-{c.model}-{self.key}.pt")


def train_denoiser(config: DenoiserConfig, device=None, progress: bool = True):
    """Train a fresh DnCNN for ``config``; return ``(denoiser, metrics)``."""
    device = torch.device(device or "cpu")
    classifier, _ = load_or_train(config.classifier, device=device, progress=progress)
    c = config.classifier
    data = load_dataset(c.dataset, "train").subset(config.train_subset, seed=config.seed).to(device)
    threat = ThreatModel(config.norm, config.eps)
    gen = torch.Generator(device=device).manual_seed(config.seed)
    adv = torch.cat([run_attack(config.attack, classifier, x, y, threat=threat, generator=gen).x_adv
                     for x, y in batches(data, 256)])
    clean = data.images()
    order_gen = torch.Generator().manual_seed(config.seed)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(config.seed)
        denoiser = DnCNN(dataset_spec(c.dataset).shape[0], depth=config.depth, width=config.width).to(device)
        opt = torch.optim.Adam(denoiser.parameters(), lr=config.lr)
        steps = math.ceil(len(clean) / config.batch_size)
        bar = progress_bar(total=steps * config.epochs, desc=f"train DnCNN-{config.depth}", enabled=progress)
        denoiser.train()
        with Stopwatch(device) as clock:
            for _ in range(config.epochs):
                order = torch.randperm(len(clean), generator=order_gen).to(device)
                total = 0.0
                for i in range(0, len(clean), config.batch_size):
                    idx = order[i:i + config.batch_size]
                    loss = F.mse_loss(denoiser(adv[idx]), clean[idx])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    total = total + loss.detach() * len(idx)
                    bar.update(1)
                mse = float(total) / len(clean)
                bar.set_postfix(mse=f"{mse:.5f}")
        bar.close()
        denoiser.eval()
    before = float(F.mse_loss(adv, clean))
    return denoiser, {"train_mse": mse, "adversarial_mse": before, "train_seconds": clock.seconds,
                      "train_examples": len(clean), "device": str(device)}


def _read(config: DenoiserConfig, path: Path, device):
    """``(denoiser, info)`` from a valid checkpoint; CheckpointError otherwise."""
    ckpt = load_checkpoint(path, map_location=device)
    if ckpt.get("config") != config.to_dict() or ckpt.get("weights_sha256") != weights_digest(ckpt["state_dict"]):
        raise CheckpointError(f"checkpoint {path} is for another configuration or fails its digest")
    model = DnCNN(dataset_spec(config.classifier.dataset).shape[0], depth=config.depth, width=config.width)
    model.load_state_dict(ckpt["state_dict"])
    model.to(device).eval()
    return model, {"config": ckpt["config"], "metrics": ckpt["metrics"], "path": str(path), "trained": False}


def load_or_train_denoiser(config: DenoiserConfig, device=None, cache_root=None, progress: bool = True):
    """The trained denoiser for ``config`` (eval mode) and its record, through the artifact store
    like the classifiers (``advlab.store.load_or_make``): trained only when no valid checkpoint
    exists, written atomically; under torchrun rank 0 trains and the others read its file; with
    ``ADVLAB_CACHED_ONLY=1`` a missing denoiser is a :class:`~advlab.errors.CacheMiss`."""
    device = torch.device(device or "cpu")
    path = config.checkpoint_path(cache_root)

    def make():
        model, metrics = train_denoiser(config, device=device, progress=progress)
        state = {k: v.cpu() for k, v in model.state_dict().items()}
        record = {"format": DENOISER_FORMAT, "config": config.to_dict(), "metrics": metrics, "state_dict": state,
                  "weights_sha256": weights_digest(state)}
        return (model, {"config": config.to_dict(), "metrics": metrics, "path": str(path), "trained": True}), record

    return load_or_make(path, read=lambda p: _read(config, p, device), make=make, what="denoiser",
                        again="retraining", every_rank=False)[0]
