"""Projected gradient descent (Madry et al. 2018) on the cross-entropy, L∞ or L2."""
from __future__ import annotations

import math

import torch

from ..checks import check_choice, check_positive, check_positive_int
from ..threat import ThreatModel
from .base import attacker_loss, check_loss, fooled, loss_and_grad, register
from .graphs import run_steps

SCHEDULES = ("constant", "cosine")


def _better(f_new, l_new, f_old, l_old):
    """Lexicographic: fooling the model beats not fooling it; then a higher loss wins."""
    return (f_new & ~f_old) | ((f_new == f_old) & (l_new > l_old))


@register("pgd", kind="bounded", scaled=True)
def pgd(model, x: torch.Tensor, y: torch.Tensor, *, threat: ThreatModel, steps: int = 10,
        step_size: float | None = None, restarts: int = 1, random_start: bool = True,
        schedule: str = "constant", loss: str = "ce", targeted: bool = False,
        target: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Projected steepest ascent on the loss inside the threat model, with random restarts.

    Paper: Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks", ICLR 2018.
    Threat model: ``threat`` (L∞ or L2 ball of radius ε intersected with [0, 1]).

    Each step is x ← Π(x + step_size · d), with d the unit steepest-ascent direction of the
    threat's norm (sign of the gradient for L∞, normalised gradient for L2) and Π the projection.
    Per example and over all restarts the attack keeps the worst case seen: an iterate that fools
    the model if any did, otherwise the one of highest loss (single restart: the last iterate).
    Iterates are judged with the logits of the forward pass that computes their gradient, so
    tracking costs no extra passes; with several restarts each final iterate takes one forward.
    The returned batch is evaluated once more to fill ``success``.

    Parameters
    ----------
    model : callable, images (N, C, H, W) in [0, 1] -> logits (N, K)
    x : Tensor (N, C, H, W), float in [0, 1];  y : Tensor (N,), int
    threat : ThreatModel
    steps : int, default 10
    step_size : float, default 2.5 · ε / steps (Madry et al.'s rule: enough to cross the ball)
        In pixel units, measured in the threat's norm.
    restarts : int, default 1
    random_start : bool, default True
        Start at a random point of the ball (else at x): L∞ uniform in the cube; L2 a uniform
        direction at a radius drawn uniformly in [0, ε] (``ThreatModel.random_start``).
    schedule : {"constant", "cosine"}, default "constant"
        Step size per step: fixed, or decayed as step_size · (1 + cos(π t / steps)) / 2.
    loss : {"ce", "dlr"}, default "ce"
    targeted : bool;  target : Tensor (N,), required when targeted
    generator : torch.Generator, optional
        On any device (``advlab.rng``), for the random starts.

    Returns
    -------
    AttackResult
    """
    labels = target if targeted else y
    check_positive_int(steps=steps, restarts=restarts)
    check_choice(schedule, SCHEDULES, "step-size schedule")
    check_loss(loss, targeted)
    if step_size is None:
        step_size = 2.5 * threat.eps / steps
    check_positive(step_size, "step_size", allow_zero=True)
    sizes = [step_size if schedule == "constant" else step_size * 0.5 * (1 + math.cos(math.pi * t / steps))
             for t in range(steps)]

    n = x.shape[0]
    view = (-1,) + (1,) * (x.ndim - 1)
    best_x = x.clone()
    best_fooled = torch.zeros(n, dtype=torch.bool, device=x.device)
    best_loss = torch.full((n,), -float("inf"), device=x.device, dtype=x.dtype)

    def step(size, x_adv, best_x, best_fooled, best_loss, first):
        l, grad, logits = loss_and_grad(model, x_adv, labels, targeted, loss)
        if random_start or not first:  # x itself is no candidate
            # selections, not masked writes: a boolean index would wait for the GPU every step
            upd = fooled(logits, y, targeted, target) & ~best_fooled
            best_x = torch.where(upd.view(view), x_adv, best_x)
            best_loss = torch.where(upd, l, best_loss)
            best_fooled = best_fooled | upd
        return threat.project(x, threat.step(x_adv, grad, size)), best_x, best_fooled, best_loss

    for _ in range(restarts):
        x_adv = threat.random_start(x, generator) if random_start else x.clone()
        x_adv, best_x, best_fooled, best_loss = run_steps(step, (x_adv, best_x, best_fooled, best_loss), sizes,
                                                          counter=model)
        if restarts == 1:  # the last iterate is kept unless an earlier one fooled
            return torch.where(best_fooled.view(view), best_x, x_adv)
        with torch.no_grad():
            logits = model(x_adv)
        f = fooled(logits, y, targeted, target)
        l = attacker_loss(logits, labels, targeted, loss)
        upd = _better(f, l, best_fooled, best_loss)
        best_x = torch.where(upd.view(view), x_adv, best_x)
        best_fooled, best_loss = torch.where(upd, f, best_fooled), torch.where(upd, l, best_loss)
    return best_x
