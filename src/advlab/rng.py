"""Random draws from a ``torch.Generator`` wherever the data lives: one rule for every kernel.

A draw is made on the generator's own device and then moved to the data's, so a CPU generator
serves CUDA data (with the numbers it would give on the CPU) and a CUDA generator serves CUDA
data without a copy. With no generator the draw uses the global RNG of the data's device. The
signatures are torch's own (``rand``, ``randn``, ``randint``), plus ``uniform_like`` and
``normal_like`` for a tensor shaped (and laid out) like another.
"""
from __future__ import annotations

import torch


def _on(generator: torch.Generator | None, device) -> torch.device:
    return generator.device if generator is not None else torch.device(device)


def rand(size, *, generator=None, device="cpu", dtype=None) -> torch.Tensor:
    return torch.rand(size, generator=generator, device=_on(generator, device), dtype=dtype).to(device)


def randn(size, *, generator=None, device="cpu", dtype=None) -> torch.Tensor:
    return torch.randn(size, generator=generator, device=_on(generator, device), dtype=dtype).to(device)


def randint(low: int, high: int, size, *, generator=None, device="cpu") -> torch.Tensor:
    return torch.randint(low, high, size, generator=generator, device=_on(generator, device)).to(device)


def uniform_like(x: torch.Tensor, generator=None) -> torch.Tensor:
    """U[0, 1) draws shaped and laid out like ``x``, on x's device."""
    return torch.empty_like(x, device=_on(generator, x.device)).uniform_(generator=generator).to(x.device)


def normal_like(x: torch.Tensor, generator=None) -> torch.Tensor:
    """N(0, 1) draws shaped and laid out like ``x``, on x's device."""
    return torch.empty_like(x, device=_on(generator, x.device)).normal_(generator=generator).to(x.device)
