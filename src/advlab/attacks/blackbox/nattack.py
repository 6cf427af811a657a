"""NATTACK (Li, Li, Wang & Gong 2019): learn a Gaussian distribution of adversarial perturbations."""
from __future__ import annotations

import torch

from ...checks import check_positive, check_positive_int
from ...errors import InputError
from ...threat import ThreatModel, keep_layout
from ..base import register
from ...rng import randn


def _candidates(x, x_tanh, z, threat):
    """Images for search points z (B, n, C, H, W): through tanh space, then projected on the threat."""
    b, n = z.shape[:2]
    img = (torch.tanh(x_tanh[:, None] + z) + 1) / 2
    xs = x[:, None].expand_as(img).flatten(0, 1)
    return threat.project(xs, img.flatten(0, 1))


@register("nattack", kind="score-based", outputs=("probs", "logits"))
def nattack(oracle, x: torch.Tensor, y: torch.Tensor, *, threat: ThreatModel, queries: int | None = None,
            population: int = 100, sigma: float = 0.1, lr: float = 0.02, targeted: bool = False,
            target: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Natural-evolution search over a Gaussian N(μ, σ²I) of perturbations in tanh space.

    Paper: Li et al., "NATTACK: Learning the Distributions of Adversarial Examples for an Improved
    Black-Box Attack on Deep Neural Networks", ICML 2019 (Algorithm 1).
    Threat model: ``threat`` (L∞ or L2 ball ∩ [0, 1]); score-based.

    A sample z = μ + σε maps to x' = Π((tanh(artanh(2x − 1) + z) + 1) / 2), Π the projection on
    the threat model. Each iteration draws ``population`` samples per example (one query each),
    scores them with f(x') = max(0, log p_y − max_{k≠y} log p_k), standardises the scores and
    moves μ ← μ − lr/(population·σ)·Σ f̂ᵢ εᵢ. An example stops when one of its samples fools the
    model, and that sample is returned; otherwise the image of μ.

    Parameters
    ----------
    queries : int, optional. Per example; iterations = queries // population. Default: the
        oracle's budget.
    population : int, default 100 (the paper uses 300 for CIFAR-10, a tenth of its memory here)
    sigma : float, default 0.1;  lr : float, default 0.02 (the paper's values)
    targeted : bool;  target : Tensor (N,), required when targeted
    generator : torch.Generator, optional
        On any device (``advlab.rng``).
    """
    budget = oracle.attack_budget(queries, "nattack")
    check_positive_int(population=population)
    check_positive(sigma, "sigma")
    check_positive(lr, "lr")
    if budget < population:
        raise InputError(f"a population of {population} needs {population} queries per example; the budget is {budget}")
    labels = target if targeted else y
    n = x.shape[0]
    dev, dt = x.device, x.dtype
    x_tanh = torch.atanh((2 * x - 1) * (1 - 1e-6))
    mu = 0.001 * randn(x.shape, generator=generator, device=dev, dtype=dt)
    out = x.clone()
    done = torch.zeros(n, dtype=torch.bool, device=dev)
    for _ in range(budget // population):
        active = (~done).nonzero().squeeze(1)
        if active.numel() == 0:
            break
        b = active.numel()
        eps = randn((b, population, *x.shape[1:]), generator=generator, device=dev, dtype=dt)
        cand = _candidates(x[active], x_tanh[active], mu[active, None] + sigma * eps, threat)
        scores = oracle(keep_layout(cand, x), active.repeat_interleave(population))
        logp = scores.log_softmax(1) if oracle.output == "logits" else scores.clamp_min(1e-30).log()
        lab = labels[active].repeat_interleave(population)
        own = logp.gather(1, lab[:, None]).squeeze(1)
        other = logp.scatter(1, lab[:, None], -float("inf")).amax(1)
        gap = (other - own if targeted else own - other).view(b, population)
        fooled = gap < 0
        hit = fooled.any(1)
        if hit.any():  # keep the first fooling sample of each example that found one
            first = fooled.float().argmax(1)
            picked = cand.view(b, population, *x.shape[1:])[torch.arange(b, device=dev), first]
            out[active[hit]] = picked[hit]
            done[active[hit]] = True
        f = gap.clamp_min(0)
        f_hat = (f - f.mean(1, keepdim=True)) / (f.std(1, keepdim=True) + 1e-7)
        step = (f_hat.view(b, population, *([1] * (x.ndim - 1))) * eps).sum(1)
        mu[active] = mu[active] - lr / (population * sigma) * step
    rest = (~done).nonzero().squeeze(1)
    if rest.numel():
        out[rest] = _candidates(x[rest], x_tanh[rest], mu[rest, None], threat)
    return keep_layout(threat.project(x, out), x)
