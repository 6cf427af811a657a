"""Training with SGD + momentum, a method plug-in per config, cached by configuration.

``load_or_train(config)`` returns the model for a :class:`TrainConfig`, training it only when no
valid checkpoint for exactly that configuration exists under the cache root. The training method
(standard, noise, PGD, FGSM, FGSM-RS, mixed L2+L∞, TRADES, IBP, DeepFool) is one config field,
``method``, with its parameters in ``method_params`` (:mod:`advlab.training.methods`).
"""
from __future__ import annotations

import copy
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

from .. import __version__
from ..attacks import run_attack
from ..cache import atomic_save, cache_root, cached_only, config_key, load_checkpoint
from ..checks import check_choice
from ..config import coerce
from ..data import Dataset, batches, dataset_spec, load_dataset
from ..distributed import barrier, broadcast_from_main, context
from ..errors import CacheMiss, CheckpointError, InputError
from ..models import build_model, eval_mode, model_options, predict, to_device
from ..precision import PRECISIONS, computing_in, strictly_fp32
from ..progress import bar as progress_bar
from ..threat import ThreatModel
from ..timing import Stopwatch
from .methods import METHODS, get_method

# Bump when a change makes old checkpoints mean something else (architecture, training loop).
CHECKPOINT_FORMAT = 3
SCHEDULES = ("onecycle", "cosine", "cyclic", "constant")
# Catastrophic overfitting (Wong et al. 2020): held-out PGD accuracy falls CO_DROP (absolute) below its
# best epoch, or stays under CO_FLOOR while FGSM accuracy is CO_GAP higher (the single step defeated,
# the ball not: FGSM training at a large ε does this from its first epoch).
CO_DROP = 0.2
CO_FLOOR = 0.1
CO_GAP = 0.3
MONITOR_STEPS = 10


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained model; its hash is the checkpoint's cache key.

    Units: ``lr`` is the peak learning rate; ``batch_size`` in examples; ``epochs`` full passes
    over the (sub)set; every ε in ``method_params`` in pixel units of [0, 1].

    ``method`` names a training method of :data:`advlab.training.methods.METHODS` and
    ``method_params`` its parameters (unknown or inapplicable names, a missing ε, a fraction
    outside [0, 1] fail here, before any training). ``init``, another config of the same
    architecture, fine-tunes its trained model instead of starting from random weights.
    ``monitor`` > 0 holds that many training-split examples out of training and measures PGD
    accuracy on them after every epoch (the method's threat model, 10 steps); the best epoch's
    weights are kept and a fall of more than ``CO_DROP`` is reported as catastrophic overfitting.
    ``precision`` is the arithmetic of the training steps on every device: "fp32" (IEEE float32,
    no TF32 on GPUs), or the GPU speed options "tf32" and "bf16" (autocast); it is part of the
    key, so a GPU and a CPU build the same model unless asked otherwise.
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
    method: str = "standard"
    method_params: dict = field(default_factory=dict)
    init: TrainConfig | None = None
    monitor: int = 0
    eval_subset: int | None = 2000  # test examples for the metrics stored in the checkpoint
    precision: str = "fp32"

    def __post_init__(self):
        dataset_spec(self.dataset)
        opts = model_options(self.model)
        unknown = set(self.model_options) - set(opts)
        if unknown:
            raise InputError(f"unknown option(s) {sorted(unknown)} for model {self.model!r}; valid: {opts}")
        types = {"epochs": int, "batch_size": int, "seed": int, "lr": float, "momentum": float,
                 "weight_decay": float, "label_smoothing": float, "augment": bool, "monitor": int}
        for name, tp in types.items():
            object.__setattr__(self, name, coerce(getattr(self, name), tp, f"TrainConfig.{name}"))
        for name in ("train_subset", "eval_subset"):
            v = getattr(self, name)
            if v is not None and coerce(v, int, f"TrainConfig.{name}") < 1:
                raise InputError(f"TrainConfig.{name} must be a positive int or None (all), got {v!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise InputError("epochs and batch_size must be positive")
        if not self.lr > 0:
            raise InputError(f"TrainConfig.lr (the peak learning rate) must be > 0, got {self.lr}")
        if not 0 <= self.momentum < 1:
            raise InputError(f"TrainConfig.momentum must be in [0, 1), got {self.momentum}")
        if self.weight_decay < 0:
            raise InputError(f"TrainConfig.weight_decay must be >= 0, got {self.weight_decay}")
        if not 0 <= self.label_smoothing < 1:
            raise InputError(f"TrainConfig.label_smoothing must be in [0, 1), got {self.label_smoothing}")
        check_choice(self.schedule, SCHEDULES, "schedule")
        check_choice(self.precision, PRECISIONS, "precision")
        method = get_method(self.method)
        method.resolve(self.method_params)  # names, types, ranges, required ε
        if method.check_model is not None:  # e.g. IBP on a VGG with batch norm: said now, not 14 s into training
            method.check_model(build_model(self.model, self.dataset, **self.model_options))
        if self.monitor < 0:
            raise InputError(f"TrainConfig.monitor must be >= 0, got {self.monitor}")
        if self.monitor and method.threat(self.method_params) is None:
            raise InputError(f"monitor measures PGD accuracy in the method's threat model; {self.method!r} "
                             "has none (use monitor=0)")
        if self.init is not None:
            if not isinstance(self.init, TrainConfig):
                raise InputError(f"init must be a TrainConfig, got {type(self.init).__name__}")
            same = (self.init.dataset, self.init.model, self.init.model_options)
            if same != (self.dataset, self.model, self.model_options):
                raise InputError(f"init trains {same}; fine-tuning needs the same dataset, model and options "
                                 f"as {(self.dataset, self.model, self.model_options)}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def __hash__(self):  # dict fields: hash the configuration key, consistent with ==
        return hash(self.key)

    @property
    def key(self) -> str:
        return config_key({"format": CHECKPOINT_FORMAT, **self.to_dict()})

    @property
    def params(self) -> dict:
        """The method's parameters with every default filled in."""
        return METHODS[self.method].resolve(self.method_params)

    @property
    def threat(self) -> ThreatModel | None:
        """The threat model the method trains against (None for standard and noise training)."""
        return METHODS[self.method].threat(self.method_params)

    def checkpoint_path(self, root=None) -> Path:
        tag = "" if self.method == "standard" else f"-{self.method}"
        if self.threat is not None:
            tag += f"_{self.threat.norm}_{self.threat.eps:g}"
        if self.init is not None:
            tag += "-finetuned"
        return cache_root(root) / "models" / f"{self.dataset}-{self.model}{tag}-{self.key}.pt"


def _schedule(optimizer, config: TrainConfig, total_steps: int):
    if config.schedule == "onecycle":
        if total_steps < 5:  # torch's warm-up phase would be empty (a division by zero inside)
            raise InputError(f"the onecycle schedule needs at least 5 optimiser steps, this run has {total_steps}; "
                             "train longer or use schedule='cyclic'")
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=config.lr, total_steps=total_steps, pct_start=0.25,
            anneal_strategy="linear", div_factor=25.0, final_div_factor=1e3)
    if config.schedule == "cyclic":  # triangle 0 -> lr -> 0 with the peak half-way (Wong et al. 2020)
        half = total_steps / 2
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1 - abs(s + 1 - half) / half)
    if config.schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * s / total_steps)))


