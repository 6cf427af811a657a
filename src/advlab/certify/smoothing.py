"""Randomized smoothing (Cohen, Rosenfeld & Kolter 2019): PREDICT and CERTIFY, batched over examples.

The smoothed classifier g(x) = argmax_c P(f(x + δ) = c), δ ~ N(0, σ²I), is certifiably robust in
L2: if the top class has probability at least p_A > 1/2, g's prediction cannot change within
radius σ Φ⁻¹(p_A). The probabilities are estimated by Monte Carlo with exact binomial statistics,
so every certificate holds with probability at least 1 − α over the noise.

Noise samples of many examples are streamed through the base classifier in full batches: the
(example, draw) pairs are enumerated and cut into batches of ``batch_size`` regardless of which
example they belong to, so no batch is padded and there is no loop over examples.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy import stats

from ..checks import check_images, check_model_inputs, check_positive, check_positive_int
from ..errors import InputError
from ..models import eval_mode
from ..precision import strictly_fp32
from ..rng import randn

#: The label a smoothed classifier returns when it abstains (the test cannot separate the top two classes).
ABSTAIN = -1


def _check(sigma, alpha, batch_size):
    check_positive(sigma, "sigma")
    if not (isinstance(alpha, (int, float)) and 0 < alpha < 1):
        raise InputError(f"alpha (the failure probability) must be in (0, 1), got {alpha!r}")
    check_positive_int(batch_size=batch_size)


@torch.no_grad()
@strictly_fp32
def sample_counts(model, x: torch.Tensor, num: int, sigma: float, *, batch_size: int = 1000,
                  generator: torch.Generator | None = None, num_classes: int | None = None) -> torch.Tensor:
    """Class counts of the base classifier on ``num`` noisy copies x + σ·N(0, I) of every input.

    Returns an int64 tensor (N, K) on x's device; the noise is not clipped (Cohen et al.). The
    model runs in eval mode; noise comes from ``generator`` (on any device, advlab.rng).
    """
    check_images(x)
    check_model_inputs(model, x)
    check_positive_int(num=num, batch_size=batch_size)
    check_positive(sigma, "sigma")
    n = x.shape[0]
    counts = None
    with eval_mode(model):
        for start in range(0, n * num, batch_size):
            idx = torch.arange(start, min(start + batch_size, n * num), device=x.device)
            ex = idx // num
            xb = x[ex]
            noisy = xb + sigma * randn(xb.shape, generator=generator, device=x.device, dtype=x.dtype)
            logits = model(noisy)
            pred = logits.argmax(1)
            if counts is None:
                counts = torch.zeros(n, num_classes or logits.shape[1], dtype=torch.long, device=x.device)
            counts.index_put_((ex, pred), torch.ones_like(pred), accumulate=True)
    return counts


def lower_confidence_bound(k, n: int, alpha: float) -> np.ndarray:
    """One-sided (1 − α) Clopper-Pearson lower bound on a binomial proportion, k successes of n."""
    k = np.asarray(k, dtype=float)
    return np.where(k > 0, stats.beta.ppf(alpha, np.maximum(k, 1), n - k + 1), 0.0)


@strictly_fp32
def smoothed_predict(model, x: torch.Tensor, *, sigma: float, n: int, alpha: float = 0.001, batch_size: int = 1000,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Cohen et al.'s PREDICT: the top class of ``n`` noisy samples, or ``ABSTAIN`` (−1) unless a
    two-sided binomial test of its count against the runner-up's rejects equality at level α.
    Returns predictions (N,) int64; a returned class is g(x) with probability at least 1 − α."""
    _check(sigma, alpha, batch_size)
    counts = sample_counts(model, x, n, sigma, batch_size=batch_size, generator=generator)
    top2 = counts.topk(2, dim=1)
    n_a, n_b = top2.values[:, 0].cpu().numpy(), top2.values[:, 1].cpu().numpy()
    # two-sided binomial test p-value at p = 1/2 for n_a successes of n_a + n_b
    p = np.minimum(1.0, 2 * stats.binom.cdf(np.minimum(n_a, n_b), n_a + n_b, 0.5))
    pred = top2.indices[:, 0].clone()
    pred[torch.as_tensor(p > alpha, device=pred.device)] = ABSTAIN
    return pred


@strictly_fp32
def certify(model, x: torch.Tensor, *, sigma: float, n0: int = 100, n: int = 100_000, alpha: float = 0.001,
            batch_size: int = 1000, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Cohen et al.'s CERTIFY: guess the top class c_A from ``n0`` samples, count it in ``n`` fresh
    samples, and bound p_A from below at confidence 1 − α (one-sided Clopper-Pearson). Returns
    ``(prediction, radius)``: c_A and the certified L2 radius σ Φ⁻¹(p_A_lower) (pixel units) where
    p_A_lower > 1/2, else ``ABSTAIN`` (−1) and radius 0."""
    _check(sigma, alpha, batch_size)
    check_positive_int(n0=n0, n=n)
    if n0 >= n:
        raise InputError(f"n0 (selection samples) must be smaller than n (estimation samples), got n0={n0}, n={n}")
    guess = sample_counts(model, x, n0, sigma, batch_size=batch_size, generator=generator).argmax(1)
    counts = sample_counts(model, x, n, sigma, batch_size=batch_size, generator=generator)
    n_a = counts.gather(1, guess[:, None]).squeeze(1).cpu().numpy()
    p_lower = lower_confidence_bound(n_a, n, alpha)
    certified = p_lower > 0.5
    radius = np.where(certified, sigma * stats.norm.ppf(np.clip(p_lower, 0.5, 1.0)), 0.0)
    pred = guess.clone()
    pred[torch.as_tensor(~certified, device=pred.device)] = ABSTAIN
    return pred, torch.as_tensor(radius, dtype=torch.float32, device=x.device)


@strictly_fp32
def smoothadv(model, x: torch.Tensor, y: torch.Tensor, *, sigma: float, eps: float, steps: int = 10, draws: int = 8,
              step_size: float | None = None, seed: int = 0) -> torch.Tensor:
    """SmoothAdv (Salman et al. 2019): PGD-L2 on the smoothed classifier's soft prediction.

    The attacked function is log E_δ[softmax f(x' + δ)], δ ~ N(0, σ²I), estimated with ``draws``
    fresh noise samples per step (:class:`~advlab.defenses.EOT` over
    :class:`~advlab.defenses.GaussianNoise`, one batched pass); ``steps`` steps of 2ε/steps (theirs)
    from the clean input. Returns adversarial inputs in the L2 ball of radius ``eps`` ∩ [0, 1]:
    score them with :func:`smoothed_predict` to get the smoothed classifier's empirical robustness.
    """
    from ..attacks import run_attack  # the attacks import the models; keep this module light
    from ..defenses import EOT, GaussianNoise
    from ..threat import ThreatModel
    check_positive(sigma, "sigma")
    threat = ThreatModel("l2", eps)
    if eps == 0:
        return x.clone()
    smoothed = EOT(GaussianNoise(model, sigma, seed=seed), draws)
    res = run_attack("pgd", smoothed, x, y, threat=threat, steps=steps, step_size=step_size or 2 * eps / steps,
                     random_start=False)
    return res.x_adv


def certified_accuracy(pred: torch.Tensor, radius: torch.Tensor, y: torch.Tensor, radii) -> list[float]:
    """Fraction of examples certified correct at each radius r (prediction = label, radius ≥ r)."""
    ok = pred == y
    return [float((ok & (radius >= r)).float().mean()) for r in radii]
