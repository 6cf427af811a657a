"""Arithmetic precision as a declared choice: "fp32" is IEEE float32, "tf32" lets GPU matrix
products and convolutions round their inputs to TF32, "bf16" runs the model under bf16 autocast.

One policy (:class:`Policy`), applied by the training loop and the evaluation engine alike: the
*model* computes in the declared precision (:meth:`Policy.model`), and everything around it (an
attack's steps and projections, the loss, the optimiser, every bound) in IEEE float32, or TF32
for "tf32" (:meth:`Policy.context`). Certificates accept "fp32" only (declared evaluations refuse
the others), and their entry points run under :func:`strictly_fp32` whatever the caller set.

PyTorch lets cuDNN convolutions use TF32 by default on Ampere and later GPUs (10-bit mantissa
products): a convolution's output then differs from float32 by ~1e-3 relative, which moves a
certified bound the wrong way as easily as the right one. So "fp32" here switches TF32 off for
matrix products and convolutions (:func:`strict_fp32`), and everything under
:mod:`advlab.certify` runs that way whatever the caller's global flags. CPUs have no TF32: on a
CPU these contexts change nothing. "tf32" is there for a profile that asks for the speed (about 6×
on an H100 for a full-width VGG-19, measured by benchmarks/gpu_throughput.py against IEEE fp32).
"""
from __future__ import annotations

import functools
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

PRECISIONS = ("fp32", "tf32", "bf16")


def _flags():
    # torch >= 2.9's per-backend API; cuDNN's conv and rnn flags move together so the legacy
    # `allow_tf32` readers elsewhere see one consistent value
    return (torch.backends.cuda.matmul, torch.backends.cudnn.conv, torch.backends.cudnn.rnn)


_PER_BACKEND = hasattr(torch.backends.cudnn, "conv")  # False before torch 2.9: two booleans instead


def fp32_modes() -> tuple[str, str, str]:
    """How float32 matrix products, cuDNN convolutions and cuDNN RNNs round now: ``"ieee"`` or ``"tf32"``
    (``"none"``: torch >= 2.9's unset default). Read the same way on every supported torch."""
    if _PER_BACKEND:
        return tuple(f.fp32_precision for f in _flags())
    cudnn = "tf32" if torch.backends.cudnn.allow_tf32 else "ieee"
    return ("tf32" if torch.backends.cuda.matmul.allow_tf32 else "ieee", cudnn, cudnn)


def _set_modes(modes) -> None:
    if _PER_BACKEND:
        for f, v in zip(_flags(), modes):
            f.fp32_precision = v
    else:
        torch.backends.cuda.matmul.allow_tf32 = modes[0] == "tf32"
        torch.backends.cudnn.allow_tf32 = modes[1] == "tf32"


@contextmanager
def _fp32_as(mode: str):
    saved = fp32_modes()
    try:
        _set_modes((mode,) * 3)
        yield
    finally:
        _set_modes(saved)


def strict_fp32():
    """Matrix products and convolutions in IEEE float32 (no TF32) inside; the caller's flags restored after."""
    return _fp32_as("ieee")


def strictly_fp32(fn):
    """Decorator: ``fn`` runs under :func:`strict_fp32`."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with strict_fp32():
            return fn(*args, **kwargs)
    return wrapper


class Autocast(nn.Module):
    """``model`` run under bf16 autocast on its inputs' device, returning float32 logits.

    A GPU speed option (matrix products in bf16, accumulation and everything around the model in
    float32); results then differ slightly from float32 ones.
    """

    def __init__(self, model: nn.Module, dtype: torch.dtype = torch.bfloat16):
        super().__init__()
        self.model = model
        self.dtype = dtype

    def forward(self, x):
        with torch.autocast(x.device.type, dtype=self.dtype):
            return self.model(x).float()


@dataclass(frozen=True)
class Policy:
    """A declared precision as the training loop and the evaluation engine apply it: :meth:`model`
    is the network as it computes, :meth:`context` what a training step or an evaluation block runs in."""

    precision: str = "fp32"

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            from .errors import InputError

            raise InputError(f"unknown precision {self.precision!r}; valid: {PRECISIONS}")

    def model(self, model: nn.Module) -> nn.Module:
        """``model`` under bf16 autocast (:class:`Autocast`) for "bf16"; itself otherwise."""
        return Autocast(model) if self.precision == "bf16" and not isinstance(model, Autocast) else model

    def context(self):
        """TF32 products for "tf32"; IEEE fp32 otherwise (bf16 is the model's own, inside :class:`Autocast`)."""
        return _fp32_as("tf32") if self.precision == "tf32" else strict_fp32()
