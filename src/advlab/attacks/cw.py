"""Carlini-Wagner L2 attack (Carlini & Wagner 2017), batched with per-example search and stopping."""
from __future__ import annotations

import math

import torch

from ..checks import check_positive_int
from ..errors import InputError
from ..threat import ThreatModel, keep_layout
from .base import register

_BIG = 1e10


def _margin(logits, labels, targeted, confidence):
    """CW's f6: max(Z_y − max_{i≠y} Z_i + κ, 0) (untargeted; roles swapped when targeted)."""
    real = logits.gather(1, labels[:, None]).squeeze(1)
    other = logits.scatter(1, labels[:, None], -float("inf")).amax(1)
    gap = other - real if targeted else real - other
    return (gap + confidence).clamp_min(0), gap


@register("cw", kind="minimum-norm", norms=("l2",))
def carlini_wagner_l2(model, x: torch.Tensor, y: torch.Tensor, *, threat: ThreatModel | None = None,
                      steps: int = 1000, lr: float = 0.01, initial_const: float = 1e-3,
                      binary_search_steps: int = 9, confidence: float = 0.0, abort_early: bool = True,
                      targeted: bool = False, target: torch.Tensor | None = None,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """Minimise ‖x' − x‖₂² + c·f(x') over x' = (tanh(w) + 1)/2 with Adam; binary search on c.

    Paper: Carlini & Wagner, "Towards Evaluating the Robustness of Neural Networks", IEEE S&P 2017
    (the L2 attack; f is their f6 on the logits Z with confidence κ).
    Threat model: minimum-norm L2 attack; the tanh change of variables keeps x' in the pixel box.
    With an L2 ``threat``, the result is projected onto its ε-ball (``success`` re-evaluated).

    Per example and independently: c starts at ``initial_const``; after each search step it is
    bisected between the largest failing and smallest succeeding value, or multiplied by 10 while
    no value has succeeded. Within a search step an example stops early once its loss has not
    improved by 0.01% over a tenth of the steps (``abort_early``), and leaves the batch, so it
    costs nothing more. The smallest-L2 successful iterate over all steps is kept; examples never
    fooled come back as the clean input with ``success`` False.

    Parameters
    ----------
    model : callable, images (N, C, H, W) in [0, 1] -> logits (N, K)
    x : Tensor (N, C, H, W) in [0, 1];  y : Tensor (N,), int
    threat : ThreatModel with norm "l2", optional
    steps : int, default 1000 (the paper uses up to 10,000)  -- Adam steps per search step
    lr : float, default 0.01 (Adam, in tanh space)
    initial_const : float, default 1e-3 (the paper's)
    binary_search_steps : int, default 9 (the paper's)
    confidence : float, default 0 (κ, in logit units)
    targeted : bool;  target : Tensor (N,), required when targeted
    generator : unused (deterministic); accepted for the common signature

    Returns
    -------
    AttackResult
    """
    labels = target if targeted else y
    check_positive_int(steps=steps, binary_search_steps=binary_search_steps)
    if lr <= 0 or initial_const <= 0 or confidence < 0:
        raise InputError("lr and initial_const must be > 0 and confidence >= 0")

    n, dev = x.shape[0], x.device
    view = (-1,) + (1,) * (x.ndim - 1)
    w0 = torch.atanh((2 * x - 1) * (1 - 1e-6))  # start at x itself
    const = torch.full((n,), float(initial_const), device=dev, dtype=x.dtype)
    lower = torch.zeros(n, device=dev, dtype=x.dtype)
    upper = torch.full((n,), _BIG, device=dev, dtype=x.dtype)
    best_l2 = torch.full((n,), float("inf"), device=dev, dtype=x.dtype)
    best_adv = x.clone()
    beta1, beta2, adam_eps = 0.9, 0.999, 1e-8
    check_every = max(steps // 10, 1)
    for _ in range(binary_search_steps):
        idx = torch.arange(n, device=dev)  # examples still optimising in this search step
        w = w0.clone()
        m = torch.zeros_like(w)
        v = torch.zeros_like(w)
        found = torch.zeros(n, dtype=torch.bool, device=dev)
        prev = torch.full((n,), float("inf"), device=dev, dtype=x.dtype)
        for t in range(1, steps + 1):
            w_a = w.requires_grad_(True)
            with torch.enable_grad():
                x_adv = keep_layout((torch.tanh(w_a) + 1) / 2, x)
                logits = model(x_adv)
                f, gap = _margin(logits, labels[idx], targeted, confidence)
                l2sq = (x_adv - x[idx]).flatten(1).pow(2).sum(1)
                loss = l2sq + const[idx] * f
                g, = torch.autograd.grad(loss.sum(), w_a)
            with torch.no_grad():
                x_adv, l2sq, loss = x_adv.detach(), l2sq.detach(), loss.detach()
                # the iterate just evaluated: successful (with margin κ) and smaller than the best?
                ok = gap.detach() + confidence < 0 if confidence > 0 else gap.detach() < 0
                found[idx] |= ok
                # written through the active indices, no `better.any()`: no GPU sync per step
                better = ok & (l2sq < best_l2[idx])
                best_l2[idx] = torch.where(better, l2sq, best_l2[idx])
                best_adv[idx] = torch.where(better.view(view), x_adv, best_adv[idx])
                # Adam, by hand so per-example state can leave with its example
                w = w.detach()
                m.mul_(beta1).add_(g, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                bc2 = math.sqrt(1 - beta2 ** t)  # bias corrections folded into scalars
                w.addcdiv_(m, v.sqrt().div_(bc2).add_(adam_eps), value=-lr / (1 - beta1 ** t))
                if abort_early and t % check_every == 0:
                    keep = loss <= prev[idx] * 0.9999
                    prev[idx] = loss
                    if not keep.all():
                        idx, w, m, v = idx[keep], w[keep], m[keep], v[keep]
                        if idx.numel() == 0:
                            break
        # per-example binary search on c
        lower = torch.where(found, lower, torch.maximum(lower, const))
        upper = torch.where(found, torch.minimum(upper, const), upper)
        const = torch.where(upper < _BIG, (lower + upper) / 2, const * 10)
    x_adv = torch.where(torch.isfinite(best_l2).view(view), best_adv, x)  # never fooled: x itself
    if threat is not None:
        x_adv = threat.project(x, x_adv)
    return x_adv
