"""Exact verification of small ReLU networks by mixed-integer linear programming (Tjeng et al. 2019).

For an L∞ ball ∩ pixel box, the smallest margin z_y − z_j over the set is a mixed-integer linear
program: every ReLU a = max(ẑ, 0) with pre-activation bounds l < 0 < u becomes
a ≥ ẑ, a ≥ 0, a ≤ u·δ, a ≤ ẑ − l·(1 − δ) with δ ∈ {0, 1} (big-M with the tightest M at hand: the
CROWN ∩ IBP bounds, tightened by LP as Tjeng et al. do); a neuron whose bounds fix its sign is
linear and needs no δ. HiGHS (scipy's ``milp``) solves it to optimality, so the answer is the
truth, not a bound: robust when the
minimum of every margin is positive, not robust when one is negative (the minimiser is a
counterexample in the set), undecided only when the time limit stops the search first.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from scipy import sparse
from scipy.optimize import Bounds as VarBounds
from scipy.optimize import LinearConstraint, milp
from torch import nn

from ..checks import check_choice, check_labels, check_positive
from ..errors import InputError
from ..models import eval_mode
from ..precision import strictly_fp32
from ..progress import bar
from ..threat import ThreatModel
from ..timing import Stopwatch
from .bounds import ALPHA_LR, ALPHA_STEPS, layers, margin_bounds

VERDICTS = ("robust", "not robust", "undecided")


def _segments(mods, x1):
    """The network as dense affine maps between ReLUs: [(W, b), ...] in float64, one more map than
    ReLU layers. Each W comes from the segment applied to the unit vectors (exact for affine maps)."""
    out, seg, z = [], [], x1
    for m in [*mods, None]:
        if m is None or isinstance(m, nn.ReLU):
            shape = z.shape[1:]
            d = int(np.prod(shape))
            eye = torch.eye(d, dtype=z.dtype, device=z.device)
            basis = torch.cat([torch.zeros_like(eye[:1]), eye]).view(d + 1, *shape)  # 0, e_1, ..., e_d
            for s in seg:
                basis = s(basis)
            flat = basis.flatten(1).double()
            out.append(((flat[1:] - flat[0]).T.cpu().numpy(), flat[0].cpu().numpy()))
            for s in seg:
                z = s(z)
            seg = []
        else:
            seg.append(m)
    return out


def _program(segs, pre, lo, hi):
    """The feasible set of the MILP: the network over the box [lo, hi] with ReLU bounds ``pre``
    [(l, u)] per layer (variables: the input, then per ReLU layer its activations and indicators).
    Returns the constraints, integrality, variable bounds and a function c ↦ (cost, constant) for
    the objective c·f, so the margins of one example share one set of constraints."""
    sizes = [lo.size] + [len(l) for l, _ in pre]
    offsets = np.cumsum([0, sizes[0]] + [2 * n for n in sizes[1:]])
    nvar = int(offsets[-1])
    var_lo, var_hi = np.zeros(nvar), np.zeros(nvar)
    var_lo[:sizes[0]], var_hi[:sizes[0]] = lo, hi
    integrality = np.zeros(nvar)
    rows, lb, ub = [], [], []
    prev = slice(0, sizes[0])
    for i, ((w, b), (l, u)) in enumerate(zip(segs[:-1], pre)):
        n, start = len(l), int(offsets[i + 1])
        act, ind = slice(start, start + n), slice(start + n, start + 2 * n)
        var_lo[act], var_hi[act] = np.maximum(l, 0), np.maximum(u, 0)
        on, off = l >= 0, u <= 0
        unstable = ~on & ~off
        var_lo[ind], var_hi[ind] = on.astype(float), (~off).astype(float)
        integrality[ind] = unstable
        eye = sparse.identity(n, format="csr")

        def block(mask, a_coef, w_coef, d_coef, lo_, hi_):
            k = int(mask.sum())
            if not k:
                return
            m = sparse.lil_matrix((k, nvar))
            m[:, act] = a_coef * eye[mask]
            m[:, prev] = w_coef * sparse.csr_matrix(w[mask])
            if d_coef is not None:
                m[:, ind] = sparse.diags(d_coef[mask]) @ eye[mask]
            rows.append(m.tocsr())
            lb.append(lo_[mask])
            ub.append(hi_[mask])

        inf = np.full(n, np.inf)
        block(on, 1.0, -1.0, None, b, b)  # active: a = ẑ
        block(unstable, 1.0, -1.0, None, b, inf)  # a ≥ ẑ
        block(unstable, 1.0, -1.0, -l, -inf, b - l)  # a ≤ ẑ − l(1 − δ)
        block(unstable, 1.0, 0.0, -u, -inf, np.zeros(n))  # a ≤ u δ
        prev = act
    w, b = segs[-1]

    def objective(c):
        cost = np.zeros(nvar)
        cost[prev] = c @ w
        return cost, float(c @ b)

    constraints = LinearConstraint(sparse.vstack(rows), np.concatenate(lb), np.concatenate(ub)) if rows else None
    return constraints, integrality, VarBounds(var_lo, var_hi), objective


LP_TOLERANCE = 1e-6  # slack on every LP bound, relative to its size: HiGHS solves to ~1e-7 feasibility
# share of an example's time limit the LP tightening may take: on the book's 2-hidden-layer MLPs it
# removes at most one binary of 41-64 (benchmarks/alpha_crown_milp.py), so it must not starve the MILP
LP_SHARE = 0.25
REFINEMENTS = ("lp", "none")


def _lp_bound(cost, const, constraints, var_bounds, left: float) -> float | None:
    """min cost·v + const over the LP relaxation (None if HiGHS did not finish within ``left`` s)."""
    res = milp(cost, constraints=constraints, integrality=np.zeros(len(cost)), bounds=var_bounds,
               options={"time_limit": max(left, 1e-3), "disp": False})
    if res.status != 0:
        return None
    v = res.fun + const
    return v - LP_TOLERANCE * max(1.0, abs(v))


def refine_bounds(segs, pre, lo, hi, seconds: float = float("inf")) -> tuple[list, int]:
    """Tjeng et al.'s progressive LP bounds: from the second ReLU layer on, every neuron still
    unstable is minimised and maximised over the LP relaxation of the network below it (each
    earlier unstable ReLU relaxed to its triangle, with the bounds refined so far). The result is
    sound (the relaxation contains every reachable point) and never looser than ``pre``; a neuron it
    proves stable needs no binary variable, and the others get smaller big-M constants. Stops after
    ``seconds`` with what it has. Returns the bounds and the LPs solved."""
    pre = [(l.copy(), u.copy()) for l, u in pre]
    with Stopwatch() as clock:
        return _refine(segs, pre, lo, hi, lambda: seconds - clock.elapsed())


def _refine(segs, pre, lo, hi, left_s):
    """``refine_bounds``' work, in place on ``pre``; ``left_s()`` is the time left."""
    solved = 0
    for i in range(1, len(pre)):  # the first layer's bounds over the box are exact already
        l, u = pre[i]
        todo = np.flatnonzero((l < 0) & (u > 0))
        if not len(todo):
            continue
        constraints, _, var_bounds, objective = _program(segs[:i + 1], pre[:i], lo, hi)
        for k in todo:
            c = np.zeros(len(l))
            c[k] = 1.0
            cost, const = objective(c)
            for sign in (1, -1):
                left = left_s()
                if left <= 0:
                    return pre, solved
                v = _lp_bound(sign * cost, sign * const, constraints, var_bounds, left)
                solved += 1
                if v is None:
                    continue
                if sign > 0:
                    l[k] = max(l[k], v)
                else:
                    u[k] = min(u[k], -v)
                if l[k] >= 0 or u[k] <= 0:
                    break  # stable: its other side does not matter to the program
    return pre, solved


