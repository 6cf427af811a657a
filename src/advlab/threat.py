"""Lp geometry and threat models: Lp balls in pixel space intersected with the pixel box [0, 1].

This is the only module that knows Lp geometry. :class:`LpGeometry` holds what depends on the
norm alone (measuring, steepest-ascent directions, dual norms, scaling onto a sphere), so a
minimum-norm attack gets a direction without a radius; :class:`ThreatModel` is a ball of radius ε
in one geometry, cut by the pixel box. Attacks, training, evaluation and plotting ask these
objects, so adding a norm means changing one file.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .checks import check_choice
from .errors import InputError
from .rng import normal_like, rand, uniform_like

__all__ = ["ATOL", "L2", "LINF", "NORMS", "NORM_SYMBOLS", "LpGeometry", "ThreatModel", "geometry", "in_pixel_box",
           "keep_layout", "l1_norm", "per_example", "perturbation_norms"]

#: The norms of a threat model: ``"linf"`` (L∞) and ``"l2"`` (L2), in pixel units of [0, 1].
NORMS = ("linf", "l2")
#: How each norm is written on a page (``"L∞"``, ``"L2"``).
NORM_SYMBOLS = {"linf": "L∞", "l2": "L2"}
#: Slack for float round-off when checking membership; one 8-bit grey level is 1/255 ≈ 3.9e-3.
ATOL = 1e-5


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


def per_example(s: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape a (N,) tensor to broadcast against a (N, C, H, W) batch."""
    return s.view(-1, *([1] * (like.ndim - 1)))


def in_pixel_box(x: torch.Tensor, atol: float = ATOL) -> torch.Tensor:
    """Per-example: every value finite and inside [0, 1] up to ``atol`` (bool, shape (N,))."""
    ok = (x >= -atol) & (x <= 1 + atol)  # NaN compares False
    return ok.flatten(1).all(1)


@dataclass(frozen=True)
class LpGeometry:
    """What depends on the norm alone: measuring, directions, dual norms (no radius)."""

    name: str

    def __post_init__(self):
        check_choice(self.name, NORMS, "norm")

    @property
    def p(self) -> float:
        """The exponent p of the norm (∞ or 2)."""
        return float("inf") if self.name == "linf" else 2.0

    @property
    def symbol(self) -> str:
        """The norm as a page writes it (``"L∞"``, ``"L2"``)."""
        return NORM_SYMBOLS[self.name]

    def norm(self, v: torch.Tensor) -> torch.Tensor:
        """Per-example ‖v‖_p over all but the batch dimension, shape (N,)."""
        return torch.linalg.vector_norm(v.flatten(1), ord=self.p, dim=1)

    def dual_norm(self, v: torch.Tensor) -> torch.Tensor:
        """Per-example dual norm ‖v‖_q (1/p + 1/q = 1): max of <v, d> over the unit p-ball.

        The linearised distance from x to the hyperplane {z : f + <w, z - x> = 0} in this norm is
        ``|f| / ‖w‖_q``, reached by moving ``|f| / ‖w‖_q`` along :meth:`direction` (w) (DeepFool).
        """
        return torch.linalg.vector_norm(v.flatten(1), ord=1.0 if self.name == "linf" else 2.0, dim=1)

    def direction(self, grad: torch.Tensor) -> torch.Tensor:
        """Unit-norm steepest-ascent direction: argmax_{‖d‖_p <= 1} <grad, d>.

        L∞: sign(grad); L2: grad / ‖grad‖₂. A zero gradient gives a zero direction.
        """
        if self.name == "linf":
            return grad.sign()
        return grad / per_example(self.norm(grad).clamp_min(1e-12), grad)

    def normalize(self, v: torch.Tensor) -> torch.Tensor:
        """``v`` scaled onto the unit sphere of this norm (per example; zero stays zero)."""
        return v / per_example(self.norm(v).clamp_min(1e-12), v)


#: The L∞ geometry.
LINF = LpGeometry("linf")
#: The L2 geometry.
L2 = LpGeometry("l2")
_GEOMETRIES = {"linf": LINF, "l2": L2}


def geometry(norm: str) -> LpGeometry:
    """The geometry of ``norm`` ("linf" or "l2"); unknown names list the valid ones."""
    check_choice(norm, NORMS, "norm")
    return _GEOMETRIES[norm]