def _splits(config: TrainConfig, device) -> tuple[Dataset, Dataset | None]:
    """The training (sub)set and the held-out monitoring examples (disjoint, seeded)."""
    full = load_dataset(config.dataset, "train")
    if not config.monitor:
        return full.subset(config.train_subset, seed=config.seed).to(device), None
    if config.monitor >= len(full):
        raise InputError(f"monitor={config.monitor} holds out the whole training split ({len(full)} examples)")
    perm = torch.randperm(len(full), generator=torch.Generator().manual_seed(config.seed + 2))
    held, rest = full.take(perm[:config.monitor]), full.take(perm[config.monitor:])
    return rest.subset(config.train_subset, seed=config.seed).to(device), held.to(device)


def _monitor(model, held: Dataset, threat: ThreatModel, seed: int) -> dict:
    """Clean, FGSM and PGD-10 accuracy on the held-out examples (robust: correct clean and under the
    attack). FGSM far above PGD is the signature of catastrophic overfitting: the model has learnt
    to defeat the single step, not the ball."""
    x, y = held.images(), held.y
    gen = torch.Generator(device=x.device).manual_seed(seed)
    clean = fgsm = robust = 0
    for i in range(0, len(y), 500):
        xb, yb = x[i:i + 500], y[i:i + 500]
        ok = predict(model, xb) == yb
        one = run_attack("fgsm", model, xb, yb, threat=threat)
        res = run_attack("pgd", model, xb, yb, threat=threat, steps=MONITOR_STEPS, generator=gen)
        clean += int(ok.sum())
        fgsm += int((ok & ~one.success).sum())
        robust += int((ok & ~res.success).sum())
    return {"holdout_clean": clean / len(y), "holdout_fgsm": fgsm / len(y), "holdout_pgd": robust / len(y)}