@strictly_fp32
def exact_verification(model: nn.Module, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel, *,
                       time_limit: float = 30.0, refine: str = "lp", progress: bool = True,
                       alpha_steps: int = ALPHA_STEPS, alpha_lr: float = ALPHA_LR) -> pd.DataFrame:
    """Decide robustness of every example exactly; one row per example.

    Columns: ``verdict`` (robust / not robust / undecided, ``VERDICTS``; an example the model
    misclassifies clean is not robust), ``programs`` (MILPs solved: one per margin, most doubtful
    first, none for margins CROWN already proves positive), ``binaries`` (unstable ReLUs),
    ``seconds``, and ``counterexample`` (the minimiser of a non-positive margin, else None).
    L∞ only: an L2 ball is not linear. ``time_limit`` is the solver time per example, in seconds:
    an example whose programs it cannot finish in time is undecided (the search stops at its
    first unfinished program). Before branching, the margins are bounded by α-CROWN (margins it
    proves positive need no program; its final-layer variant) and, with ``refine="lp"``, the intermediate bounds are
    tightened by LP (``refine_bounds``, within ``LP_SHARE`` of the time limit);
    ``binaries_crown`` and ``lps`` say what that changed and cost.
    """
    check_choice(refine, REFINEMENTS, "refine")
    if not isinstance(threat, ThreatModel) or threat.norm != "linf":
        raise InputError("exact verification by MILP needs an L∞ threat model (an L2 ball is a quadratic "
                         "constraint, not a linear one)")
    check_positive(time_limit, "time_limit")
    check_labels(y, x)
    mods = layers(model)
    with torch.no_grad(), eval_mode(model):
        segs = _segments(mods, x[:1])
        rows = [_decide(model, segs, x[i:i + 1], y[i:i + 1], threat, time_limit, refine, (alpha_steps, alpha_lr))
                for i in bar(range(x.shape[0]), desc=f"MILP {threat}", enabled=progress, leave=False)]
    return pd.DataFrame(rows)


