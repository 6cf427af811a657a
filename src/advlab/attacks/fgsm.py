"""Fast gradient sign method (Goodfellow, Shlens & Szegedy 2015)."""
from __future__ import annotations

import torch

from ..threat import ThreatModel
from .base import loss_and_grad, register


@register("fgsm", kind="bounded", scaled=True)
def fgsm(model, x: torch.Tensor, y: torch.Tensor, *, threat: ThreatModel, targeted: bool = False,
         target: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """One steepest-ascent step of length ε on the cross-entropy, then projection.

    Paper: Goodfellow et al., "Explaining and Harnessing Adversarial Examples", ICLR 2015.
    Threat model: ``threat`` (L∞: x + ε·sign(∇ₓL), the linearised loss's maximiser over the
    cube; L2: x + ε·∇ₓL/‖∇ₓL‖₂, the "fast gradient method"), clipped to [0, 1].

    Parameters
    ----------
    model : callable, images (N, C, H, W) in [0, 1] -> logits (N, K)
    x : Tensor (N, C, H, W), float in [0, 1]
    y : Tensor (N,), int, true labels
    threat : ThreatModel
    targeted : bool, default False
        Step down the cross-entropy of ``target`` instead of up the one of ``y``.
    target : Tensor (N,), int, required when targeted
    generator : unused (FGSM is deterministic); accepted so every attack has one signature.

    Returns
    -------
    AttackResult with ``x_adv`` (N, C, H, W) in ball ∩ box; per example 1 backward and 2 forward
    passes (the gradient's, and the evaluation of the result).
    """
    _, grad, _ = loss_and_grad(model, x, target if targeted else y, targeted)
    return threat.project(x, threat.step(x, grad, threat.eps))