def overfitting_epochs(history: list[dict]) -> list[int]:
    """Epochs showing catastrophic overfitting: held-out PGD accuracy more than ``CO_DROP`` below
    its best so far, or under ``CO_FLOOR`` with FGSM accuracy more than ``CO_GAP`` above it."""
    out, best = [], 0.0
    for r in history:
        best = max(best, r["holdout_pgd"])
        pgd, gap = r["holdout_pgd"], r["holdout_fgsm"] - r["holdout_pgd"]
        if pgd < best - CO_DROP or (pgd < CO_FLOOR and gap > CO_GAP):
            out.append(r["epoch"])
    return out


@strictly_fp32  # fp32 means IEEE fp32 on GPUs too (the monitor and the test accuracy included)
def train(config: TrainConfig, device=None, progress: bool = True):
    """Train a fresh model for ``config`` on ``device``; return ``(model, metrics)``.

    Seeded by ``config.seed`` through a forked RNG and explicit generators, so the caller's global
    RNG state is left as it was and the same config gives the same model on CPU. ``metrics`` holds
    the final running losses and accuracy, the test accuracy, wall time, the forward and backward
    passes spent (in examples, attack passes included), one row per epoch in ``history`` and,
    with ``monitor``, the kept epoch and whether catastrophic overfitting was detected.
    """
    device = torch.device(device or "cpu")
    ctx = context()
    method = METHODS[config.method]
    params = config.params
    train_set, held = _splits(config, device)
    if ctx.distributed:
        _check_shards(len(train_set), config.batch_size, ctx.world)
    gen = torch.Generator().manual_seed(config.seed)
    adv_gen = torch.Generator(device=device).manual_seed(config.seed + 1)
    steps_per_epoch = math.ceil(len(train_set) / config.batch_size)
    total = steps_per_epoch * config.epochs
    init_state = None
    if config.init is not None:
        base, _ = load_or_train(config.init, device=device, progress=progress)
        init_state = base.state_dict()
    threat = config.threat
    history, best, best_state = [], None, None
    passes = [0, 0]
    cuda = device.type == "cuda"
    with torch.random.fork_rng(devices=[device] if cuda else []):
        torch.manual_seed(config.seed)
        model = to_device(build_model(config.model, config.dataset, **config.model_options), device)
        if init_state is not None:
            model.load_state_dict(init_state)
        net = _data_parallel(model, device) if ctx.distributed else model
        decay = [p for n, p in model.named_parameters() if p.ndim > 1]
        no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
        opt = torch.optim.SGD([{"params": decay, "weight_decay": config.weight_decay},
                               {"params": no_decay, "weight_decay": 0.0}],
                              lr=config.lr, momentum=config.momentum, nesterov=config.momentum > 0)
        sched = _schedule(opt, config, total)
        step = 0
        with Stopwatch(device) as clock:
            bar = progress_bar(total=total, desc=f"train {config.model} ({config.method}) on {config.dataset}",
                               enabled=progress and ctx.main)
            for epoch in range(config.epochs):
                net.train()
                seen = correct = 0
                sums = {"loss": 0.0, "clean": 0.0, "adv": 0.0}
                counts = {"clean": 0, "adv": 0}
                with Stopwatch(device) as epoch_clock:
                    for i, (x, y) in enumerate(batches(train_set, config.batch_size, shuffle=True,
                                                       augment=config.augment, generator=gen,
                                                       shard=(ctx.rank, ctx.world))):
                        # DDP averages the ranks' gradients; weighting each rank's mean loss by its
                        # share of the global batch makes that the global batch's mean
                        n_global = min(config.batch_size, len(train_set) - i * config.batch_size)
                        scale = x.shape[0] * ctx.world / n_global
                        with computing_in(config.precision, device):
                            out = method.step(net, x, y, params, generator=adv_gen, step=step, total=total,
                                              label_smoothing=config.label_smoothing)
                        opt.zero_grad(set_to_none=True)
                        (out.loss * scale if scale != 1.0 else out.loss).backward()
                        opt.step()
                        sched.step()
                        step += 1
                        n = x.shape[0]
                        seen += n
                        passes[0] += out.forwards
                        passes[1] += out.backwards
                        # running sums stay on the device: no host sync per step on CUDA
                        sums["loss"] = sums["loss"] + out.loss.detach().float() * n
                        for name, v in (("clean", out.clean_loss), ("adv", out.adv_loss)):
                            if v is not None:
                                sums[name] = sums[name] + v.float() * n
                                counts[name] += n
                        correct = correct + (out.logits.argmax(1) == y).sum()
                        bar.update(1)
                        if not bar.disable and bar.n % 50 == 0:
                            post = _running(sums, counts, seen, correct)
                            if "clean_loss" not in post:  # fully perturbed batches: probe this one clean
                                with torch.no_grad(), eval_mode(model):
                                    post["clean_loss"] = f"{F.cross_entropy(model(x), y).item():.3f}"
                            bar.set_postfix(epoch=epoch + 1, **post)
                if ctx.distributed:
                    sums, counts, seen, correct = _all_reduce_running(sums, counts, seen, correct, device)
                row = {"epoch": epoch + 1, **_running(sums, counts, seen, correct, numeric=True),
                       "seconds": epoch_clock.seconds}
                if held is not None:
                    row.update(_monitor(model, held, threat, config.seed))
                    if best is None or row["holdout_pgd"] > best["holdout_pgd"]:
                        best, best_state = row, copy.deepcopy(model.state_dict())
                history.append(row)
            bar.close()
        seconds = clock.seconds
    metrics = {"train_loss": history[-1]["loss"], "train_accuracy": history[-1]["accuracy"]}
    if held is not None:
        co = overfitting_epochs(history)
        metrics.update(best_epoch=best["epoch"], catastrophic_overfitting=bool(co),
                       overfitting_epoch=co[0] if co else None)
        if co:
            r = history[co[0] - 1]
            warnings.warn(f"catastrophic overfitting in {config.method} training of {config.model} at epoch {co[0]}: "
                          f"held-out accuracy {r['holdout_fgsm']:.1%} under FGSM but {r['holdout_pgd']:.1%} under "
                          f"PGD-10 (best PGD-10: {best['holdout_pgd']:.1%}); keeping epoch {best['epoch']}",
                          stacklevel=3)
        if best["epoch"] != history[-1]["epoch"]:
            model.load_state_dict(best_state)
    if ctx.distributed and any(isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules()):
        plain = to_device(build_model(config.model, config.dataset, **config.model_options), device)
        plain.load_state_dict(model.state_dict())
        model = plain
    model.eval()
    test = load_dataset(config.dataset, "test").subset(config.eval_subset, seed=config.seed).to(device)
    test_correct = int((predict(model, test.images()) == test.y).sum())
    if ctx.distributed:
        passes = [int(v) for v in _sum_ranks(torch.tensor(passes, dtype=torch.float64), device)]
    metrics.update({"test_accuracy": test_correct / len(test), "test_examples": len(test),
                    "train_examples": len(train_set),
                    "train_seconds": seconds, "forwards": passes[0], "backwards": passes[1],
                    "history": history, "device": str(device), "processes": ctx.world})
    return model, metrics


