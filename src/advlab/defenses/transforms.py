"""Input transformations placed in front of a classifier, and BPDA to attack through them.

A transformation that is not differentiable (rounding, say) hides the classifier's gradient: a
gradient attack sees zeros and reports robustness that is not there (Athalye, Carlini & Wagner
2018, "obfuscated gradients"). BPDA, the Backward Pass Differentiable Approximation, runs the
transformation forward but differentiates it as the identity, which exposes the classifier again.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from ..checks import check_positive_int
from ..errors import InputError


class BitDepthReduction(nn.Module):
    """Feature squeezing by colour-depth reduction (Xu, Evans & Qi 2018) in front of ``model``.

    Each pixel in [0, 1] is rounded to one of 2^bits levels. The rounding has zero gradient almost
    everywhere, so plain gradient attacks fail on it; ``straight_through=True`` (what :func:`bpda`
    sets) differentiates the rounding as the identity instead, without changing the forward pass.
    """

    def __init__(self, model: nn.Module, bits: int = 1, straight_through: bool = False):
        super().__init__()
        if not callable(model):  # BitDepthReduction(0) read 0 as the model and failed at forward
            raise InputError(f"BitDepthReduction wraps a model: BitDepthReduction(model, bits=...), got "
                             f"model={model!r}")
        check_positive_int(bits=bits)
        self.model = model
        self.bits = bits
        self.straight_through = straight_through

    def squeeze(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` rounded to ``bits`` bits per pixel (the forward pass of the defense)."""
        levels = 2 ** self.bits - 1
        q = torch.round(x * levels) / levels
        return x + (q - x).detach() if self.straight_through else q

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.squeeze(x))

    def extra_repr(self) -> str:
        return f"bits={self.bits}, straight_through={self.straight_through}"


def bpda(module: nn.Module) -> nn.Module:
    """A copy of ``module`` whose non-differentiable input transformations pass gradients straight
    through (BPDA with the identity as the approximation). The forward pass is unchanged; the
    classifier's weights are shared, not copied."""
    out = copy.copy(module)
    out._modules = dict(module._modules)
    if isinstance(out, BitDepthReduction):
        out.straight_through = True
        return out
    for name, child in module.named_children():
        out._modules[name] = bpda(child) if _has_transform(child) else child
    return out


def _has_transform(m: nn.Module) -> bool:
    return any(isinstance(c, BitDepthReduction) for c in m.modules())
