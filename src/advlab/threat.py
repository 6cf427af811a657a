"""Threat models: Lp balls in pixel space intersected with the pixel box [0, 1].

This is the only module that knows Lp geometry. Attacks, training and evaluation ask a
:class:`ThreatModel` to project, to take a steepest-ascent step, to draw a random start and to
measure a perturbation, so that adding a norm means changing one file.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .checks import check_choice
from .errors import InputError

NORMS = ("linf", "l2")
# Slack for float round-off when checking membership; one 8-bit grey level is 1/255 ≈ 3.9e-3.
ATOL = 1e-5


def _flat_norm(v: torch.Tensor, p: float) -> torch.Tensor:
    return torch.linalg.vector_norm(v.flatten(1), ord=p, dim=1)


def keep_layout(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``t`` laid out in memory like ``like`` (same shape but for the batch dimension).

    Elementwise ops may re-lay out a batch whose channel dimension has size 1 (its strides are
    ambiguous), and on CPU oneDNN runs the same convolutions ~3× faster on a 1-channel batch with
    channels-last strides: an attack keeps the memory format its caller chose, so it costs what the
    caller's own forward/backward passes cost. Differentiable (a copy).
    """
    dense = like.is_contiguous() or (like.ndim == 4 and like.is_contiguous(memory_format=torch.channels_last))
    if t.stride() == like.stride() or not dense or t.shape[1:] != like.shape[1:]:
        return t
    out = torch.empty_strided(t.shape, like.stride(), dtype=t.dtype, device=t.device)
    return out.copy_(t)


def _per_example(s: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape a (N,) tensor to broadcast against a (N, C, H, W) batch."""
    return s.view(-1, *([1] * (like.ndim - 1)))


@dataclass(frozen=True)
class ThreatModel:
    """The set {x' : ||x' - x||_p <= eps, 0 <= x' <= 1} around each clean input x.

    Parameters
    ----------
    norm : {"linf", "l2"}
        The distance measure. ``eps`` is in pixel units of [0, 1] (an L∞ budget of 8/255 is
        ``eps=8/255``); the model normalises internally.
    eps : float
        Radius of the ball, >= 0.
    """

    norm: str
    eps: float

    def __post_init__(self):
        check_choice(self.norm, NORMS, "norm")
        if not isinstance(self.eps, (int, float)) or isinstance(self.eps, bool):
            raise InputError(f"eps must be a number, got {type(self.eps).__name__}")
        if not self.eps >= 0:  # also rejects NaN
            raise InputError(f"eps must be >= 0, got {self.eps}")
        object.__setattr__(self, "eps", float(self.eps))

    @property
    def p(self) -> float:
        return float("inf") if self.norm == "linf" else 2.0

    def __str__(self) -> str:
        sym = "L∞" if self.norm == "linf" else "L2"
        return f"{sym} ball, ε = {self.eps:.4g}, pixels in [0, 1]"

    # -- measuring -------------------------------------------------------------------------
    def distance(self, x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
        """Per-example ||x_adv - x||_p, shape (N,)."""
        return _flat_norm(x_adv - x, self.p)

    def contains(self, x: torch.Tensor, x_adv: torch.Tensor, atol: float = ATOL) -> torch.Tensor:
        """Per-example membership in ball ∩ box (bool, shape (N,)), with float slack ``atol``."""
        in_ball = self.distance(x, x_adv) <= self.eps + atol
        in_box = ((x_adv >= -atol) & (x_adv <= 1 + atol)).flatten(1).all(1)
        finite = torch.isfinite(x_adv).flatten(1).all(1)
        return in_ball & in_box & finite

    # -- geometry --------------------------------------------------------------------------
    def project(self, x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
        """Map x_adv into the ball around x, then into the pixel box.

        For L∞ this is the exact Euclidean projection onto the intersection (both sets are
        boxes). For L2 it is ball projection followed by clipping, the standard choice in PGD
        (Madry et al. 2018): clipping only shrinks the perturbation, so the result stays in
        both sets, though it is not the exact projection onto their intersection.
        """
        delta = x_adv - x
        if self.norm == "linf":
            delta = delta.clamp(-self.eps, self.eps)
        else:
            n = _flat_norm(delta, 2.0)
            factor = torch.where(n > self.eps, self.eps / n.clamp_min(1e-12), torch.ones_like(n))
            delta = delta * _per_example(factor, delta)
        return keep_layout((x + delta).clamp(0.0, 1.0), x)

    def step(self, x_adv: torch.Tensor, grad: torch.Tensor, step_size: float) -> torch.Tensor:
        """Steepest-ascent step of length ``step_size`` in this norm (no projection).

        L∞: ``step_size * sign(grad)``; L2: ``step_size * grad / ||grad||_2``.
        Examples with a zero gradient do not move.
        """
        return x_adv + step_size * self.direction(grad)

    def direction(self, grad: torch.Tensor) -> torch.Tensor:
        """Unit-norm steepest-ascent direction: argmax_{||d||_p <= 1} <grad, d>."""
        if self.norm == "linf":
            return grad.sign()
        n = _flat_norm(grad, 2.0)
        return grad / _per_example(n.clamp_min(1e-12), grad)

    def dual_norm(self, v: torch.Tensor) -> torch.Tensor:
        """Per-example dual norm ‖v‖_q (1/p + 1/q = 1): max of <v, d> over the unit p-ball.

        The linearised distance from x to the hyperplane {z : f + <w, z - x> = 0} in this norm is
        |f| / ‖w‖_q, reached by moving |f| / ‖w‖_q along :meth:`direction` (w) (DeepFool).
        """
        return _flat_norm(v, 1.0 if self.norm == "linf" else 2.0)

    def random_start(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A random point of the ball around x, clipped to the pixel box.

        L∞: uniform in the cube. L2: a uniformly random direction at a radius drawn uniformly in
        [0, ε]. This is deliberately not uniform in the ball: in d = 784 dimensions a uniform draw
        lies within 1% of the sphere, so an attack would start with its whole budget spent on a
        random direction (PGD-L2 at ε = 1.5 on MNIST left 4.4 points more accuracy that way).
        ``generator`` must live on x's device (or be None for the global RNG).
        """
        if self.norm == "linf":
            u = torch.empty_like(x).uniform_(generator=generator)
            delta = (2 * u - 1) * self.eps
        else:
            g = torch.empty_like(x).normal_(generator=generator)
            r = torch.empty(x.shape[0], device=x.device, dtype=x.dtype).uniform_(generator=generator)
            delta = g / _per_example(_flat_norm(g, 2.0).clamp_min(1e-12), g) * _per_example(r * self.eps, g)
        return keep_layout((x + delta).clamp(0.0, 1.0), x)