def _check_shards(n: int, batch_size: int, world: int) -> None:
    last = n % batch_size
    if batch_size < world or 0 < last < world:
        raise InputError(f"{world} processes cannot share batches of {batch_size} examples (the last of "
                         f"{last or batch_size}): every process needs at least one example per batch; start fewer")


def _data_parallel(model, device):
    """DistributedDataParallel around ``model``: gradients all-reduced in buckets during backward.

    Batch norm becomes SyncBatchNorm on CUDA (statistics over the global batch); torch implements
    it for GPUs only, so on CPU each rank normalises its own slice (and rank 0's running
    statistics are broadcast with every forward).
    """
    from torch.nn.parallel import DistributedDataParallel

    if device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return DistributedDataParallel(model, device_ids=[device.index])
    return DistributedDataParallel(model)


def _sum_ranks(t: torch.Tensor, device) -> torch.Tensor:
    import torch.distributed as dist

    t = t.to(device if device.type == "cuda" else "cpu")
    dist.all_reduce(t)
    return t.cpu()


def _all_reduce_running(sums, counts, seen, correct, device):
    """The epoch's running sums over every rank's slices (so the history is the global batch's)."""
    keys = ("loss", "clean", "adv")
    flat = torch.stack([torch.as_tensor(sums[k], dtype=torch.float64).cpu() for k in keys]
                       + [torch.tensor(float(counts["clean"])), torch.tensor(float(counts["adv"])),
                          torch.tensor(float(seen)), torch.as_tensor(correct, dtype=torch.float64).cpu()]
                       ).to(torch.float64)
    flat = _sum_ranks(flat, device)
    return ({k: flat[i] for i, k in enumerate(keys)}, {"clean": int(flat[3]), "adv": int(flat[4])},
            int(flat[5]), flat[6])


