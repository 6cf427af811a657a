"""Auto-PGD (Croce & Hein 2020) with the cross-entropy or the DLR loss, and APGD-T, its targeted-DLR
variant over the highest-scoring classes (AutoAttack's second attack)."""
from __future__ import annotations

import torch

from ..checks import check_positive_int
from ..errors import InputError
from ..threat import ThreatModel
from .base import attacker_loss, check_loss, fooled, objective_and_grad, register


def _apgd_run(model, x, threat, steps, objective, is_fooled_by, rho, momentum, generator):
    """One run of Algorithm 1 of the paper on the batch, ascending ``objective(logits)`` (per example);
    ``is_fooled_by(logits)`` says which examples are fooled. Returns (first fooling iterate or x,
    fooled, best loss point, best loss)."""
    n = x.shape[0]
    view = (-1,) + (1,) * (x.ndim - 1)
    # checkpoints: the first after 22% of the steps, then periods shrinking by 3% to at least 6%
    period, min_period, shrink = max(int(0.22 * steps), 1), max(int(0.06 * steps), 1), max(int(0.03 * steps), 1)
    x_adv = threat.sphere_start(x, generator)  # the reference code's start
    l, grad, logits = objective_and_grad(model, x_adv, objective)
    is_fooled = is_fooled_by(logits)
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
        l, grad, logits = objective_and_grad(model, x_adv, objective)
        f = is_fooled_by(logits)
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

    Other arguments as in :func:`advlab.attacks.pgd`.

    Parameters
    ----------
    steps : int, default 100
    loss : {"ce", "dlr"}, default "ce"
        DLR is untargeted.
    restarts : int, default 1
    rho : float, default 0.75
    momentum : float, default 0.75
    generator : torch.Generator, optional
        On any device (``advlab.rng``), for the random starts.
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
        lab, y_sub, t_sub = labels[todo], y[todo], target[todo] if targeted else None
        x_fool, f, x_best, l_best = _apgd_run(
            model, x[todo], threat, steps, lambda z: attacker_loss(z, lab, targeted, loss),
            lambda z: fooled(z, y_sub, targeted, t_sub), rho, momentum, generator)
        newly = todo[f]
        out[newly] = x_fool[f]
        success[newly] = True
        # not fooled: keep the highest-loss point over restarts
        nf = ~f
        better = nf & (l_best > best_loss[todo])
        out[todo[better]] = x_best[better]
        best_loss[todo[better]] = l_best[better]
    return out


def dlr_targeted_loss(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The targeted DLR loss of Croce & Hein (2020), to maximise: −(z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2),
    π the classes sorted by decreasing logit; invariant to shifting and scaling the logits."""
    srt = logits.sort(dim=1, descending=True).values
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    z_t = logits.gather(1, target[:, None]).squeeze(1)
    return -(z_y - z_t) / (srt[:, 0] - (srt[:, 2] + srt[:, 3]) / 2 + 1e-12)


@register("apgd-t", kind="bounded", targeted=False, scaled=True)
def apgd_t(model, x: torch.Tensor, y: torch.Tensor, *, threat: ThreatModel, steps: int = 100, targets: int = 9,
           restarts: int = 1, rho: float = 0.75, momentum: float = 0.75, targeted: bool = False,
           target: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """APGD on the targeted DLR loss, towards each of the ``targets`` highest-scoring other classes in turn.

    Paper: Croce & Hein, ICML 2020 (APGD-T, the second attack of AutoAttack's standard version, which
    uses 9 target classes, 100 steps and one restart each). Threat model: ``threat`` (L∞ or L2 ball ∩
    [0, 1]). An untargeted attack: success is misclassification. For target rank k = 1, …, ``targets``,
    APGD ascends −(z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2) with t the k-th highest other class at the
    clean input, on the examples no earlier run fooled. Needs at least 4 classes.

    Other arguments as in :func:`advlab.attacks.pgd`.

    Parameters
    ----------
    steps : int, default 100
        Per target and restart.
    targets : int, default 9
        Capped at classes − 1.
    restarts : int, default 1
        Per target.
    rho, momentum, generator
        As in :func:`apgd`.
    """
    check_positive_int(steps=steps, targets=targets, restarts=restarts)
    with torch.no_grad():
        logits0 = model(x)
    k = logits0.shape[1]
    if k < 4:
        raise InputError(f"apgd-t's targeted DLR loss needs at least 4 classes, the model has {k}")
    ranked = logits0.scatter(1, y[:, None], -float("inf")).argsort(dim=1, descending=True)  # other classes
    out = x.clone()
    success = logits0.argmax(1) != y
    best_loss = torch.full((x.shape[0],), -float("inf"), device=x.device, dtype=x.dtype)
    for rank in range(min(targets, k - 1)):
        for _ in range(restarts):
            todo = (~success).nonzero().squeeze(1)
            if todo.numel() == 0:
                return out
            y_sub, t_sub = y[todo], ranked[todo, rank]
            x_fool, f, x_best, l_best = _apgd_run(
                model, x[todo], threat, steps, lambda z: dlr_targeted_loss(z, y_sub, t_sub),
                lambda z: z.argmax(1) != y_sub, rho, momentum, generator)
            out[todo[f]] = x_fool[f]
            success[todo[f]] = True
            better = ~f & (l_best > best_loss[todo])
            out[todo[better]] = x_best[better]
            best_loss[todo[better]] = l_best[better]
    return out
