"""HopSkipJump (Chen, Jordan & Wainwright 2020): a label-only L2 attack along the decision boundary."""
from __future__ import annotations

import math

import torch

from ...checks import check_positive, check_positive_int
from ...threat import L2, ThreatModel, keep_layout, per_example
from ..base import register
from ...rng import rand, randn


def _labels(answer, output):
    return answer if output == "label" else answer[0] if output == "top1" else answer.argmax(1)


@register("hsja", kind="decision-based", norms=("l2",), outputs=("label", "top1", "probs", "logits"))
def hop_skip_jump(oracle, x: torch.Tensor, y: torch.Tensor, *, threat: ThreatModel | None = None,
                  queries: int | None = None, steps: int = 40, init_evals: int = 100, max_evals: int = 10000,
                  gamma: float = 1.0, init_tries: int = 100, targeted: bool = False,
                  target: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Walk along the decision boundary toward x, steering by a gradient direction estimated from labels.

    Paper: Chen et al., "HopSkipJumpAttack: A Query-Efficient Decision-Based Attack", IEEE S&P 2020
    (Algorithm 2, L2, untargeted or targeted; the reference code's defaults).
    Threat model: minimum-norm L2, label-only: each query returns the top label and counts.
    With an L2 ``threat`` the result is projected onto its ball (``success`` then says whether it
    still fools).

    Start from uniform noise that is misclassified (up to ``init_tries`` draws), then bisect
    between it and x to the boundary. Each iteration t: estimate the boundary's normal at the
    current point from B_t = min(init_evals·√t, max_evals) labels of x_t + δu (u uniform on the
    sphere, δ = 0.1 at t = 1, then √d·θ·‖x_t − x‖ with θ = γ / d^{3/2}); step along it by
    ‖x_t − x‖/√t, halved until the point is still adversarial; bisect back to the boundary
    between x and that point to precision θ. The first query is x itself: a misclassified input
    stops there and comes back unchanged. Examples stop when their budget cannot pay for the
    next stage; examples never made adversarial come back as x.

    Parameters
    ----------
    oracle : QueryOracle, any output (only the label is used)
    queries : int, optional: per example. Default: the oracle's budget.
    steps : int, default 40;  init_evals : int, default 100;  max_evals : int, default 10,000
    gamma : float, default 1.0 (sets θ);  init_tries : int, default 100
    targeted : bool;  target : Tensor (N,), required when targeted
    generator : torch.Generator, optional
        On any device (``advlab.rng``).
    """
    budget = oracle.attack_budget(queries, "hsja")
    check_positive_int(steps=steps, init_evals=init_evals, max_evals=max_evals, init_tries=init_tries)
    check_positive(gamma, "gamma")
    labels = target if targeted else y
    n, dev = x.shape[0], x.device
    d = x[0].numel()
    theta = gamma / (d * math.sqrt(d))

    def left(idx):
        return budget - oracle.queries[idx]

    def adversarial(z, idx):
        pred = _labels(oracle(keep_layout(z, x), idx), oracle.output)
        return pred == labels[idx] if targeted else pred != labels[idx]

    def bisect(idx, far, precision):  # far: adversarial points; returns boundary points on the adversarial side
        lo = torch.zeros(idx.numel(), device=dev, dtype=x.dtype)
        hi = torch.ones_like(lo)
        x0 = x[idx]
        while True:
            open_ = ((hi - lo) > precision) & (left(idx) >= 1)
            if not open_.any():
                break
            j = open_.nonzero().squeeze(1)
            mid = (lo[j] + hi[j]) / 2
            blend = (1 - per_example(mid, x0[j])) * x0[j] + per_example(mid, x0[j]) * far[j]
            adv = adversarial(blend, idx[j])
            hi[j] = torch.where(adv, mid, hi[j])
            lo[j] = torch.where(adv, lo[j], mid)
        return (1 - per_example(hi, x0)) * x0 + per_example(hi, x0) * far

    # a misclassified input needs no perturbation: one query, and it stops (the walk would shrink
    # its distance to x below float resolution)
    everyone = torch.arange(n, device=dev)
    cur = x.clone()
    found = torch.zeros(n, dtype=torch.bool, device=dev)
    already = adversarial(x, everyone)
    for _ in range(init_tries):
        todo = (~found & ~already & (left(everyone) >= 1)).nonzero().squeeze(1)
        if todo.numel() == 0:
            break
        noise = rand(x[todo].shape, generator=generator, device=dev, dtype=x.dtype)
        ok = adversarial(noise, todo)
        cur[todo[ok]] = noise[ok]
        found[todo[ok]] = True
    live = found.nonzero().squeeze(1)
    if live.numel():
        cur[live] = bisect(live, cur[live], theta)

    for t in range(1, steps + 1):
        evals = min(int(init_evals * math.sqrt(t)), max_evals)
        live = (found & (left(everyone) >= evals + 2)).nonzero().squeeze(1)
        if live.numel() == 0:
            break
        b = live.numel()
        xt = cur[live]
        dist = L2.norm(xt - x[live])
        delta = torch.full_like(dist, 0.1) if t == 1 else math.sqrt(d) * theta * dist
        # gradient direction from the labels of points around x_t
        u = L2.normalize(randn((b * evals, *x.shape[1:]), generator=generator, device=dev, dtype=x.dtype))
        u = u.view(b, evals, *x.shape[1:])
        dl = delta.view(b, 1, *([1] * (x.ndim - 1)))
        probes = (xt[:, None] + dl * u).clamp(0, 1)
        u = (probes - xt[:, None]) / dl
        phi = adversarial(probes.flatten(0, 1), live.repeat_interleave(evals)).view(b, evals).to(x.dtype) * 2 - 1
        mean = phi.mean(1, keepdim=True)
        centred = torch.where(mean.abs() == 1, mean, phi - mean)  # all one side: the mean direction
        grad = (centred.view(b, evals, *([1] * (x.ndim - 1))) * u).mean(1)
        grad = L2.normalize(grad)
        # geometric step-size search: halve until the step stays adversarial (or the budget runs out)
        step = dist / math.sqrt(t)
        todo = torch.arange(b, device=dev)
        moved = xt.clone()
        while todo.numel():
            todo = todo[left(live[todo]) >= 2]  # keep one query for the bisection
            if todo.numel() == 0:
                break
            cand = (xt[todo] + per_example(step[todo], xt[todo]) * grad[todo]).clamp(0, 1)
            ok = adversarial(cand, live[todo])
            moved[todo[ok]] = cand[ok]
            step[todo[~ok]] /= 2
            todo = todo[~ok & (step[todo] > 1e-12)]
        cur[live] = bisect(live, moved, theta)
    out = torch.where(found.view(-1, *([1] * (x.ndim - 1))), cur, x)
    return threat.project(x, out) if threat is not None else out