def _running(sums, counts, seen, correct, numeric=False) -> dict:
    """Running mean losses (overall, clean, adversarial where computed) and accuracy of an epoch."""
    out = {"loss": float(sums["loss"]) / seen, "accuracy": float(correct) / seen}
    for name in ("clean", "adv"):
        out[f"{name}_loss"] = float(sums[name]) / counts[name] if counts[name] else None
    if numeric:
        return out
    return {k: f"{v:.3f}" for k, v in out.items() if v is not None}


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
    ctx = context()
    path = config.checkpoint_path(cache_root)
    # Under torchrun rank 0 decides (the cache must be on a filesystem every rank sees) and the
    # others follow, so all of them train together or all load.
    loaded = _load(config, path, device) if (path.exists() and not retrain and ctx.main) else None
    if ctx.distributed and broadcast_from_main(loaded is not None) and not ctx.main:
        loaded = _load(config, path, device)
    if loaded is not None:
        return loaded
    if cached_only():
        raise CacheMiss(f"no cached checkpoint {path.name}; fill the cache with `advlab precompute CHAPTER "
                        "--profile PROFILE` and the run's -p values (or run without ADVLAB_CACHED_ONLY)")
    model, metrics = train(config, device=device, progress=progress)
    state = {k: v.cpu().contiguous() for k, v in model.state_dict().items()}
    ckpt = {"format": CHECKPOINT_FORMAT, "config": config.to_dict(), "metrics": metrics,
            "versions": _versions(), "state_dict": state, "weights_sha256": weights_digest(state)}
    if ctx.main:
        atomic_save(ckpt, path)
    barrier()
    info = {k: ckpt[k] for k in ("config", "metrics", "versions")}
    return model, {**info, "path": str(path), "trained": True}


def _load(config: TrainConfig, path: Path, device):
    """``(model, info)`` from a valid checkpoint at ``path``, or None (a bad file is reported and removed)."""
    try:
        ckpt = load_checkpoint(path, map_location=device)
        if ckpt.get("config") != config.to_dict() or ckpt.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"checkpoint {path} was written for another configuration")
        if ckpt.get("weights_sha256") != weights_digest(ckpt["state_dict"]):
            raise CheckpointError(f"checkpoint {path} fails its weights digest (corrupt, or written "
                                  "before advlab stored digests)")
    except CheckpointError as e:
        warnings.warn(f"{e}; retraining", stacklevel=3)
        path.unlink(missing_ok=True)
        return None
    model = to_device(build_model(config.model, config.dataset, **config.model_options), device)
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    info = {k: ckpt[k] for k in ("config", "metrics", "versions")}
    return model, {**info, "path": str(path), "trained": False}
