"""Momentum iterative FGSM (Dong et al. 2018), the transfer-oriented variant of iterative FGSM."""
from __future__ import annotations

import torch

from ..checks import check_positive, check_positive_int
from ..errors import InputError
from ..threat import l1_norm, ThreatModel
from .base import loss_and_grad, register


@register("mifgsm", kind="bounded")
def mifgsm(model, x: torch.Tensor, y: torch.Tensor, *, threat: ThreatModel, steps: int = 10,
           decay: float = 1.0, step_size: float | None = None, targeted: bool = False,
           target: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Iterative FGSM whose direction accumulates L1-normalised gradients with momentum.

    Paper: Dong et al., "Boosting Adversarial Attacks with Momentum", CVPR 2018 (Algorithm 1).
    Threat model: ``threat`` (L∞ as in the paper; L2 with normalised-gradient steps).

    g ← decay·g + ∇ₓL / ‖∇ₓL‖₁ and x ← Π(x + step_size·d(g)), with d the steepest-ascent
    direction of the threat's norm. Momentum stabilises the direction across steps, so the
    examples transfer better to models the attacker cannot see. No random start.

    Other arguments as in :func:`advlab.attacks.pgd`.

    Parameters
    ----------
    steps : int, default 10
        The paper's T.
    decay : float, default 1.0
        The paper's μ.
    step_size : float, default ε / steps
        The paper's α = ε/T.
    generator : optional
        Unused (deterministic); accepted for the common signature.
    """
    check_positive_int(steps=steps)
    if not decay >= 0:
        raise InputError(f"decay must be >= 0, got {decay}")
    step_size = threat.eps / steps if step_size is None else step_size
    check_positive(step_size, "step_size", allow_zero=True)
    labels = target if targeted else y
    g = torch.zeros_like(x)
    x_adv = x.clone()
    for _ in range(steps):
        _, grad, _ = loss_and_grad(model, x_adv, labels, targeted)
        g = decay * g + grad / l1_norm(grad).clamp_min(1e-12).view(-1, *([1] * (x.ndim - 1)))
        x_adv = threat.project(x, threat.step(x_adv, g, step_size))
    return x_adv