def _decide(model, segs, xi, yi, threat, time_limit, refine, alpha) -> dict:
    """One example's verdict: a program per margin α-CROWN leaves open, most doubtful first."""
    with Stopwatch(xi.device) as clock:
        bounds = margin_bounds(model, xi, yi, threat, method="alpha_crown_final", upper=False, alpha_steps=alpha[0],
                               alpha_lr=alpha[1])
        pre = [(l.flatten().double().cpu().numpy(), u.flatten().double().cpu().numpy()) for l, u in bounds.layers]
        crown_binaries = int(sum(((l < 0) & (u > 0)).sum() for l, u in pre))
        lo, hi = (t.flatten().double().cpu().numpy() for t in threat.bounds(xi))
        label, k = int(yi), bounds.lower.shape[1]
        order = [j for j in torch.argsort(bounds.lower[0]).tolist() if j != label and bounds.lower[0, j] <= 0]
        verdict, cex, solved, lps = "robust", None, 0, 0
        if order and refine == "lp":
            pre, lps = refine_bounds(segs, pre, lo, hi, LP_SHARE * (time_limit - clock.elapsed()))
        if order:
            constraints, integrality, var_bounds, objective = _program(segs, pre, lo, hi)
        for j in order:
            left = time_limit - clock.elapsed()
            if left <= 0:
                verdict = "undecided"
                break
            c = np.zeros(k)
            c[label], c[j] = 1.0, -1.0
            cost, const = objective(c)
            res = milp(cost, constraints=constraints, integrality=integrality, bounds=var_bounds,
                       options={"time_limit": left, "disp": False})
            solved += 1
            if res.x is not None and res.fun + const <= 0:  # optimal or not, a counterexample
                verdict = "not robust"
                cex = torch.as_tensor(res.x[:lo.size], dtype=xi.dtype, device=xi.device).view_as(xi).clamp(0, 1)
                break
            proven = res.status == 0 or (getattr(res, "mip_dual_bound", None) is not None
                                         and res.mip_dual_bound + const > 0)
            if not proven:
                verdict = "undecided"
                break
    binaries = int(sum(((l < 0) & (u > 0)).sum() for l, u in pre))
    return {"verdict": verdict, "programs": solved, "binaries": binaries, "binaries_crown": crown_binaries,
            "lps": lps, "seconds": clock.seconds, "counterexample": cex}
