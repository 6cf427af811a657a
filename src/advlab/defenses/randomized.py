"""Randomized networks and how to attack them: Gaussian noise at test time, EOT, majority votes.

A model that adds fresh noise to every input answers differently each time it is asked. Its
prediction is a random variable, and so is the gradient a plain attack sees: one draw's gradient
points somewhere, the next draw's elsewhere, and the attack looks weaker than it is. Expectation
over Transformation (Athalye, Carlini & Wagner 2018) attacks the expectation instead:
:class:`EOT` averages the randomized model's class probabilities over ``draws`` copies of each
input, batched into one forward pass, so any gradient attack run on it follows the gradient of
the averaged prediction; the same averaged prediction is the defended classifier an honest
evaluation scores.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..checks import check_positive, check_positive_int
from ..models import eval_mode


class GaussianNoise(nn.Module):
    """``model(x + σ·N(0, I))`` with fresh noise at every call: the reports' randomized network.

    Noise is drawn from a generator per device seeded with ``seed`` (:meth:`reseed` starts the
    sequence again), never from the global RNG; ``clip`` keeps the noisy input in [0, 1].
    """

    def __init__(self, model: nn.Module, sigma: float, seed: int = 0, clip: bool = False):
        super().__init__()
        check_positive(sigma, "sigma", allow_zero=True)
        self.model = model
        self.sigma = float(sigma)
        self.clip = clip
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        """Restart the noise streams from ``seed`` (one generator per device, made on first use)."""
        self.seed = int(seed)
        self._generators: dict[torch.device, torch.Generator] = {}

    def _generator(self, device) -> torch.Generator:
        device = torch.device(device)
        if device not in self._generators:
            self._generators[device] = torch.Generator(device=device).manual_seed(self.seed)
        return self._generators[device]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.sigma == 0:
            return self.model(x)
        noise = torch.randn(x.shape, generator=self._generator(x.device), device=x.device, dtype=x.dtype)
        noisy = x + self.sigma * noise
        return self.model(noisy.clamp(0, 1) if self.clip else noisy)

    def extra_repr(self) -> str:
        return f"sigma={self.sigma:g}, clip={self.clip}, seed={self.seed}"


class EOT(nn.Module):
    """Expectation over Transformation: log of the mean class probabilities over ``draws`` calls.

    The ``draws`` copies of a batch go through ``model`` as one batch of draws × N inputs (one
    forward and one backward pass for all of them). The output, ``log E[softmax(model(x))]``, is
    a log-probability vector: every loss used here (cross-entropy, DLR) and the argmax are
    invariant to the per-example shift that separates it from logits. With one draw it returns
    ``model(x)`` itself, so EOT over one draw of a deterministic model is the plain attack.
    """

    def __init__(self, model: nn.Module, draws: int):
        super().__init__()
        check_positive_int(draws=draws)
        self.model = model
        self.draws = draws

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.draws == 1:
            return self.model(x)
        n = x.shape[0]
        logp = torch.log_softmax(self.model(x.repeat(self.draws, *([1] * (x.ndim - 1)))).float(), dim=1)
        return torch.logsumexp(logp.view(self.draws, n, -1), dim=0) - math.log(self.draws)

    def extra_repr(self) -> str:
        return f"draws={self.draws}"


@torch.no_grad()
def majority_vote(model, x: torch.Tensor, draws: int, batch_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """The class a randomized ``model`` predicts most often over ``draws`` calls, and its vote
    share (ties go to the smaller class index). Runs in eval mode, ``batch_size`` inputs per call."""
    check_positive_int(draws=draws, batch_size=batch_size)
    preds, shares = [], []
    with eval_mode(model):
        for i in range(0, x.shape[0], batch_size):
            xb = x[i:i + batch_size]
            votes = torch.stack([model(xb).argmax(1) for _ in range(draws)])
            k = int(votes.max()) + 1
            counts = torch.zeros(xb.shape[0], k, device=x.device, dtype=torch.long)
            counts.scatter_add_(1, votes.T, torch.ones_like(votes.T))
            top = counts.max(1)
            preds.append(top.indices)
            shares.append(top.values.float() / draws)
    return torch.cat(preds), torch.cat(shares)
