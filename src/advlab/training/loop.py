"""The training loop: SGD with momentum, the config's method for each step, DDP under torchrun."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..data import Dataset, batches, load_dataset
from ..distributed import Context, context
from ..errors import InputError
from ..models import build_model, eval_mode, predict, to_device
from ..precision import Policy, strictly_fp32
from ..progress import bar as progress_bar
from ..timing import Stopwatch
from .config import TrainConfig
from .methods import METHODS
from .monitor import OverfittingMonitor, split_held_out


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


@dataclass
class _Run:
    """One training run's moving parts, shared by its epochs."""

    config: TrainConfig
    ctx: Context
    device: torch.device
    model: torch.nn.Module
    net: torch.nn.Module  # the model, or DDP around it
    opt: torch.optim.Optimizer
    sched: object
    data: Dataset
    gen: torch.Generator  # batch order
    adv_gen: torch.Generator  # the method's random draws
    total: int
    bar: object
    step: int = 0
    forwards: int = 0
    backwards: int = 0


def _optimizer(model, config: TrainConfig, total: int):
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": config.weight_decay},
                           {"params": no_decay, "weight_decay": 0.0}],
                          lr=config.lr, momentum=config.momentum, nesterov=config.momentum > 0)
    return opt, _schedule(opt, config, total)


def _epoch(run: _Run, epoch: int) -> dict:
    """One pass over the training (sub)set; its history row (running means over every rank)."""
    config, ctx, method, params = run.config, run.ctx, METHODS[run.config.method], run.config.params
    policy = Policy(config.precision)
    net = policy.model(run.net)  # the network computes in the declared precision, the step around it in fp32
    run.net.train()
    seen = correct = 0
    sums = {"loss": 0.0, "clean": 0.0, "adv": 0.0}
    counts = {"clean": 0, "adv": 0}
    with Stopwatch(run.device) as clock:
        for i, (x, y) in enumerate(batches(run.data, config.batch_size, shuffle=True, augment=config.augment,
                                           generator=run.gen, shard=(ctx.rank, ctx.world))):
            # DDP averages the ranks' gradients; weighting each rank's mean loss by its share of
            # the global batch makes that the global batch's mean
            n_global = min(config.batch_size, len(run.data) - i * config.batch_size)
            scale = x.shape[0] * ctx.world / n_global
            with policy.context():
                out = method.step(net, x, y, params, generator=run.adv_gen, step=run.step, total=run.total,
                                  label_smoothing=config.label_smoothing)
            run.opt.zero_grad(set_to_none=True)
            (out.loss * scale if scale != 1.0 else out.loss).backward()
            run.opt.step()
            run.sched.step()
            run.step += 1
            n = x.shape[0]
            seen += n
            run.forwards += out.forwards
            run.backwards += out.backwards
            # running sums stay on the device: no host sync per step on CUDA
            sums["loss"] = sums["loss"] + out.loss.detach().float() * n
            for name, v in (("clean", out.clean_loss), ("adv", out.adv_loss)):
                if v is not None:
                    sums[name] = sums[name] + v.float() * n
                    counts[name] += n
            correct = correct + (out.logits.argmax(1) == y).sum()
            run.bar.update(1)
            if not run.bar.disable and run.bar.n % 50 == 0:
                post = _running(sums, counts, seen, correct)
                if "clean_loss" not in post:  # fully perturbed batches: probe this one clean
                    with torch.no_grad(), eval_mode(run.model):
                        post["clean_loss"] = f"{F.cross_entropy(run.model(x), y).item():.3f}"
                run.bar.set_postfix(epoch=epoch + 1, **post)
    if ctx.distributed:
        sums, counts, seen, correct = _all_reduce_running(sums, counts, seen, correct, run.device)
    return {"epoch": epoch + 1, **_running(sums, counts, seen, correct, numeric=True), "seconds": clock.seconds}


@strictly_fp32  # fp32 means IEEE fp32 on GPUs too (the monitor and the test accuracy included)
def train(config: TrainConfig, device=None, progress: bool = True, init_state: dict | None = None):
    """Train a fresh model for ``config`` on ``device``; return ``(model, metrics)``.

    ``init_state``: the weights fine-tuning starts from when ``config.init`` names another
    configuration (:func:`~advlab.training.load_or_train` passes that model's trained weights).

    Seeded by ``config.seed`` through a forked RNG and explicit generators, so the caller's global
    RNG state is left as it was and the same config gives the same model on CPU. ``metrics`` holds
    the final running losses and accuracy, the test accuracy, wall time, the forward and backward
    passes spent (in examples, attack passes included), one row per epoch in ``history`` and,
    with ``monitor``, the kept epoch and whether catastrophic overfitting was detected.
    """
    device = torch.device(device or "cpu")
    ctx = context()
    train_set, held = split_held_out(config, device)
    if ctx.distributed:
        _check_shards(len(train_set), config.batch_size, ctx.world)
    total = math.ceil(len(train_set) / config.batch_size) * config.epochs
    monitor = OverfittingMonitor(config, held) if held is not None else None
    history = []
    if (config.init is None) != (init_state is None):
        raise InputError("train: pass init_state exactly when config.init names the model to start from "
                         "(load_or_train does)")
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(config.seed)
        model = to_device(build_model(config.model, config.dataset, **config.model_options), device)
        if init_state is not None:
            model.load_state_dict(init_state)
        opt, sched = _optimizer(model, config, total)
        run = _Run(config, ctx, device, model, _data_parallel(model, device) if ctx.distributed else model, opt,
                   sched, train_set, torch.Generator().manual_seed(config.seed),
                   torch.Generator(device=device).manual_seed(config.seed + 1), total,
                   progress_bar(total=total, desc=f"train {config.model} ({config.method}) on {config.dataset}",
                                enabled=progress and ctx.main))
        with Stopwatch(device) as clock:
            for epoch in range(config.epochs):
                row = _epoch(run, epoch)
                if monitor is not None:
                    monitor.observe(model, row)
                history.append(row)
            run.bar.close()
    metrics = {"train_loss": history[-1]["loss"], "train_accuracy": history[-1]["accuracy"]}
    if monitor is not None:
        metrics.update(monitor.finish(model, history))
    model = _without_sync_bn(model, config, device, ctx).eval()
    test = load_dataset(config.dataset, "test").subset(config.eval_subset, seed=config.seed).to(device)
    passes = [run.forwards, run.backwards]
    if ctx.distributed:
        passes = [int(v) for v in _sum_ranks(torch.tensor(passes, dtype=torch.float64), device)]
    metrics.update({"test_accuracy": int((predict(model, test.images()) == test.y).sum()) / len(test),
                    "test_examples": len(test), "train_examples": len(train_set), "train_seconds": clock.seconds,
                    "forwards": passes[0], "backwards": passes[1], "history": history, "device": str(device),
                    "processes": ctx.world})
    return model, metrics


def _without_sync_bn(model, config: TrainConfig, device, ctx: Context):
    """The plain architecture with the trained weights (SyncBatchNorm exists for DDP on GPUs only)."""
    if not (ctx.distributed and any(isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules())):
        return model
    plain = to_device(build_model(config.model, config.dataset, **config.model_options), device)
    plain.load_state_dict(model.state_dict())
    return plain


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
