"""Arithmetic precision as a declared choice: "fp32" is IEEE float32, "tf32" lets GPU matrix
products and convolutions round their inputs to TF32, "bf16" is bf16 autocast.

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

import torch

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


def computing_in(precision: str, device) -> contextmanager:
    """The context a training step or an evaluation runs in: strict fp32, TF32, or bf16 autocast on ``device``."""
    if precision == "fp32":
        return strict_fp32()
    if precision == "tf32":
        return _fp32_as("tf32")
    if precision == "bf16":
        return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
    from .errors import InputError

    raise InputError(f"unknown precision {precision!r}; valid: {PRECISIONS}")
