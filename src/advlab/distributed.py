"""PyTorch's own distributed engine, as ``torchrun`` starts it: one process per device.

``torchrun --nproc_per_node=K -m advlab precompute ...`` sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK`` and the rendezvous address; :func:`init` joins the group (NCCL on CUDA, gloo on
CPU) and picks this process's GPU. Every other module asks :func:`context` for ``(rank, world)``,
which is ``(0, 1)`` outside torchrun, so the same code runs in one process or many.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .errors import InputError


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def context() -> Context:
    """This process's rank and the number of processes (``(0, 1)`` without a process group)."""
    if dist.is_available() and dist.is_initialized():
        return Context(dist.get_rank(), dist.get_world_size())
    return Context()


def launched() -> bool:
    """Whether torchrun (or ``srun`` with the same variables) started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(device: str | None = None) -> torch.device:
    """Join the process group torchrun describes (if any) and return this process's device.

    CUDA: ``cuda:LOCAL_RANK`` and NCCL; CPU: gloo. Without torchrun it returns the default device
    and starts nothing. ``device`` ("cpu" or "cuda") overrides the choice.
    """
    cuda = torch.cuda.is_available() if device is None else device == "cuda"
    if device not in (None, "cpu", "cuda"):
        raise InputError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if cuda and not torch.cuda.is_available():
        raise InputError("device='cuda' but no CUDA device is visible")
    if not launched():
        return torch.device("cuda" if cuda else "cpu")
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if cuda:
        if local >= torch.cuda.device_count():
            raise InputError(f"LOCAL_RANK {local} but only {torch.cuda.device_count()} CUDA device(s) on this node: "
                             "start at most one process per GPU (--nproc_per_node)")
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return torch.device(f"cuda:{local}" if cuda else "cpu")


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if context().distributed:
        dist.barrier()


def gather_to_main(obj):
    """Every rank's ``obj`` as a list on rank 0 (``None`` on the others); ``[obj]`` in one process."""
    ctx = context()
    if not ctx.distributed:
        return [obj]
    out = [None] * ctx.world if ctx.main else None
    dist.gather_object(obj, out, dst=0)
    return out


def broadcast_from_main(obj):
    """Rank 0's ``obj`` on every rank."""
    if not context().distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def shard(items: list, ctx: Context | None = None) -> list:
    """This rank's share of ``items``: every ``world``-th one starting at ``rank`` (balanced)."""
    ctx = ctx or context()
    return items[ctx.rank::ctx.world]
