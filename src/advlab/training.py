"""Training with SGD + momentum and a one-cycle or cosine schedule, optionally adversarial, cached.

``load_or_train(config)`` returns the model for a :class:`TrainConfig`, training it only when no
valid checkpoint for exactly that configuration exists under the cache root.
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
import platform
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from . import __version__
from .attacks import get_attack, run_attack
from .cache import atomic_save, cache_root, config_key, load_checkpoint
from .checks import check_choice
from .config import coerce
from .data import batches, dataset_spec, load_dataset
from .errors import CheckpointError, InputError
from .models import build_model, model_options, predict
from .progress import bar as progress_bar
from .threat import NORMS, ThreatModel
from .timing import Stopwatch

# Bump when a change makes old checkpoints mean something else (architecture, training loop).
CHECKPOINT_FORMAT = 1
SCHEDULES = ("onecycle", "cosine")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained model; its hash is the checkpoint's cache key.

    Units: ``lr`` is the peak learning rate; ``batch_size`` in examples; ``epochs`` full passes
    over the (sub)set; ``adv_eps`` in pixel units of [0, 1].
    """

    dataset: str
    model: str
    model_options: dict = field(default_factory=dict)
    epochs: int = 5
    batch_size: int = 128
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "onecycle"
    label_smoothing: float = 0.0
    augment: bool = False  # random crop + flip (CIFAR-10 practice)
    train_subset: int | None = None  # None: the whole training split
    seed: int = 0
    # adversarial training: train on attack(model, x, y) for a fraction of each batch
    adv_attack: str | None = None
    adv_norm: str | None = None
    adv_eps: float | None = None
    adv_params: dict = field(default_factory=dict)
    adv_fraction: float = 1.0
    eval_subset: int | None = 2000  # test examples for the metrics stored in the checkpoint

    def __post_init__(self):
        dataset_spec(self.dataset)
        opts = model_options(self.model)
        unknown = set(self.model_options) - set(opts)
        if unknown:
            raise InputError(f"unknown option(s) {sorted(unknown)} for model {self.model!r}; valid: {opts}")
        types = {"epochs": int, "batch_size": int, "seed": int, "lr": float, "momentum": float,
                 "weight_decay": float, "label_smoothing": float, "adv_fraction": float, "augment": bool}
        for name, tp in types.items():
            object.__setattr__(self, name, coerce(getattr(self, name), tp, f"TrainConfig.{name}"))
        for name in ("train_subset", "eval_subset"):
            v = getattr(self, name)
            if v is not None and coerce(v, int, f"TrainConfig.{name}") < 1:
                raise InputError(f"TrainConfig.{name} must be a positive int or None (all), got {v!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise InputError("epochs and batch_size must be positive")
        check_choice(self.schedule, SCHEDULES, "schedule")
        if self.adv_attack is not None:
            valid = get_attack(self.adv_attack).params()
            unknown = set(self.adv_params) - set(valid) | ({"threat", "generator"} & set(self.adv_params))
            if unknown:
                raise InputError(f"unknown adv_params {sorted(unknown)} for {self.adv_attack!r}; "
                                 f"valid: {sorted(valid)}")
            check_choice(self.adv_norm, NORMS, "adv_norm")
            ThreatModel(self.adv_norm, self.adv_eps)  # validates eps
            if not 0 < self.adv_fraction <= 1:
                raise InputError(f"adv_fraction must be in (0, 1], got {self.adv_fraction}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def __hash__(self):  # dict fields: hash the configuration key, consistent with ==
        return hash(self.key)

    @property
    def key(self) -> str:
        return config_key({"format": CHECKPOINT_FORMAT, **self.to_dict()})

    @property
    def threat(self) -> ThreatModel | None:
        return ThreatModel(self.adv_norm, self.adv_eps) if self.adv_attack else None

    def checkpoint_path(self, root=None) -> Path:
        adv = f"-adv_{self.adv_attack}_{self.adv_norm}_{self.adv_eps:g}" if self.adv_attack else ""
        return cache_root(root) / "models" / f"{self.dataset}-{self.model}{adv}-{self.key}.pt"


def _schedule(optimizer, config: TrainConfig, total_steps: int):
    if config.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=config.lr, total_steps=total_steps, pct_start=0.25,
            anneal_strategy="linear", div_factor=25.0, final_div_factor=1e3)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * s / total_steps)))