def l1_norm(v: torch.Tensor) -> torch.Tensor:
    """Per-example ‖v‖₁ (the dual of L∞), shape (N,)."""
    return LINF.dual_norm(v)


def perturbation_norms(x: torch.Tensor, x_adv: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-example size of x_adv - x in every norm: ``{"linf": (N,), "l2": (N,)}``."""
    delta = x_adv - x
    return {name: g.norm(delta) for name, g in _GEOMETRIES.items()}


@dataclass(frozen=True)
class ThreatModel:
    """The set {x' : ||(x' - x) / s||_p <= eps, 0 <= x' <= 1} around each clean input x.

    Parameters
    ----------
    norm : {"linf", "l2"}
        The distance measure. ``eps`` is in pixel units of [0, 1] (an L∞ budget of 8/255 is
        ``eps=8/255``); the model normalises internally.
    eps : float
        Radius of the ball, >= 0.
    scale : tuple of floats, optional
        Per-channel units s of ε: with the dataset's std, ε is read in *normalised* units (the
        ball of a paper whose ε applies after ``(x - mean) / std``), so channel c may move by
        ε·s_c under L∞. None (the default) is s = 1: pixel units.
    """

    norm: str
    eps: float
    scale: tuple | None = None
    # the scale as a tensor per (device, dtype, ndim), made once: a GPU attack step must not copy from the host
    _scales: dict = field(default_factory=dict, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self):
        check_choice(self.norm, NORMS, "norm")
        if not isinstance(self.eps, (int, float)) or isinstance(self.eps, bool):
            raise InputError(f"eps must be a number, got {type(self.eps).__name__}")
        if not self.eps >= 0:  # also rejects NaN
            raise InputError(f"eps must be >= 0, got {self.eps}")
        if self.eps == float("inf"):
            raise InputError("eps must be finite; a minimum-norm attack takes a norm, not a ball of radius ∞")
        object.__setattr__(self, "eps", float(self.eps))
        if self.scale is not None:
            try:
                scale = tuple(float(v) for v in self.scale)
            except (TypeError, ValueError):
                raise InputError(f"scale must be a sequence of per-channel numbers, got {self.scale!r}") from None
            if not scale or not all(0 < v < float("inf") for v in scale):
                raise InputError(f"scale needs one positive finite number per channel, got {self.scale!r}")
            object.__setattr__(self, "scale", scale)

    def _s(self, x: torch.Tensor) -> torch.Tensor | None:
        """The per-channel scale shaped to broadcast over ``x`` (N, C, ...), or None (pixel units)."""
        if self.scale is None:
            return None
        if x.ndim < 2 or x.shape[1] != len(self.scale):
            raise InputError(f"this threat model's scale has {len(self.scale)} channels; the inputs have shape "
                             f"{tuple(x.shape)}")
        key = (x.device, x.dtype, x.ndim)
        if key not in self._scales:
            shape = (1, -1, *([1] * (x.ndim - 2)))
            self._scales[key] = torch.tensor(self.scale, device=x.device, dtype=x.dtype).view(shape)
        return self._scales[key]

    @property
    def geometry(self) -> LpGeometry:
        """The :class:`LpGeometry` of this threat model's norm."""
        return _GEOMETRIES[self.norm]

    @property
    def p(self) -> float:
        """The exponent p of the norm (∞ or 2)."""
        return self.geometry.p

    def __str__(self) -> str:
        if self.scale is None:
            return f"{self.geometry.symbol} ball, ε = {self.eps:.4g}, pixels in [0, 1]"
        units = ", ".join(f"{v:.4g}" for v in self.scale)
        return f"{self.geometry.symbol} ball, ε = {self.eps:.4g} in units of ({units}) per channel, pixels in [0, 1]"

    @property
    def units(self) -> str:
        """The units ε is in, for result rows: ``"pixel"``, or ``"×(0.247, 0.2435, 0.2616)"`` per channel."""
        return "pixel" if self.scale is None else "×(" + ", ".join(f"{v:.4g}" for v in self.scale) + ")"

    @property
    def label(self) -> str:
        """Short name for tables: ``"linf 0.06"``, or ``"linf 0.06 ×s"`` in scaled units."""
        return f"{self.norm} {self.eps:g}" + ("" if self.scale is None else " ×s")

    # -- measuring -------------------------------------------------------------------------
    def distance(self, x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
        """Per-example ||(x_adv - x) / s||_p, shape (N,) (s = 1 in pixel units)."""
        s = self._s(x)
        return self.geometry.norm(x_adv - x if s is None else (x_adv - x) / s)

    def contains(self, x: torch.Tensor, x_adv: torch.Tensor, atol: float = ATOL) -> torch.Tensor:
        """Per-example membership in ball ∩ box (bool, shape (N,)), with float slack ``atol``."""
        return (self.distance(x, x_adv) <= self.eps + atol) & in_pixel_box(x_adv, atol)

    def bounds(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Elementwise lower and upper bounds of ball ∩ box: the input box bound propagation starts from.

        Exact for L∞ (the set is this box); for L2 the smallest box containing the set, since no
        coordinate can move by more than ε.
        """
        r = self.eps if self.scale is None else self.eps * self._s(x)
        return (x - r).clamp_min(0.0), (x + r).clamp_max(1.0)

    # -- geometry --------------------------------------------------------------------------
    def project(self, x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
        """Map x_adv into the ball around x, then into the pixel box.

        For L∞ this is the exact Euclidean projection onto the intersection (both sets are
        boxes). For L2 it is ball projection followed by clipping, the standard choice in PGD
        (Madry et al. 2018): clipping only shrinks the perturbation, so the result stays in
        both sets, though it is not the exact projection onto their intersection.
        """
        s = self._s(x)
        delta = x_adv - x if s is None else (x_adv - x) / s  # in units of ε
        if self.norm == "linf":
            delta = delta.clamp(-self.eps, self.eps)
        else:
            n = self.geometry.norm(delta)
            factor = torch.where(n > self.eps, self.eps / n.clamp_min(1e-12), torch.ones_like(n))
            delta = delta * per_example(factor, delta)
        return keep_layout((x + (delta if s is None else delta * s)).clamp(0.0, 1.0), x)

    def step(self, x_adv: torch.Tensor, grad: torch.Tensor, step_size: float) -> torch.Tensor:
        """Steepest-ascent step of length ``step_size`` in this norm (no projection).

        L∞: ``step_size * sign(grad)``; L2: ``step_size * grad / ||grad||_2``.
        Examples with a zero gradient do not move.
        """
        return x_adv + step_size * self.direction(grad)

    def direction(self, grad: torch.Tensor) -> torch.Tensor:
        """Unit-norm steepest-ascent direction of this threat's norm (see :class:`LpGeometry`); in
        scaled units, the steepest ascent of the scaled norm: s · direction(s · grad)."""
        s = self._s(grad)
        return self.geometry.direction(grad) if s is None else s * self.geometry.direction(grad * s)

    def random_start(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A random point of the ball around x, clipped to the pixel box.

        L∞: uniform in the cube. L2: a uniformly random direction at a radius drawn uniformly in
        [0, ε]. This is deliberately not uniform in the ball: in d = 784 dimensions a uniform draw
        lies within 1% of the sphere, so an attack would start with its whole budget spent on a
        random direction (PGD-L2 at ε = 1.5 on MNIST left 4.4 points more accuracy that way).
        ``generator`` may live on any device (``advlab.rng``), or be None for the global RNG.
        """
        if self.norm == "linf":
            u = uniform_like(x, generator)
            delta = (2 * u - 1) * self.eps
        else:
            g = normal_like(x, generator)
            r = rand(x.shape[0], generator=generator, device=x.device, dtype=x.dtype)
            delta = self.geometry.normalize(g) * per_example(r * self.eps, g)
        s = self._s(x)
        return keep_layout((x + (delta if s is None else delta * s)).clamp(0.0, 1.0), x)

    def sphere_start(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A random direction scaled onto the sphere of radius ε, then clipped (APGD's start).

        L∞: a uniform draw in the cube scaled so its largest coordinate is ε; L2: a Gaussian
        direction at radius ε.
        """
        if self.norm == "linf":
            t = 2 * uniform_like(x, generator) - 1
        else:
            t = normal_like(x, generator)
        s = self._s(x)
        delta = self.eps * self.geometry.normalize(t)
        return keep_layout((x + (delta if s is None else delta * s)).clamp(0, 1), x)
