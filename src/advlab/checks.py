"""Input checks shared by attacks, evaluation and training (one place, one wording)."""
from __future__ import annotations

from typing import Iterable

import torch

from .errors import InputError


def check_images(x: torch.Tensor, name: str = "x") -> None:
    """Require a float batch of shape (N, C, H, W) with finite pixels in [0, 1]."""
    if not isinstance(x, torch.Tensor):
        raise InputError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise InputError(f"{name} must have shape (N, C, H, W), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise InputError(
            f"{name} must be a floating-point tensor of pixels in [0, 1], got dtype {x.dtype}"
            " (convert uint8 images with x.float() / 255)"
        )
    if x.shape[0] == 0:
        raise InputError(f"{name} is an empty batch")
    if not torch.isfinite(x).all():
        raise InputError(f"{name} holds NaN or infinite values")
    lo, hi = x.min().item(), x.max().item()
    if lo < 0.0 or hi > 1.0:
        raise InputError(f"{name} must hold pixels in [0, 1], found values in [{lo:.4g}, {hi:.4g}]")


def check_model_inputs(model, x: torch.Tensor, name: str = "x") -> None:
    """Require the model's parameters and ``x`` on one device and in one floating dtype.

    Without this a float64 batch or a model left on another device fails deep inside the first
    layer with torch's own message. Callables that are no ``nn.Module`` (or hold no tensors) pass.
    """
    if not isinstance(model, torch.nn.Module):
        return
    p = next(model.parameters(), None)
    if p is None:
        p = next(model.buffers(), None)
    if p is None:
        return
    if p.device != x.device:
        raise InputError(f"the model is on {p.device} but {name} is on {x.device}: put them on one device "
                         f"(model.to({name}.device) or {name}.to('{p.device}'))")
    if p.is_floating_point() and p.dtype != x.dtype:
        raise InputError(f"{name} is {x.dtype} but the model computes in {p.dtype}: pass {name}.to({p.dtype})")


LABEL_DTYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)


def check_labels(y: torch.Tensor, x: torch.Tensor, name: str = "y", num_classes: int | None = None) -> None:
    """Require integer labels of shape (N,) on the images' device (any integer dtype; use ``y.long()``)."""
    if not isinstance(y, torch.Tensor):
        raise InputError(f"{name} must be a torch.Tensor, got {type(y).__name__}")
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise InputError(f"{name} must have shape ({x.shape[0]},), got {tuple(y.shape)}")
    if y.dtype not in LABEL_DTYPES:
        raise InputError(f"{name} must hold integer class labels, got dtype {y.dtype}")
    if y.device != x.device:
        raise InputError(f"{name} is on {y.device} but the images are on {x.device}")
    if num_classes is not None:
        check_label_range(y, num_classes, name)


def check_label_range(y: torch.Tensor, num_classes: int, name: str = "y") -> None:
    """Require labels in [0, num_classes) (the model's number of logits)."""
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= num_classes:
        raise InputError(f"{name} must hold class labels in [0, {num_classes}) for a model with {num_classes} "
                         f"logits, found labels in [{lo}, {hi}]")


def check_choice(value: str, choices: Iterable[str], what: str) -> None:
    choices = sorted(choices)
    if value not in choices:
        raise InputError(f"unknown {what} {value!r}; valid: {', '.join(choices)}")


def check_positive_int(**values) -> None:
    """Require each keyword's value to be an int >= 1 (bools are not counts)."""
    for name, v in values.items():
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise InputError(f"{name} must be a positive integer, got {v!r}")


def check_positive(value, name: str, allow_zero: bool = False) -> None:
    ok = value >= 0 if allow_zero else value > 0
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise InputError(f"{name} must be {bound}, got {value}")
