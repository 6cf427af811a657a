"""NES (Ilyas, Engstrom, Athalye & Lin 2018): projected steps along a gradient estimated from scores."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ...checks import check_choice, check_positive, check_positive_int
from ...errors import InputError
from ...threat import ThreatModel, keep_layout
from ..base import register
from .oracle import margin
from ...rng import randn

LOSSES = ("ce", "margin")


def score_loss(scores: torch.Tensor, labels: torch.Tensor, output: str, loss: str, targeted: bool) -> torch.Tensor:
    """The per-example loss a score-based attacker ascends, from logits or probabilities.

    ``ce``: the cross-entropy of ``labels`` (its negative when targeted); ``margin``: minus the
    margin of :func:`~advlab.attacks.blackbox.margin`, so that ascending it means fooling.
    """
    if loss == "margin":
        return -margin(scores, labels, targeted)
    logp = F.log_softmax(scores, 1) if output == "logits" else scores.clamp_min(1e-12).log()
    ce = -logp.gather(1, labels[:, None]).squeeze(1)
    return -ce if targeted else ce


@register("nes", kind="score-based", outputs=("logits", "probs"))
def nes(oracle, x: torch.Tensor, y: torch.Tensor, *, threat: ThreatModel, queries: int | None = None,
        samples: int = 50, sigma: float = 0.001, step_size: float | None = None, momentum: float = 0.9,
        loss: str = "ce", targeted: bool = False, target: torch.Tensor | None = None,
        generator: torch.Generator | None = None) -> torch.Tensor:
    """PGD on the loss with the gradient estimated by natural evolution strategies.

    Paper: Ilyas et al., "Black-box Adversarial Attacks with Limited Queries and Information",
    ICML 2018 (the query-limited setting: Algorithm 1 for the estimate, PGD with momentum).
    Threat model: ``threat`` (L∞ or L2 ball ∩ [0, 1]); score-based: the attack sees only the
    oracle's scores and counts every query.

    Each step draws ``samples / 2`` Gaussian directions u and queries x ± σu (antithetic pairs),
    estimates g = Σ L(x + σu)·u / (samples·σ) over all ``samples`` points, mixes it into a
    momentum buffer and takes a steepest-ascent step of ``step_size`` in the threat's norm,
    then projects. One more query per step checks whether the iterate fools the model; examples
    stop when it does, or when their next step would overrun the budget.

    Parameters
    ----------
    oracle : QueryOracle with output "logits" or "probs"
    x : Tensor (N, C, H, W) in [0, 1];  y : Tensor (N,), int
    threat : ThreatModel
    queries : int, optional. Queries per example, the first check of x included. Default: the
        oracle's budget. A step costs ``samples + 1``.
    samples : int, even, default 50 (the paper's population size)
    sigma : float, default 0.001 (the paper's search variance, pixel units)
    step_size : float, default ε / 5 (the paper's 0.01 at ε = 0.05)
    momentum : float in [0, 1), default 0.9
    loss : {"ce", "margin"}, default "ce"
    targeted : bool;  target : Tensor (N,), required when targeted
    generator : torch.Generator, optional
        On any device (``advlab.rng``).

    Returns
    -------
    AttackResult with ``queries`` (N,).
    """
    labels = target if targeted else y
    budget = oracle.attack_budget(queries, "nes")
    check_positive_int(samples=samples)
    if samples % 2:
        raise InputError(f"samples must be even (antithetic pairs), got {samples}")
    check_positive(sigma, "sigma")
    check_choice(loss, LOSSES, "loss")
    if not 0 <= momentum < 1:
        raise InputError(f"momentum must be in [0, 1), got {momentum}")
    step_size = threat.eps / 5 if step_size is None else step_size
    check_positive(step_size, "step_size", allow_zero=True)

    n = x.shape[0]
    idx_all = torch.arange(n, device=x.device)
    x_adv = x.clone()
    buf = torch.zeros_like(x)
    fooled = margin(oracle(x, idx_all), labels, targeted) < 0
    while True:
        active = (~fooled & (budget - oracle.queries >= samples + 1)).nonzero().squeeze(1)
        if active.numel() == 0:
            break
        b = active.numel()
        xa = x_adv[active]
        u = randn((b, samples // 2, *x.shape[1:]), generator=generator, device=x.device, dtype=x.dtype)
        u = torch.cat([u, -u], 1)
        probes = (xa[:, None] + sigma * u).clamp(0, 1).flatten(0, 1)
        scores = oracle(keep_layout(probes, x), active.repeat_interleave(samples))
        l = score_loss(scores, labels[active].repeat_interleave(samples), oracle.output, loss, targeted)
        g = (l.view(b, samples, *([1] * (x.ndim - 1))) * u).sum(1) / (samples * sigma)
        buf[active] = momentum * buf[active] + (1 - momentum) * g
        x_adv[active] = threat.project(x[active], xa + step_size * threat.direction(buf[active]))
        fooled[active] = margin(oracle(x_adv[active], active), labels[active], targeted) < 0
    return x_adv


@register("noise", kind="decision-based", outputs=("logits", "probs", "top1", "label"))
def gaussian_noise(oracle, x: torch.Tensor, y: torch.Tensor, *, threat: ThreatModel | None = None,
                   sigma: float = 0.1, draws: int = 1, targeted: bool = False, target: torch.Tensor | None = None,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Gaussian noise injection: up to ``draws`` noisy copies x + σ·N(0, I), clipped to [0, 1].

    The VGG-19 report's attack (its 3.2): accuracy under random noise of standard deviation σ
    (pixel units). Label-only: each draw is one query; an example stops at the first draw that
    fools the model, so ``draws`` = K is the worst of K draws and ``draws`` = 1 one random draw.
    The noise is not bounded by an ε: its L2 and L∞ norms are reported in the rows beside those of
    adversarial perturbations. With a ``threat``, every draw is projected onto its ball.
    """
    if not sigma >= 0:
        raise InputError(f"sigma must be >= 0, got {sigma}")
    check_positive_int(draws=draws)
    labels = target if targeted else y
    n = x.shape[0]
    out = x.clone()
    todo = torch.arange(n, device=x.device)
    for _ in range(draws):  # draws of a whole batch; the loop is over K, not over examples
        noisy = (x[todo] + sigma * randn(x[todo].shape, generator=generator, device=x.device,
                                                dtype=x.dtype)).clamp(0, 1)
        if threat is not None:
            noisy = threat.project(x[todo], noisy)
        noisy = keep_layout(noisy, x)
        answer = oracle(noisy, todo)
        pred = answer if oracle.output == "label" else answer[0] if oracle.output == "top1" else answer.argmax(1)
        hit = pred == labels[todo] if targeted else pred != labels[todo]
        out[todo] = noisy  # the last draw stands for examples no draw fools
        todo = todo[~hit]
        if todo.numel() == 0:
            break
    return out
