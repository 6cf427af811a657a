"""Auto-PGD (Croce & Hein 2020) with the cross-entropy or the DLR loss."""
from __future__ import annotations

import torch

from ..checks import check_positive_int
from ..threat import ThreatModel
from .base import check_loss, fooled, loss_and_grad, register


def _apgd_run(model, x, y, labels, threat, steps, loss, rho, momentum, targeted, target, generator):
    """One run of Algorithm 1 of the paper on the batch; returns (best adversarial, fooled, best loss point)."""
    n = x.shape[0]
    view = (-1,) + (1,) * (x.ndim - 1)
    # checkpoints: the first after 22% of the steps, then periods shrinking by 3% to at least 6%
    period, min_period, shrink = max(int(0.22 * steps), 1), max(int(0.06 * steps), 1), max(int(0.03 * steps), 1)
    x_adv = threat.sphere_start(x, generator)  # the reference code's start
    l, grad, logits = loss_and_grad(model, x_adv, labels, targeted, loss)
    is_fooled = fooled(logits, y, targeted, target)
    x_fool = torch.where(is_fooled.view(view), x_adv, x)
    x_best, grad_best, l_best = x_adv.clone(), grad.clone(), l.clone()
    step = torch.full((n,), 2 * threat.eps, device=x.device, dtype=x.dtype)  # η⁰ = 2ε
    x_prev = x_adv.clone()
    l_prev = l.clone()
    increases = torch.zeros(n, device=x.device)  # steps since the last checkpoint that raised the loss
    l_best_at_check = l_best.clone()
    reduced_at_check = torch.ones(n, dtype=torch.bool, device=x.device)
    since_check = 0
    for i in range(steps):
        a = momentum if i > 0 else 1.0
        z = threat.project(x, x_adv + step.view(view) * threat.direction(grad))
        x_new = threat.project(x, x_adv + a * (z - x_adv) + (1 - a) * (x_adv - x_prev))
        x_prev, x_adv = x_adv, x_new
        l, grad, logits = loss_and_grad(model, x_adv, labels, targeted, loss)
        f = fooled(logits, y, targeted, target)
        x_fool = torch.where((f & ~is_fooled).view(view), x_adv, x_fool)
        is_fooled |= f
        increases += (l > l_prev).float()
        l_prev = l
        up = l > l_best
        x_best = torch.where(up.view(view), x_adv, x_best)
        grad_best = torch.where(up.view(view), grad, grad_best)
        l_best = torch.where(up, l, l_best)
        since_check += 1
        if since_check == period:
            # halve η where fewer than ρ of the steps raised the loss, or where η was not reduced
            # at the last checkpoint and the best loss has not improved since
            oscillating = increases <= rho * period
            stalled = ~reduced_at_check & (l_best_at_check >= l_best)
            reduce = oscillating | stalled
            reduced_at_check = reduce
            l_best_at_check = l_best.clone()
            step = torch.where(reduce, step / 2, step)
            x_adv = torch.where(reduce.view(view), x_best, x_adv)  # restart from the best point
            grad = torch.where(reduce.view(view), grad_best, grad)
            increases.zero_()
            since_check = 0
            period = max(period - shrink, min_period)
    return x_fool, is_fooled, x_best, l_best


@register("apgd", kind="bounded", scaled=True)
def apgd(model, x: torch.Tensor, y: torch.Tensor, *, threat: ThreatModel, steps: int = 100,
         loss: str = "ce", restarts: int = 1, rho: float = 0.75, momentum: float = 0.75,
         targeted: bool = False, target: torch.Tensor | None = None,
         generator: torch.Generator | None = None) -> torch.Tensor:
    """Projected ascent with momentum and a step size adapted at checkpoints.

    Paper: Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of
    diverse parameter-free attacks", ICML 2020 (Algorithm 1; the reference budget is 100 steps).
    Threat model: ``threat`` (L∞ or L2 ball ∩ [0, 1]).

    η starts at 2ε. Checkpoints fall after 22% of the steps, then at periods shrinking by 3% of
    the steps down to 6%; at each, η is halved (and the iterate restarts from the best point) where
    at most ρ of the steps since the last checkpoint raised the loss, or where η was not halved
    last time and the best loss has not improved. Restarts run only on examples still robust.
    Returns, per example, the first fooling iterate if any, else the highest-loss point.

    Parameters
    ----------
    steps : int, default 100;  loss : {"ce", "dlr"}, default "ce" (DLR is untargeted)
    restarts : int, default 1;  rho : float, default 0.75;  momentum : float, default 0.75
    generator : torch.Generator on any device (advlab.rng), for the random starts
    Other arguments as in :func:`advlab.attacks.pgd`.
    """
    labels = target if targeted else y
    check_positive_int(steps=steps, restarts=restarts)
    check_loss(loss, targeted)
    out = x.clone()
    success = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    best_loss = torch.full((x.shape[0],), -float("inf"), device=x.device, dtype=x.dtype)
    for _ in range(restarts):
        todo = (~success).nonzero().squeeze(1)
        if todo.numel() == 0:
            break
        t_sub = target[todo] if targeted else None
        x_fool, f, x_best, l_best = _apgd_run(model, x[todo], y[todo], labels[todo], threat, steps, loss,
                                              rho, momentum, targeted, t_sub, generator)
        newly = todo[f]
        out[newly] = x_fool[f]
        success[newly] = True
        # not fooled: keep the highest-loss point over restarts
        nf = ~f
        better = nf & (l_best > best_loss[todo])
        out[todo[better]] = x_best[better]
        best_loss[todo[better]] = l_best[better]
    return out
