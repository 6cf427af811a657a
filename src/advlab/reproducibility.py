"""Pinned CPU kernels: the same float summation order on every x86-64 machine.

PyTorch picks its CPU kernels by instruction set (ATen's vectorised kernels for AVX2 or AVX-512),
oneDNN picks its convolutions the same way, MKL picks its GEMM by processor (Intel or not), and
all three split reductions across the intra-op threads. Each choice changes the order of float
additions, so a model trained on an AVX-512 machine is not bitwise the model trained on an AVX2
machine, and SGD amplifies those last bits into different weights within an epoch.

:func:`pin_cpu_kernels` fixes every choice through the environment variables the libraries read
when they first run a kernel: ATen and oneDNN capped at AVX2 (which every x86-64 CPU of the last
decade has), MKL in its conditional-numerical-reproducibility mode ``COMPATIBLE`` (the one branch
MKL documents as identical on Intel and non-Intel processors), and two intra-op threads. The test
suite and ``advlab references`` run under it, so the nbval references hold on any x86-64 CPU; the
book a user builds does not (its numbers may move in the last bits from one CPU to another).

It must run before the process's first tensor operation: the libraries read the variables once.
This module does not import torch, so a ``conftest.py`` can call it first.
"""
from __future__ import annotations

import os
import platform
import sys

PIN_ENV = "ADVLAB_PIN_CPU"  # "0": keep the machine's own kernels (the references may then fail)
PINNED_CACHE = "pinned"  # the folder under the cache root that holds what pinned processes computed
PINNED_KERNELS = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "MKL_CBWR": "COMPATIBLE",
    "OMP_NUM_THREADS": "2",
}
X86 = ("x86_64", "amd64")


def pinnable(machine: str | None = None) -> bool:
    """Whether the pin applies: x86-64 only (Arm runs other kernels, so other numbers, altogether)."""
    return (machine or platform.machine()).lower() in X86


def pin_cpu_kernels(environ=os.environ, machine: str | None = None) -> dict[str, str]:
    """Set :data:`PINNED_KERNELS` in ``environ`` (overriding what was there); returns what was set.

    Nothing is set on a non-x86 machine or when ``ADVLAB_PIN_CPU=0``. Child processes (papermill
    and nbval kernels, torchrun workers) inherit the pin through the environment.
    """
    if environ.get(PIN_ENV) == "0" or not pinnable(machine):
        return {}
    environ.update(PINNED_KERNELS)
    if environ is os.environ and "torch" in sys.modules:  # OpenMP read OMP_NUM_THREADS when torch loaded
        sys.modules["torch"].set_num_threads(int(PINNED_KERNELS["OMP_NUM_THREADS"]))
    return dict(PINNED_KERNELS)


def pinned(environ=os.environ) -> bool:
    """Whether this process computes with the pinned kernels (every variable as :data:`PINNED_KERNELS` says)."""
    return (pinnable() and environ.get(PIN_ENV) != "0"
            and all(environ.get(k) == v for k, v in PINNED_KERNELS.items()))


def check_cache_kernels(root) -> None:
    """A model cache named :data:`PINNED_CACHE` takes only what pinned processes compute.

    Its keys name configurations, not kernels: a model trained with the machine's own kernels and
    stored there would be taken for the pinned one, and the references would move (it happened to
    a plain papermill run pointed at .cache/pinned).
    """
    from pathlib import Path

    if Path(root).name == PINNED_CACHE and pinnable() and not pinned():
        from .errors import InputError

        raise InputError(f"{root} holds the test suite's models, computed with pinned CPU kernels; this process "
                         "is not pinned (advlab.reproducibility.pin_cpu_kernels) and would store other models "
                         "under the same keys: use another cache folder (ADVLAB_CACHE)")


def cpu_kernels() -> dict[str, str]:
    """What this process computes with: the machine, ATen's capability and the pinned variables."""
    import torch

    return {"machine": platform.machine(), "processor": _processor(),
            "aten_capability": torch.backends.cpu.get_cpu_capability(), "threads": str(torch.get_num_threads()),
            **{k: os.environ.get(k, "") for k in PINNED_KERNELS}}


def check_pinned() -> None:
    """Raise if the pin was asked for but the kernels were already chosen before it was set."""
    import torch

    if os.environ.get(PIN_ENV) == "0" or not pinnable():
        return
    want, got = os.environ.get("ATEN_CPU_CAPABILITY", ""), torch.backends.cpu.get_cpu_capability()
    threads = os.environ.get("OMP_NUM_THREADS", "")
    if got.lower() != want.lower() or str(torch.get_num_threads()) != threads:
        from .errors import AdvlabError

        raise AdvlabError(f"CPU kernels are {got} on {torch.get_num_threads()} threads, not the pinned "
                          f"{want.upper() or '?'} on {threads or '?'}: pin_cpu_kernels() ran after this process's "
                          "first tensor operation; call it before importing torch")


def _processor() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()
