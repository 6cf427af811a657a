"""Square attack (Andriushchenko, Croce, Flammarion & Hein 2020): random search with square updates."""
from __future__ import annotations

import math

import torch

from ...checks import check_positive
from ...errors import InputError
from ...threat import ThreatModel, keep_layout
from ..base import register
from .oracle import margin
from ...rng import rand, randint


def p_schedule(p_init: float, it: int, n_iters: int) -> float:
    """The paper's piecewise-constant fraction of pixels changed at iteration ``it`` of ``n_iters``.

    The iteration is rescaled to a budget of 10,000, then p_init is halved at 10, 50, 200, 500,
    1000, 2000, 4000, 6000 and 8000.
    """
    it = int(it / n_iters * 10000)
    for k, bound in enumerate((10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000, 10000)):
        if it <= bound:
            return p_init / 2 ** k if k else p_init
    return p_init


def _pseudo_gaussian(a: int, b: int, device) -> torch.Tensor:
    """An (a, b) bump: concentric rectangles weighted 1/(k+1)², unit L2 norm (the paper's Fig. 2)."""
    d = torch.zeros(a, b, device=device)
    r0, c0 = a // 2, b // 2
    for k in range(max(a // 2 + 1, b // 2 + 1)):  # over the kernel's size, not over examples
        d[max(r0, 0):min(r0 + 2 * k + 1, a), max(c0, 0):min(c0 + 2 * k + 1, b)] += 1.0 / (k + 1) ** 2
        r0, c0 = r0 - 1, c0 - 1
    return d / d.norm()


def _meta_kernel(s: int, device) -> torch.Tensor:
    """Two bumps of opposite sign stacked vertically, unit L2 norm (s, s)."""
    d = torch.cat([_pseudo_gaussian(s // 2, s, device), -_pseudo_gaussian(s - s // 2, s, device)])
    return d / d.norm()


def _signs(shape, generator, device, dtype):
    return randint(0, 2, shape, generator=generator, device=device).to(dtype).mul_(2).sub_(1)


def _window_mask(top, left, s, h, w):
    """(B, 1, h, w) bool: the s×s window at (top, left) of each example."""
    r = torch.arange(h, device=top.device)
    c = torch.arange(w, device=top.device)
    rows = (r >= top[:, None]) & (r < top[:, None] + s)
    cols = (c >= left[:, None]) & (c < left[:, None] + s)
    return (rows[:, :, None] & cols[:, None, :])[:, None]


def _place(patch, top, left, h, w):
    """Each example's (c, s, s) patch placed at its (top, left) on a zero (c, h, w) canvas."""
    b, c, s, _ = patch.shape
    r = torch.arange(h, device=patch.device) - top[:, None]
    q = torch.arange(w, device=patch.device) - left[:, None]
    inside = ((r >= 0) & (r < s))[:, :, None] & ((q >= 0) & (q < s))[:, None, :]
    flat = r.clamp(0, s - 1)[:, :, None] * s + q.clamp(0, s - 1)[:, None, :]
    out = patch.reshape(b, c, s * s).gather(2, flat.reshape(b, 1, h * w).expand(b, c, h * w))
    return out.view(b, c, h, w) * inside[:, None]


def _take(t, top, left, s):
    """Each example's s×s window at (top, left): (B, c, s, s)."""
    ar = torch.arange(s, device=t.device)
    bidx = torch.arange(t.shape[0], device=t.device)[:, None, None]
    win = t.permute(0, 2, 3, 1)[bidx, (top[:, None] + ar)[:, :, None], (left[:, None] + ar)[:, None, :]]
    return win.permute(0, 3, 1, 2)


def _kernels(s, n, generator, device):
    """The meta kernel per example, transposed for a random half of them: (n, 1, s, s)."""
    k = _meta_kernel(s, device)
    flip = rand(n, generator=generator, device=device) < 0.5
    return torch.where(flip[:, None, None, None], k.T, k)


def _init_l2(x, eps, generator):
    """A grid of s×s bumps (s = h // 5) with random signs per example and channel, scaled to ε."""
    n, c, h, w = x.shape
    s = h // 5
    start = (h - 5 * s) // 2
    delta = torch.zeros_like(x)
    for i in range(h // s):  # a fixed 5×5 grid of blocks, each drawn for the whole batch at once
        for j in range(w // s):
            k = _kernels(s, 1, generator, x.device)
            delta[:, :, start + i * s:start + (i + 1) * s, start + j * s:start + (j + 1) * s] += \
                k * _signs((n, c, 1, 1), generator, x.device, x.dtype)
    return (x + eps * delta / delta.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)).clamp(0, 1)


def _put(t, win, top, left):
    """Write each example's s×s window ``win`` (B, c, s, s) into ``t`` at (top, left), in place."""
    s = win.shape[-1]
    ar = torch.arange(s, device=t.device)
    bidx = torch.arange(t.shape[0], device=t.device)[:, None, None]
    t.permute(0, 2, 3, 1)[bidx, (top[:, None] + ar)[:, :, None], (left[:, None] + ar)[:, None, :]] = \
        win.permute(0, 2, 3, 1)


def _step_linf(x, x_best, eps, p, generator, max_resample=10):
    b, c, h, w = x.shape
    s = min(max(int(round(math.sqrt(p * h * w))), 1), h - 1)
    top = randint(0, h - s, (b,), generator=generator, device=x.device)
    left = randint(0, w - s, (b,), generator=generator, device=x.device)
    # work on the s×s windows only: the rest of the candidate is x_best, copied once
    xw, bw = _take(x, top, left, s), _take(x_best, top, left, s)
    win, need = bw, torch.ones(b, dtype=torch.bool, device=x.device)
    for _ in range(max_resample):  # redraw where the new square would leave the image unchanged
        signs = eps * _signs((b, c, 1, 1), generator, x.device, x.dtype)
        win = torch.where(need.view(-1, 1, 1, 1), (xw + signs).clamp(0, 1), win)
        need = need & ~(win != bw).flatten(1).any(1)
        if not need.any():
            break
    cand = x_best.clone()
    _put(cand, win, top, left)
    return cand


def _step_l2(x, x_best, eps, p, generator):
    b, c, h, w = x.shape
    s = max(int(round(math.sqrt(p * h * w))), 3)
    s = min(s + 1 - s % 2, h - 1)  # odd, and smaller than the image
    top1, left1, top2, left2 = (randint(0, h - s, (b,), generator=generator, device=x.device) for _ in range(4))
    m1 = _window_mask(top1, left1, s, h, w).to(x.dtype)
    m2 = _window_mask(top2, left2, s, h, w).to(x.dtype)
    delta = x_best - x
    norm_w1 = (delta * m1).pow(2).sum((2, 3), keepdim=True).sqrt()  # (b, c, 1, 1)
    norm_img = delta.pow(2).sum((1, 2, 3), keepdim=True).sqrt()  # (b, 1, 1, 1)
    norm_both = (delta * torch.maximum(m1, m2)).pow(2).sum((2, 3), keepdim=True).sqrt()
    # the new window: a fresh bump plus the old window's content, carrying the mass of both windows
    # and whatever budget is still unused
    new = _kernels(s, b, generator, x.device) * _signs((b, c, 1, 1), generator, x.device, x.dtype)
    new = new + _take(delta, top1, left1, s) / (1e-10 + norm_w1)
    new = new / new.pow(2).sum((2, 3), keepdim=True).sqrt().clamp_min(1e-12) \
        * ((eps ** 2 - norm_img ** 2).clamp_min(0) / c + norm_both ** 2).sqrt()
    delta = delta * (1 - m2)
    delta = delta * (1 - m1) + _place(new, top1, left1, h, w)
    return (x + eps * delta / delta.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)).clamp(0, 1)


@register("square", kind="score-based", outputs=("logits", "probs"))
def square(oracle, x: torch.Tensor, y: torch.Tensor, *, threat: ThreatModel, queries: int | None = None,
           p_init: float | None = None, targeted: bool = False, target: torch.Tensor | None = None,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """Random search over square-shaped updates, accepted when they lower the margin loss.

    Paper: Andriushchenko et al., "Square Attack: a query-efficient black-box adversarial attack
    via random search", ECCV 2020 (Algorithms 1-3; the reference code's schedules).
    Threat model: ``threat`` (L∞ or L2 ball ∩ [0, 1]); score-based: the attack sees only the
    oracle's scores (logits or probabilities) and counts every query.

    L∞: start from vertical stripes of ±ε; each step redraws one s×s square (per example, at a
    random place) to ±ε per channel. L2: start from a grid of bumps scaled to ε; each step moves
    the mass of a random window into another, reshaped as a fresh bump (Algorithm 3). The side
    s = √(p·h·w) follows the paper's schedule for p (``p_schedule``). Examples stop querying
    once fooled (margin < 0). Loss: the margin z_y − max_{k≠y} z_k of the scores.

    Parameters
    ----------
    oracle : QueryOracle with output "logits" or "probs"
    x : Tensor (N, C, H, W) in [0, 1];  y : Tensor (N,), int
    threat : ThreatModel
    queries : int, optional
        Queries per example, the initial one included. Default: the oracle's budget.
    p_init : float, default 0.05 (L∞) or 0.1 (L2), the reference code's standard values
        Robust models need larger values (AutoAttack uses 0.8 for L∞).
    targeted : bool;  target : Tensor (N,), required when targeted
    generator : torch.Generator, optional
        On any device (``advlab.rng``), for every random draw.

    Returns
    -------
    AttackResult with ``queries`` (N,).
    """
    labels = target if targeted else y
    n_iters = oracle.attack_budget(queries, "square")  # one query per iteration
    p_init = p_init if p_init is not None else (0.05 if threat.norm == "linf" else 0.1)
    check_positive(p_init, "p_init")
    if p_init > 1:
        raise InputError(f"p_init is a fraction of the pixels, in (0, 1], got {p_init}")
    n = x.shape[0]
    if threat.norm == "linf":
        x_best = x + threat.eps * _signs((n, x.shape[1], 1, x.shape[3]), generator, x.device, x.dtype)
        x_best = x_best.clamp(0, 1)
    else:
        x_best = _init_l2(x, threat.eps, generator)
    x_best = keep_layout(x_best, x)
    m = margin(oracle(x_best, torch.arange(n, device=x.device)), labels, targeted)
    for it in range(1, n_iters):
        active = (m > 0).nonzero().squeeze(1)
        if active.numel() == 0:
            break
        p = p_schedule(p_init, it - 1, n_iters)
        everyone = active.numel() == n  # then skip the gathers and scatters
        xa, xb = (x, x_best) if everyone else (x[active], x_best[active])
        step = _step_linf if threat.norm == "linf" else _step_l2
        cand = keep_layout(step(xa, xb, threat.eps, p, generator), xa)
        m_new = margin(oracle(cand, active), labels[active], targeted)
        better = m_new < m[active]
        m[active] = torch.where(better, m_new, m[active])
        new_best = torch.lerp(xb, cand, better.to(x.dtype).view(-1, 1, 1, 1))
        if everyone:
            x_best = new_best
        else:
            x_best[active] = new_best
    return threat.project(x, x_best)  # a no-op but for float round-off at the ball's edge