def train(config: TrainConfig, device=None, progress: bool = True):
    """Train a fresh model for ``config`` on ``device``; return ``(model, metrics)``.

    Seeded by ``config.seed`` through a forked RNG and explicit generators, so the caller's global
    RNG state is left as it was and the same config gives the same model on CPU.
    """
    device = torch.device(device or "cpu")
    train_set = load_dataset(config.dataset, "train").subset(config.train_subset, seed=config.seed).to(device)
    gen = torch.Generator().manual_seed(config.seed)
    adv_gen = torch.Generator(device=device).manual_seed(config.seed + 1)
    steps_per_epoch = math.ceil(len(train_set) / config.batch_size)
    total = steps_per_epoch * config.epochs
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(config.seed)
        model = build_model(config.model, config.dataset, **config.model_options).to(device)
        decay = [p for n, p in model.named_parameters() if p.ndim > 1]
        no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
        opt = torch.optim.SGD([{"params": decay, "weight_decay": config.weight_decay},
                               {"params": no_decay, "weight_decay": 0.0}],
                              lr=config.lr, momentum=config.momentum, nesterov=True)
        sched = _schedule(opt, config, total)
        threat = config.threat
        with Stopwatch(device) as clock:
            bar = progress_bar(total=total, desc=f"train {config.model} on {config.dataset}", enabled=progress)
            model.train()
            for epoch in range(config.epochs):
                seen = loss_sum = correct = 0
                for x, y in batches(train_set, config.batch_size, shuffle=True, augment=config.augment,
                                    generator=gen):
                    if threat is not None:
                        k = max(1, round(config.adv_fraction * x.shape[0]))
                        x_adv = run_attack(config.adv_attack, model, x[:k], y[:k], threat=threat,
                                           generator=adv_gen, **config.adv_params).x_adv
                        x = torch.cat([x_adv, x[k:]])
                    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                        logits = model(x)
                        loss = F.cross_entropy(logits, y, label_smoothing=config.label_smoothing)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    sched.step()
                    seen += x.shape[0]
                    # running sums stay on the device: no host sync per step on CUDA
                    loss_sum = loss_sum + loss.detach().float() * x.shape[0]
                    correct = correct + (logits.argmax(1) == y).sum()
                    bar.update(1)
                    if bar.n % 50 == 0:
                        bar.set_postfix(epoch=epoch + 1, loss=f"{float(loss_sum) / seen:.3f}",
                                        acc=f"{float(correct) / seen:.3f}")
            bar.close()
            model.eval()
        seconds = clock.seconds
    test = load_dataset(config.dataset, "test").subset(config.eval_subset, seed=config.seed).to(device)
    test_correct = int((predict(model, test.images()) == test.y).sum())
    metrics = {"train_loss": float(loss_sum) / seen, "train_accuracy": float(correct) / seen,
               "test_accuracy": test_correct / len(test), "test_examples": len(test),
               "train_seconds": seconds, "device": str(device)}
    return model, metrics


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

    The checkpoint lives at ``config.checkpoint_path(cache_root)``; it carries the config, metrics
    and library versions and is written atomically. A truncated or foreign file is reported,
    discarded and retrained, never loaded; so is one whose weights do not match the sha256 digest
    stored beside them (flipped bytes that still unpickle). Returns ``(model, info)`` where ``info`` holds
    ``config``, ``metrics``, ``versions``, ``path`` and ``trained`` (False when loaded).
    """
    device = torch.device(device or "cpu")
    path = config.checkpoint_path(cache_root)
    if path.exists() and not retrain:
        try:
            ckpt = load_checkpoint(path, map_location=device)
            if ckpt.get("config") != config.to_dict() or ckpt.get("format") != CHECKPOINT_FORMAT:
                raise CheckpointError(f"checkpoint {path} was written for another configuration")
            if ckpt.get("weights_sha256") != weights_digest(ckpt["state_dict"]):
                raise CheckpointError(f"checkpoint {path} fails its weights digest (corrupt, or written "
                                      "before advlab stored digests)")
            model = build_model(config.model, config.dataset, **config.model_options).to(device)
            model.load_state_dict(ckpt["state_dict"])
            model.eval()
            info = {k: ckpt[k] for k in ("config", "metrics", "versions")}
            return model, {**info, "path": str(path), "trained": False}
        except CheckpointError as e:
            warnings.warn(f"{e}; retraining", stacklevel=2)
            path.unlink(missing_ok=True)
    model, metrics = train(config, device=device, progress=progress)
    state = {k: v.cpu() for k, v in model.state_dict().items()}
    ckpt = {"format": CHECKPOINT_FORMAT, "config": config.to_dict(), "metrics": metrics,
            "versions": _versions(), "state_dict": state, "weights_sha256": weights_digest(state)}
    atomic_save(ckpt, path)
    info = {k: ckpt[k] for k in ("config", "metrics", "versions")}
    return model, {**info, "path": str(path), "trained": True}
