"""Sound bounds on a network's outputs over a threat model's input set: IBP, CROWN and α-CROWN.

All bound every output of a linear *specification* ``C · f(x')`` over all x' in the ball ∩ pixel
box around x. The specification the book certifies with is the margin, true class minus each
other class: if every margin's lower bound is positive, no input of the set changes the
prediction, whatever attack is tried.

The network is the graph :func:`~advlab.certify.graph.trace` makes of it: affine maps (linear and
convolution layers, batch norm in eval mode, normalisation, average pooling, reshapes, arithmetic
with constants), sums of branches (residual blocks), ReLU and max pooling. An unsupported operation
is an error that names it and its module path, before any work.

- **IBP** (interval bound propagation, Gowal et al. 2018) pushes a box through the graph: an affine
  map sends the centre exactly and the radius through |W|; a ReLU clips both ends; max pooling
  pools both ends. The affine maps after the last nonlinearities are folded into the specification
  (the margin is bounded directly, not as the difference of two logit intervals).
- **CROWN** (Zhang et al. 2018; the backward form of Wong & Kolter's convex outer bound) bounds
  every ReLU between two lines and propagates the specification backwards to the input: the upper
  line is the chord through (l, 0) and (u, u), the lower line has slope 1 where u ≥ −l and 0
  otherwise (CROWN's adaptive choice). Max pooling's lower line is the window's input with the
  largest lower bound; its upper line is that input when it dominates the window, else the largest
  upper bound. The pre-activation bounds l, u of every nonlinearity are themselves computed this way,
  node by node, for the neurons the box leaves open (all of them where max pooling reads the node,
  directly or after a ReLU: its lines use every input's box), and intersected with the box. The
  final bound is the better, per row, of CROWN's and the interval bound from those boxes.
- **α-CROWN** (Xu et al. 2021) optimises the lower slopes of the unstable ReLUs (any slope in
  [0, 1] is sound) by projected Adam, ``alpha_steps`` steps (:data:`ALPHA_STEPS` by default):
  ``"alpha_crown"`` as published, with separate slopes for every intermediate node's bounds, which
  are re-computed at each step and intersected with CROWN's; ``"alpha_crown_final"`` the fast
  variant that optimises the final specification's slopes only (intermediate bounds stay CROWN's).
- **CROWN-IBP** (Zhang et al. 2020) is CROWN's backward pass from IBP's intermediate bounds: looser
  than CROWN, as cheap as one backward pass, and what CROWN-IBP training differentiates.

The input set is the threat model's ball intersected with [0, 1]: for L∞ that is a box; for L2 a
linear form is bounded both over the box hull and with the dual norm over the ball, and the
tighter of the two is kept (the affine prefix's bounds too, in IBP). Everything is batched over
examples; memory grows with the batch and the network, never with the dataset, and the neurons of a
node are bounded in chunks of at most :data:`MAX_ELEMENTS` floats.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ..checks import check_choice, check_label_range, check_labels, check_model_inputs, check_positive_int
from ..data import to_float
from ..errors import InputError
from ..models import Normalize, eval_mode, predict
from ..precision import strictly_fp32
from ..progress import bar
from ..threat import ThreatModel
from ..timing import Stopwatch
from .graph import SUPPORTED, Graph, MaxPool, Reshape, Scale, trace  # noqa: F401  (SUPPORTED: named here too)

#: The bound-propagation methods of :func:`margin_bounds`: interval (IBP), CROWN, α-CROWN as published
#: (intermediate bounds optimised too), α-CROWN's final-layer variant, and CROWN-IBP (CROWN over IBP's
#: intermediate bounds).
BOUND_METHODS = ("ibp", "crown", "alpha_crown", "alpha_crown_final", "crown_ibp")
CROWN_METHODS = ("crown", "alpha_crown", "alpha_crown_final")  # CROWN's intermediate bounds
ALPHA_METHODS = ("alpha_crown", "alpha_crown_final")
NONLINEAR = ("relu", "maxpool")
ALPHA_STEPS = 20  # α-CROWN's default: projected Adam steps of the slope optimisation
ALPHA_LR = 0.25  # their default learning rate (slopes live in [0, 1])
#: The layers the MILP's sequential encoding takes (:func:`layers`).
SEQUENTIAL = ("Normalize", "Linear", "Conv2d", "ReLU", "Flatten", "BatchNorm1d/2d (eval mode)", "AvgPool2d",
              "Identity")
MAX_ELEMENTS = 2 ** 22  # floats per backward coefficient tensor (16 MiB): measured fastest on 2 cores
ALPHA_ELEMENTS = 2 ** 24  # coefficient floats of one α-CROWN step's intermediate passes, per chunk of examples
_BN = (nn.BatchNorm1d, nn.BatchNorm2d)
_SEQUENTIAL = (nn.Linear, nn.Conv2d, *_BN, nn.AvgPool2d, Normalize, nn.Flatten, nn.Identity)
_RESHAPES = (nn.Flatten, nn.Identity, nn.Dropout, Reshape)
_ELEMENTWISE = (*_RESHAPES, *_BN, Normalize, Scale)  # maps a box to a box exactly

def layers(model: nn.Module) -> list[nn.Module]:
    """A sequential network as a flat list of its layers, in order (what the MILP encodes); max pooling,
    branches or any other layer are an error that names it. Bound propagation itself takes any
    network :func:`~advlab.certify.trace` supports."""
    out = []

    def walk(m, path):
        if isinstance(m, nn.Sequential):
            for name, child in m.named_children():
                walk(child, f"{path}.{name}" if path else name)
        elif "SEQUENTIAL_PARTS" in vars(type(m)):  # a container declaring its forward is its parts in order
            for name in type(m).SEQUENTIAL_PARTS:
                walk(getattr(m, name), f"{path}.{name}" if path else name)
        elif isinstance(m, (nn.ReLU, *_SEQUENTIAL)):
            if isinstance(m, _BN) and (m.training or not m.track_running_stats):
                raise InputError(f"{type(m).__name__} at {path} normalises with batch statistics (training mode): "
                                 "bounds hold for the eval-mode network; call model.eval()")
            if isinstance(m, nn.Conv2d) and m.padding_mode != "zeros":
                raise InputError(f"Conv2d at {path} pads with {m.padding_mode!r}; bound propagation supports "
                                 "zero padding")
            out.append(m)
        else:
            raise InputError(f"the MILP encodes sequential networks of {', '.join(SEQUENTIAL)}; it does not support "
                             f"{type(m).__name__} (at {path or 'the model'})")

    walk(model, "")
    if not out:
        raise InputError("the model has no layers to bound")
    return out


# -- one operation at a time ---------------------------------------------------------------------
def _bn_affine(m):
    scale = torch.rsqrt(m.running_var + m.eps)
    if m.affine:
        scale = scale * m.weight
    shift = -m.running_mean * scale + (m.bias if m.affine else 0)
    return scale, shift


def _channel(v, ndim):  # per-channel vector -> broadcastable over (N, C, ...)
    return v.view(1, -1, *([1] * (ndim - 2)))


def _abs_linear(m, r):
    """|W| r: the radius of an affine map's output box for an input box of radius r."""
    if isinstance(m, nn.Linear):
        return F.linear(r, m.weight.abs())
    if isinstance(m, nn.Conv2d):
        return F.conv2d(r, m.weight.abs(), None, m.stride, m.padding, m.dilation, m.groups)
    if isinstance(m, _BN):
        return r * _channel(_bn_affine(m)[0].abs(), r.ndim)
    if isinstance(m, Normalize):
        return r / m.std.abs()
    if isinstance(m, Scale):
        return r * abs(m.w) if not torch.is_tensor(m.w) else r * m.w.abs()
    return m(r)  # pooling (non-negative weights, no bias), reshapes, identity


def _ibp_affine(m, lo, hi):
    mid, rad = (hi + lo) / 2, (hi - lo) / 2
    mid, rad = m(mid), _abs_linear(m, rad)
    return mid - rad, mid + rad


def _summed(t):
    return t.flatten(1).sum(1)


def _back_affine(m, a, in_shape):
    """A ↦ (A·W, A·b) for an affine map z ↦ Wz + b; A has shape (R, *out) for R specification rows."""
    r = a.shape[0]
    if isinstance(m, nn.Linear):
        return a @ m.weight, (a @ m.bias if m.bias is not None else 0)
    if isinstance(m, _RESHAPES):
        return a.reshape(r, *in_shape), 0
    if isinstance(m, Normalize):
        return a / m.std, -_summed(a * (m.mean / m.std))
    if isinstance(m, Scale):
        return a * m.w, (_summed(a * m.b) if torch.is_tensor(m.b) or m.b != 0 else 0)
    if isinstance(m, _BN):
        scale, shift = _bn_affine(m)
        return a * _channel(scale, a.ndim), _summed(a * _channel(shift, a.ndim))
    if isinstance(m, nn.Conv2d) and isinstance(m.padding, tuple):
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = m.kernel_size, m.stride, m.padding, m.dilation
        oh, ow = a.shape[-2:]
        extra = (in_shape[-2] - ((oh - 1) * sh - 2 * ph + dh * (kh - 1) + 1),
                 in_shape[-1] - ((ow - 1) * sw - 2 * pw + dw * (kw - 1) + 1))
        if m.in_channels == 1 and m.groups == 1 and extra == (0, 0):  # W^T as one matmul and a fold: 2x on CPU
            cols = torch.matmul(m.weight.reshape(m.out_channels, -1).t(), a.flatten(2))
            out = F.fold(cols, in_shape[-2:], m.kernel_size, m.dilation, m.padding, m.stride)
        else:
            out = F.conv_transpose2d(a, m.weight, None, m.stride, m.padding, extra, m.groups, m.dilation)
        return out, (a.sum((2, 3)) @ m.bias if m.bias is not None else 0)
    # any other affine map (average pooling, 'same' padding): the transpose is its input gradient
    with torch.enable_grad():
        z = torch.zeros((r, *in_shape), device=a.device, dtype=a.dtype, requires_grad=True)
        g, = torch.autograd.grad(m(z), z, a, create_graph=a.requires_grad)  # α-CROWN differentiates through it
    bias = m(torch.zeros((1, *in_shape), device=a.device, dtype=a.dtype))
    return g, _summed(a * bias)


def _row_norms(m, value, sq):
    """Through an affine map m, the value at x and the squared L2 norms of the rows (as a function of
    the input) of a node whose rows are disjoint scaled unit vectors (elementwise maps of the input)
    or one Linear / Conv2d of those; None for any other map."""
    if isinstance(m, _ELEMENTWISE):
        zero = torch.zeros_like(sq)
        return m(value), (m(sq.sqrt()) - m(zero)) ** 2
    if isinstance(m, nn.Linear):
        return m(value), F.linear(sq, m.weight ** 2)
    if isinstance(m, nn.Conv2d) and isinstance(m.padding, tuple) and m.padding_mode == "zeros":
        return m(value), F.conv2d(sq, m.weight ** 2, None, m.stride, m.padding, m.dilation, m.groups)
    return None


def _relaxation(lo, hi):
    """CROWN's ReLU lines: lower slope (adaptive), upper slope and upper intercept, shaped like lo."""
    unstable = (lo < 0) & (hi > 0)
    active = (lo >= 0).to(lo.dtype)
    width = (hi - lo).clamp_min(1e-12)
    up_slope = torch.where(unstable, hi / width, active)
    up_bias = torch.where(unstable, -hi * lo / width, torch.zeros_like(lo))
    lo_slope = torch.where(unstable, (hi >= -lo).to(lo.dtype), active)
    return lo_slope, up_slope, up_bias


@dataclass
class _PoolLines:
    """Max pooling's linear bounds per output: the lower line is the window's input with the largest
    lower bound (y ≥ x_k); the upper line is that input too when its lower bound is at least every
    other input's upper bound (y = x_k), else the constant largest upper bound of the window."""

    pick: torch.Tensor  # (B, C, K, L) one-hot over the K window positions of the L outputs
    exact: torch.Tensor  # (B, C, L) where y = x_k
    top: torch.Tensor  # (B, C, L) the window's largest upper bound
    pool: MaxPool
    padded: tuple  # (H + 2p, W + 2p)


def _windows(pool: MaxPool, t):
    (ph, pw), (kh, kw) = pool.padding, pool.kernel
    t = F.pad(t, (pw, pw, ph, ph), value=-math.inf)  # as max pooling pads: never the maximum
    b, c = t.shape[:2]
    return F.unfold(t, pool.kernel, pool.dilation, 0, pool.stride).view(b, c, kh * kw, -1), tuple(t.shape[-2:])


def _pool_lines(pool: MaxPool, lo, hi) -> _PoolLines:
    lw, padded = _windows(pool, lo)
    hw, _ = _windows(pool, hi)
    k = lw.argmax(2, keepdim=True)
    others = hw.scatter(2, k, -math.inf).amax(2)
    exact = lw.gather(2, k).squeeze(2) >= others
    return _PoolLines(torch.zeros_like(lw).scatter(2, k, 1.0), exact, hw.amax(2), pool, padded)


def _back_pool(lines: _PoolLines, a, in_shape, lower: bool):
    """A ↦ (A·x-coefficients, constant) through max pooling's lines: a lower bound takes the lower line
    where A > 0 and the upper line where A < 0 (an upper bound the reverse)."""
    n, s = a.shape[:2]
    b, c, kk, ll = lines.pick.shape
    a = a.expand(b, *a.shape[1:]).reshape(b, s, c, ll)
    pos, neg = a.clamp(min=0), a.clamp(max=0)
    on_line, off_line = (pos, neg) if lower else (neg, pos)
    exact = lines.exact.unsqueeze(1).to(a.dtype)
    coef = on_line + off_line * exact
    const = (off_line * (1 - exact) * lines.top.unsqueeze(1)).flatten(2).sum(2)
    g = (lines.pick.unsqueeze(1) * coef.unsqueeze(3)).reshape(b * s, c * kk, ll)
    p = lines.pool
    g = F.fold(g, lines.padded, p.kernel, p.dilation, 0, p.stride)
    (ph, pw) = p.padding
    g = g[..., ph:ph + in_shape[-2], pw:pw + in_shape[-1]]
    return g.reshape(b, s, *in_shape), const


# -- backward propagation of a specification ------------------------------------------------------
def _backward(graph: Graph, shapes: list, relax: dict, c, target: int, upper: bool, boxes: dict | None = None,
              relax_hi: dict | None = None):
    """Linear bounds of ``c · (node target)`` in terms of the input, walking the graph backwards.

    ``c``: (B, S, *shape of the target), or (1, S, ...) when every example shares it: it then stays
    one copy through the affine maps down to the first nonlinearity (an intermediate node's identity
    specification costs one pass, not B). ``relax``: each nonlinear node's lines (``relax_hi``, if
    given, for the upper bound's pass). With ``boxes``, every nonlinear node is replaced by its box
    (the interval bound with the affine maps after the nonlinearities folded into the specification).
    Returns ``(A_lo, b_lo, A_hi, b_hi)``: A_lo·x' + b_lo ≤ c·f ≤ A_hi·x' + b_hi over the set (A None
    when nothing reaches the input; A_hi, b_hi None when ``upper`` is False)."""
    relax_hi = relax if relax_hi is None else relax_hi
    s = c.shape[1]
    acc_lo, acc_hi = {target: c}, ({target: c} if upper else {})
    b_lo = torch.zeros(c.shape[:2], device=c.device, dtype=c.dtype)
    b_hi = torch.zeros_like(b_lo) if upper else None

    def push(acc, i, a):
        acc[i] = acc[i] + a if i in acc else a

    def affine(m, a, shape):
        n = a.shape[0]
        a, bias = _back_affine(m, a.reshape(n * s, *a.shape[2:]), shape)
        return a.view(n, s, *shape), (bias.view(n, s) if torch.is_tensor(bias) else 0)

    def relu(lines, a, lower):
        # α-CROWN's lower slopes carry the specification dimension already; CROWN's do not
        ls, us, ub = (t if t.ndim == a.ndim else t.unsqueeze(1) for t in lines)
        pos, neg = a.clamp(min=0), a.clamp(max=0)
        on, off = (neg, pos) if lower else (pos, neg)  # the part of A that meets the upper line
        return torch.addcmul(off * ls, on, us), _dot(on, ub)

    for j in range(target, 0, -1):
        if j not in acc_lo:
            continue
        node = graph.nodes[j]
        a_lo, a_hi = acc_lo.pop(j), (acc_hi.pop(j) if upper else None)
        if boxes is not None and node.op in NONLINEAR:
            b_lo = b_lo + _concretize(a_lo, 0, *boxes[j], -1)
            if upper:
                b_hi = b_hi + _concretize(a_hi, 0, *boxes[j], +1)
            continue
        src = node.inputs[0]
        if node.op == "add":
            for i, sign in ((src, 1.0), (node.inputs[1], node.sign)):
                push(acc_lo, i, a_lo * sign)
                if upper:
                    push(acc_hi, i, a_hi * sign)
            continue
        if node.op == "relu":
            (a_lo, d_lo), (a_hi, d_hi) = relu(relax[j], a_lo, True), (relu(relax_hi[j], a_hi, False) if upper
                                                                      else (None, 0))
        elif node.op == "maxpool":
            (a_lo, d_lo) = _back_pool(relax[j], a_lo, shapes[src], True)
            (a_hi, d_hi) = _back_pool(relax[j], a_hi, shapes[src], False) if upper else (None, 0)
        else:
            (a_lo, d_lo) = affine(node.fn, a_lo, shapes[src])
            (a_hi, d_hi) = affine(node.fn, a_hi, shapes[src]) if upper else (None, 0)
        b_lo = b_lo + d_lo
        push(acc_lo, src, a_lo)
        if upper:
            b_hi = b_hi + d_hi
            push(acc_hi, src, a_hi)
    return acc_lo.get(0), b_lo, acc_hi.get(0), b_hi


def _dot(a, v):
    """Σ a·v over each row's neurons: a (B or 1, S, ...), v (B, 1 or S, ...) → (B, S)."""
    if v.shape[1] != 1:
        return (a * v).flatten(2).sum(2)
    return torch.matmul(a.flatten(2), v.flatten(2).transpose(1, 2)).squeeze(2)  # no (B, S, ...) product


def _concretize(a, bias, lo, hi, sign: int, ball=None):
    """min (sign = −1 → lower bound) or max (sign = +1) of a·z + bias over the box [lo, hi] and,
    with ``ball = (x, eps)``, over the L2 ball too (the tighter of the two); ``a`` None is 0."""
    if a is None:
        return bias
    lo, hi = lo.unsqueeze(1), hi.unsqueeze(1)
    pos, neg = a.clamp(min=0), a.clamp(max=0)
    if sign < 0:
        out = bias + _dot(pos, lo) + _dot(neg, hi)
    else:
        out = bias + _dot(pos, hi) + _dot(neg, lo)
    if ball is not None:
        x, eps = ball
        centre = bias + _dot(a, x.unsqueeze(1))
        dual = eps * a.flatten(2).norm(dim=2)
        out = torch.maximum(out, centre - dual) if sign < 0 else torch.minimum(out, centre + dual)
    return out


@dataclass
class Bounds:
    """Lower and upper bounds (B, S) of a specification, and the pre-activation bounds ``(l, u)``
    of every ReLU in order, each ``(B, *shape)``: the certificate's intermediate evidence."""

    lower: torch.Tensor
    upper: torch.Tensor | None
    layers: list


def _check_inputs(model, x, threat, method) -> Graph:
    check_choice(method, BOUND_METHODS, "bound method")
    if not isinstance(threat, ThreatModel):
        raise InputError(f"bounds need a ThreatModel, got {type(threat).__name__}")
    if threat.scale is not None:
        raise InputError("bounds are computed in pixel units; a threat model with per-channel units (scale) is not "
                         "supported")
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim < 2:
        raise InputError("x must be a floating-point batch (N, ...) of inputs in [0, 1]")
    if x.shape[0] == 0:
        raise InputError("x is an empty batch")
    if not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1:
        raise InputError("x must hold finite inputs in [0, 1]")
    check_model_inputs(model, x)
    return trace(model)


@dataclass
class _Pass:
    """One forward pass of bounds over a batch: every node's box, every nonlinearity's lines."""

    graph: Graph
    shapes: list
    boxes: dict
    relax: dict
    tightened: dict  # node -> neurons (flat indices) CROWN bounded: the targets α-CROWN re-optimises


def _forward(graph, x, threat, ball, crown: bool) -> _Pass:
    """Boxes of every node, tightened by CROWN where a nonlinearity reads them (``crown``; under L2
    also the affine prefix before the first nonlinearity, where CROWN is exact and cheap)."""
    shapes = graph.shapes(x)
    readers = graph.consumers()
    box = {0: threat.bounds(x)}
    p = _Pass(graph, shapes, box, {}, {})
    linear = {0}  # nodes with no nonlinearity before them
    mixing = {0: 0}  # of those, how many non-elementwise maps lie between them and the input
    rows = {0: (x, torch.ones_like(x))}  # of those with one such map at most: their value at x, squared row norms
    for j, n in enumerate(graph.nodes[1:], 1):
        ins = [box[i] for i in n.inputs]
        if n.op == "relu":
            p.relax[j] = _relaxation(*ins[0])
            box[j] = ins[0][0].clamp(min=0), ins[0][1].clamp(min=0)
        elif n.op == "maxpool":
            p.relax[j] = _pool_lines(n.fn, *ins[0])
            box[j] = n.fn(ins[0][0]), n.fn(ins[0][1])
        elif n.op == "add":
            (l0, u0), (l1, u1) = ins
            box[j] = (l0 + l1, u0 + u1) if n.sign > 0 else (l0 - u1, u0 - l1)
        else:
            box[j] = _ibp_affine(n.fn, *ins[0])
        if n.op not in NONLINEAR and all(i in linear for i in n.inputs):
            linear.add(j)
            mixing[j] = 2 if n.op == "add" else mixing[n.inputs[0]] + (not isinstance(n.fn, _ELEMENTWISE))
            if ball is not None and mixing[j] <= 1 and n.inputs[0] in rows:
                rows[j] = _row_norms(n.fn, *rows[n.inputs[0]])
                if rows[j] is not None:
                    centre, radius = rows[j][0], ball[1] * rows[j][1].sqrt()
                    box[j] = torch.maximum(box[j][0], centre - radius), torch.minimum(box[j][1], centre + radius)
                else:
                    del rows[j]
        # the box of one affine map (after elementwise ones) over a box is exact, and over the ball ∩ box
        # with the ball's dual-norm bound: CROWN would find the same
        exact = mixing.get(j, 2) <= 1 and (ball is None or j in rows)
        kinds = {graph.nodes[r].op for r in readers[j]} & set(NONLINEAR)
        if kinds and n.op not in NONLINEAR and not exact and (crown or (ball is not None and j in linear)):
            # max pooling's lines read every neuron's box, stable ones too (directly or after a ReLU)
            pooled = "maxpool" in kinds or any(graph.nodes[q].op == "maxpool" for r in readers[j]
                                               if graph.nodes[r].op == "relu" for q in readers[r])
            box[j] = _tighten(p, j, x, threat, ball, *box[j], every=pooled)
    return p


def _propagate(graph: Graph, x, threat, method, c, upper: bool, alpha: tuple = (ALPHA_STEPS, ALPHA_LR)):
    """Bounds of ``c · f`` over the input set: boxes through the graph (tightened by CROWN for the
    CROWN methods), then the specification propagated back to the input, or to the last boxes (IBP).
    CROWN and α-CROWN keep, per row, the better of their bound and the interval one."""
    ball = (x, threat.eps) if threat.norm == "l2" else None
    p = _forward(graph, x, threat, ball, crown=method in CROWN_METHODS)
    pre = [p.boxes[graph.nodes[j].inputs[0]] for j in graph.relu_nodes()]
    out = len(graph.nodes) - 1
    interval = _backward(graph, p.shapes, p.relax, c, out, upper, boxes=p.boxes)
    lower = _concretize(interval[0], interval[1], *p.boxes[0], -1, ball)
    up = _concretize(interval[2], interval[3], *p.boxes[0], +1, ball) if upper else None
    if method == "ibp":
        return Bounds(lower, up, pre)
    a_lo, b_lo, a_hi, b_hi = _backward(graph, p.shapes, p.relax, c, out, upper)
    crown_lo = _concretize(a_lo, b_lo, *p.boxes[0], -1, ball)
    crown_up = _concretize(a_hi, b_hi, *p.boxes[0], +1, ball) if upper else None
    if method == "crown_ibp":  # the training bound: CROWN's backward pass alone (what its gradient is)
        return Bounds(crown_lo, crown_up, pre)
    lower = torch.maximum(lower, crown_lo)
    up = torch.minimum(up, crown_up) if upper else None
    if method in ALPHA_METHODS and p.relax:
        lower = torch.maximum(lower, _optimised(p, x, ball, c, method == "alpha_crown", *alpha))
        pre = [p.boxes[graph.nodes[j].inputs[0]] for j in graph.relu_nodes()]
    return Bounds(lower, up, pre)


def _tighten(p: _Pass, j: int, x, threat, ball, lo, hi, every: bool):
    """CROWN bounds for the neurons of node ``j`` that the current box leaves unstable in some
    example of the batch (``every``: all that are not fixed, as max pooling reads them), intersected
    with the box; chunked to bound the memory. Records which neurons it bounded."""
    b = x.shape[0]
    shape = lo.shape[1:]
    flat_lo, flat_hi = lo.reshape(b, -1).clone(), hi.reshape(b, -1).clone()
    todo = ((flat_lo < flat_hi) if every else (flat_lo < 0) & (flat_hi > 0)).any(0).nonzero().squeeze(1)
    if todo.numel() == 0:
        return lo, hi
    p.tightened[j] = todo
    patched = _patch_bounds(p, j, x, ball)
    if patched is not None:  # every neuron, at the windows' cost
        return torch.maximum(lo, patched[0]), torch.minimum(hi, patched[1])
    widest = max(math.prod(s) for s in p.shapes[:j + 1])
    chunk = max(1, MAX_ELEMENTS // (b * widest))
    box = p.boxes[0]
    for part in torch.split(todo, chunk):
        c = _rows(part, flat_lo.shape[1], shape, x)
        a_lo, b_lo, a_hi, b_hi = _backward(p.graph, p.shapes, p.relax, c, j, True)
        flat_lo[:, part] = torch.maximum(flat_lo[:, part], _concretize(a_lo, b_lo, *box, -1, ball))
        flat_hi[:, part] = torch.minimum(flat_hi[:, part], _concretize(a_hi, b_hi, *box, +1, ball))
    return flat_lo.view(b, *shape), flat_hi.view(b, *shape)


# -- intermediate bounds of a convolution chain, in patches ---------------------------------------
# Between the input and an early convolution every neuron sees a window of the image only, so its
# CROWN coefficients live in a small patch. Carried as (N, channels of the target, locations, C, kh, kw)
# per stage instead of dense maps of the whole layer (auto_LiRPA's "patches" mode), the same bounds
# cost the window's size, not the image's: on Wong & Kolter's ConvNet 10-12x fewer elements.
def _chain(graph: Graph, j: int) -> list | None:
    """Nodes j, ..., 1 when the path from the input to node j is a chain of 2-d convolutions (zero
    padding, no groups or dilation), per-channel affine maps, ReLUs and non-overlapping max pooling
    (kernel = stride, no padding or dilation); None otherwise."""
    out, i = [], j
    while i != 0:
        n = graph.nodes[i]
        if len(n.inputs) != 1 or n.op not in ("relu", "affine", "maxpool"):
            return None
        if n.op == "maxpool":
            if n.fn.kernel != n.fn.stride or n.fn.padding != (0, 0) or n.fn.dilation != (1, 1):
                return None
        elif n.op == "affine":
            m = n.fn
            conv = (isinstance(m, nn.Conv2d) and m.groups == 1 and m.padding_mode == "zeros"
                    and isinstance(m.padding, tuple) and m.dilation == (1, 1))
            if not conv and _channel_affine(m) is None:
                return None
        out.append(i)
        i = n.inputs[0]
    return out


def _channel_affine(m):
    """(w, b) with one value per channel (or one for all) of an elementwise affine map, else None."""
    if isinstance(m, (nn.Identity, nn.Dropout)):
        return 1.0, 0.0
    if isinstance(m, Normalize):
        return 1 / m.std.flatten(), -(m.mean / m.std).flatten()
    if isinstance(m, nn.BatchNorm2d):
        return _bn_affine(m)
    if isinstance(m, Scale):
        parts = []
        for v in (m.w, m.b):
            t = torch.as_tensor(v, dtype=torch.float32)
            if t.numel() == 1:
                parts.append(float(t))
            elif t.dim() >= 3 and t.shape[-2:] == (1, 1) and t.numel() == t.shape[-3]:
                parts.append(t.flatten())
            else:
                return None
        return tuple(parts)
    return None


def _unfold(t, k, pad, stride):
    """(B, C, H, W) -> (B, 1, L, C, kh, kw): every window the patches of the L locations read (zero padding)."""
    b, c = t.shape[:2]
    u = F.unfold(t, k, padding=pad, stride=stride)
    return u.view(b, c, k[0], k[1], -1).permute(0, 4, 1, 2, 3).unsqueeze(1)


def _per_channel(v, a):  # a value per channel (or a scalar), broadcast over (N, R, L, C, kh, kw)
    return v.view(1, 1, 1, -1, 1, 1).to(a.dtype) if torch.is_tensor(v) else v


def _patch_bounds(p: _Pass, j: int, x, ball, channels: torch.Tensor | None = None):
    """CROWN's lower and upper bounds (B, *shape of node j) for every neuron of node j, by patches
    (:func:`_chain`): the same linear bounds as :func:`_backward`, at the window's cost. None when the
    chain is not one, or its windows are not smaller than the maps they cover."""
    chain = _chain(p.graph, j)
    if chain is None or len(p.shapes[j]) != 3 or len(p.shapes[0]) != 3:
        return None
    cj, hj, wj = p.shapes[j]
    b = x.shape[0]
    k, pad, stride = (1, 1), (0, 0), (1, 1)
    geometry = []  # the window on each node's input, walking down
    for i in chain:
        m = p.graph.nodes[i].fn
        if isinstance(m, (nn.Conv2d, MaxPool)):
            size, step, edge = (m.kernel_size, m.stride, m.padding) if isinstance(m, nn.Conv2d) else \
                (m.kernel, m.stride, m.padding)
            k = tuple((k[d] - 1) * step[d] + size[d] for d in (0, 1))
            pad = tuple(pad[d] * step[d] + edge[d] for d in (0, 1))
            stride = tuple(stride[d] * step[d] for d in (0, 1))
            _, h, w = p.shapes[p.graph.nodes[i].inputs[0]]
            if k[0] * k[1] * 2 > h * w or (h + 2 * pad[0] - k[0]) // stride[0] + 1 != hj \
                    or (w + 2 * pad[1] - k[1]) // stride[1] + 1 != wj:
                return None  # a window as large as the map: the dense pass is as cheap
        geometry.append((k, pad, stride))
    per_row = max(p.shapes[p.graph.nodes[i].inputs[0]][0] * g[0][0] * g[0][1] for i, g in zip(chain, geometry))
    chunk = max(1, MAX_ELEMENTS // (b * hj * wj * per_row))
    lows, highs = [], []
    for part in torch.split(torch.arange(cj, device=x.device), chunk):
        eye = torch.zeros(1, len(part), hj * wj, cj, 1, 1, device=x.device, dtype=x.dtype)
        eye[0, torch.arange(len(part)), :, part] = 1
        a_lo = a_hi = eye
        d_lo = d_hi = torch.zeros(1, len(part), hj * wj, device=x.device, dtype=x.dtype)
        shape, cur_pad, cur_stride = (1, 1), (0, 0), (1, 1)  # the window on the current node
        for i, (k, pad, stride) in zip(chain, geometry):
            node = p.graph.nodes[i]
            m = node.fn
            if node.op == "relu":
                ls, us, ub = (_unfold(t, shape, cur_pad, cur_stride) for t in p.relax[i])
                pos, neg = a_lo.clamp(min=0), a_lo.clamp(max=0)
                d_lo = d_lo + (neg * ub).sum((3, 4, 5))
                a_lo = pos * ls + neg * us
                pos, neg = a_hi.clamp(min=0), a_hi.clamp(max=0)
                d_hi = d_hi + (pos * ub).sum((3, 4, 5))
                a_hi = pos * us + neg * ls
            elif node.op == "maxpool":
                (a_lo, d), (a_hi, e) = (_patch_pool(p.relax[i], p.shapes[i][1:], a, shape, cur_pad, cur_stride,
                                                    lower)
                                        for a, lower in ((a_lo, True), (a_hi, False)))
                d_lo, d_hi = d_lo + d, d_hi + e
            elif isinstance(m, nn.Conv2d):
                if m.bias is not None:
                    d_lo = d_lo + (a_lo.sum((4, 5)) * m.bias).sum(3)
                    d_hi = d_hi + (a_hi.sum((4, 5)) * m.bias).sum(3)
                _, h, w = p.shapes[node.inputs[0]]
                valid = F.unfold(torch.ones(1, 1, h, w, device=x.device, dtype=x.dtype), k, padding=pad,
                                 stride=stride).view(1, 1, k[0], k[1], -1).permute(0, 4, 1, 2, 3).unsqueeze(1)

                def back(a):
                    n, r, l_ = a.shape[:3]
                    out = F.conv_transpose2d(a.reshape(n * r * l_, *a.shape[3:]), m.weight, None, m.stride)
                    return out.view(n, r, l_, *out.shape[1:]) * valid  # zero padding is no input
                a_lo, a_hi = back(a_lo), back(a_hi)
            else:
                w_, b_ = _channel_affine(m)
                if torch.is_tensor(b_) or b_ != 0:
                    d_lo = d_lo + (a_lo * _per_channel(b_, a_lo)).sum((3, 4, 5))
                    d_hi = d_hi + (a_hi * _per_channel(b_, a_hi)).sum((3, 4, 5))
                a_lo, a_hi = a_lo * _per_channel(w_, a_lo), a_hi * _per_channel(w_, a_hi)
            shape, cur_pad, cur_stride = k, pad, stride
        lo, hi = (_unfold(t, shape, cur_pad, cur_stride) for t in p.boxes[0])
        low = d_lo + (a_lo.clamp(min=0) * lo + a_lo.clamp(max=0) * hi).sum((3, 4, 5))
        high = d_hi + (a_hi.clamp(min=0) * hi + a_hi.clamp(max=0) * lo).sum((3, 4, 5))
        if ball is not None:
            centre = _unfold(ball[0], shape, cur_pad, cur_stride)
            low = torch.maximum(low, d_lo + (a_lo * centre).sum((3, 4, 5))
                                - ball[1] * a_lo.flatten(3).norm(dim=3))
            high = torch.minimum(high, d_hi + (a_hi * centre).sum((3, 4, 5))
                                 + ball[1] * a_hi.flatten(3).norm(dim=3))
        lows.append(low.expand(b, -1, -1))
        highs.append(high.expand(b, -1, -1))
    return torch.cat(lows, 1).view(b, cj, hj, wj), torch.cat(highs, 1).view(b, cj, hj, wj)


def _patch_pool(lines: _PoolLines, out_hw, a, shape, pad, stride, lower: bool):
    """Patches (N, R, L, C, kh, kw) on a non-overlapping max pooling's output (``out_hw`` its map) ↦
    patches on its input (window kh·sh × kw·sw) and the constant, through the pooling's lines as
    :func:`_back_pool` takes them."""
    b, c, kk, _ = lines.pick.shape
    pool = lines.pool
    exact = _unfold(lines.exact.to(a.dtype).view(b, c, *out_hw), shape, pad, stride)
    top = _unfold(lines.top.view(b, c, *out_hw), shape, pad, stride)
    pos, neg = a.clamp(min=0), a.clamp(max=0)
    on_line, off_line = (pos, neg) if lower else (neg, pos)
    coef = on_line + off_line * exact
    const = (off_line * (1 - exact) * top).sum((3, 4, 5))
    (sh, sw), (kh, kw) = pool.kernel, shape
    u = F.unfold(lines.pick.view(b, c * kk, *out_hw), shape, padding=pad, stride=stride)
    pick = u.view(b, c, sh, sw, kh, kw, -1).permute(0, 6, 1, 4, 2, 5, 3).reshape(b, 1, -1, c, kh * sh, kw * sw)
    coef = coef[..., :, None, :, None].expand(*coef.shape[:4], kh, sh, kw, sw).reshape(*coef.shape[:4], kh * sh,
                                                                                         kw * sw)
    return coef * pick, const


def _rows(part, size, shape, x):
    """The identity specification of the neurons ``part`` of a node, shared by the batch (1, k, *shape)."""
    c = torch.zeros(1, part.numel(), size, device=x.device, dtype=x.dtype)
    c[0, torch.arange(part.numel(), device=x.device), part] = 1
    return c.view(1, part.numel(), *shape)


def _optimised(p: _Pass, x, ball, c, full: bool, steps: int, lr: float):
    """α-CROWN (Xu et al. 2021): the lower line of every unstable ReLU may have any slope in [0, 1]
    and stay sound, so each (example, specification row, neuron) gets its own slope, optimised by
    projected Adam to raise the concretized lower bound; every iterate is sound, and the best per row
    is returned. With ``full`` (as published), every intermediate node CROWN bounded gets its own
    slopes too, for its lower and upper bounds, re-computed at each step (intersected with CROWN's)
    and differentiated through into the final bound; the best intermediate bounds replace CROWN's in
    ``p``. Without, the intermediate bounds stay CROWN's (the final-layer variant: one backward pass
    per step); the full form starts from that variant's slopes and keeps, per row, the better of the two.
    ``steps`` and ``lr``: the caller's declared options, part of a result's key."""
    graph = p.graph
    readers = graph.consumers()
    before = _relus_before(graph)
    targets = {}
    if full:
        targets = {t: idx for t, idx in p.tightened.items()
                   if before[t] and any(graph.nodes[r].op == "relu" for r in readers[t])}
    b = x.shape[0]
    per_example = sum(len(idx) * max(math.prod(s) for s in p.shapes[:t + 1]) * len(before[t])
                      for t, idx in targets.items())
    chunk = max(1, ALPHA_ELEMENTS // max(1, per_example)) if targets else b
    lowers = []
    for start in range(0, b, chunk):
        sl = slice(start, start + chunk)
        args = (_sliced(p, sl), x[sl], None if ball is None else (ball[0][sl], ball[1]),
                c[sl] if c.shape[0] == b else c)
        lower, best, final = _optimise_slice(*args, {}, before, steps, lr)
        # the neurons still unstable in this chunk's examples (the batch's union would cost every one of them)
        mine = {t: idx[((p.boxes[t][0][sl].flatten(1)[:, idx] < 0) & (p.boxes[t][1][sl].flatten(1)[:, idx] > 0)).any(0)]
                for t, idx in targets.items()}
        mine = {t: idx for t, idx in mine.items() if idx.numel()}
        if mine:  # warm-started from the final layer's slopes, and never below that variant
            full_lower, best, _ = _optimise_slice(*args, mine, before, steps, lr, start_from=final)
            lower = torch.maximum(lower, full_lower)
        lowers.append(lower)
        for t, (lo, hi) in best.items():
            p.boxes[t][0][sl], p.boxes[t][1][sl] = lo, hi
    return torch.cat(lowers)


def _relus_before(graph: Graph) -> dict:
    """Node -> the ReLU nodes its value depends on."""
    out = {0: frozenset()}
    for j, n in enumerate(graph.nodes[1:], 1):
        out[j] = frozenset().union(*(out[i] | ({i} if graph.nodes[i].op == "relu" else set()) for i in n.inputs))
    return out


def _sliced(p: _Pass, sl) -> _Pass:
    def cut(v):
        if isinstance(v, _PoolLines):
            return _PoolLines(v.pick[sl], v.exact[sl], v.top[sl], v.pool, v.padded)
        return tuple(t[sl] for t in v)
    return _Pass(p.graph, p.shapes, {j: cut(v) for j, v in p.boxes.items()}, {j: cut(v) for j, v in p.relax.items()},
                 p.tightened)


def _optimise_slice(p: _Pass, x, ball, c, targets: dict, before: dict, steps: int, lr: float, start_from=None):
    graph, out, s = p.graph, len(p.graph.nodes) - 1, c.shape[1]
    relus = graph.relu_nodes()
    b = x.shape[0]

    def start(r, rows):  # CROWN's slopes, one per row
        ls = p.relax[r][0]
        return ls.unsqueeze(1).expand(-1, rows, *ls.shape[1:]).clone().requires_grad_(True)

    alphas = {(out, r, 0): (start(r, s) if start_from is None else start_from[r].detach().clone().requires_grad_(True))
              for r in relus}
    for t, idx in targets.items():
        for r in before[t]:
            alphas[(t, r, 0)], alphas[(t, r, 1)] = start(r, len(idx)), start(r, len(idx))
    opt = torch.optim.Adam(alphas.values(), lr=lr)
    best, best_boxes = None, {t: p.boxes[t] for t in targets}
    with torch.enable_grad():
        for it in range(steps + 1):
            boxes, lines, unstable = dict(p.boxes), {}, {}

            def relax_for(t, side):
                d = dict(p.relax)  # max pooling's lines stay CROWN's
                for r in (before[t] if t != out else relus):
                    ls, us, ub = lines[r]
                    d[r] = (torch.where(unstable[r].unsqueeze(1), alphas[(t, r, side)], ls.unsqueeze(1)), us, ub)
                return d

            for j, n in enumerate(graph.nodes):
                if n.op == "relu":
                    lo, hi = boxes[n.inputs[0]]
                    lines[j], unstable[j] = _relaxation(lo, hi), (lo < 0) & (hi > 0)
                if j in targets:
                    idx, (lo, hi) = targets[j], boxes[j]
                    shape = lo.shape[1:]
                    a_lo, b_lo, a_hi, b_hi = _backward(graph, p.shapes, relax_for(j, 0),
                                                       _rows(idx, math.prod(shape), shape, x), j, True,
                                                       relax_hi=relax_for(j, 1))
                    flat_lo, flat_hi = lo.reshape(b, -1).clone(), hi.reshape(b, -1).clone()
                    flat_lo[:, idx] = _through(torch.maximum, flat_lo[:, idx],
                                               _concretize(a_lo, b_lo, *p.boxes[0], -1, ball))
                    flat_hi[:, idx] = _through(torch.minimum, flat_hi[:, idx],
                                               _concretize(a_hi, b_hi, *p.boxes[0], +1, ball))
                    boxes[j] = flat_lo.view(b, *shape), flat_hi.view(b, *shape)
                    best_boxes[j] = (torch.maximum(best_boxes[j][0], boxes[j][0].detach()),
                                     torch.minimum(best_boxes[j][1], boxes[j][1].detach()))
            a_lo, b_lo, _, _ = _backward(graph, p.shapes, relax_for(out, 0), c, out, False)
            lower = _concretize(a_lo, b_lo, *p.boxes[0], -1, ball)
            best = lower.detach() if best is None else torch.maximum(best, lower.detach())
            if it == steps:
                break
            opt.zero_grad()
            (-lower.sum()).backward(inputs=list(alphas.values()))
            opt.step()
            with torch.no_grad():
                for a in alphas.values():
                    a.clamp_(0, 1)
    return best, best_boxes, {r: alphas[(out, r, 0)] for r in relus}


def _through(pick, ref, new):
    """The tighter of a reference bound and a re-optimised one, differentiated as the re-optimised
    one (auto_LiRPA's choice): where the reference wins, even by float rounding, a plain min/max would
    pass no gradient, and that neuron's slopes would never leave their start. new − new.detach() is
    exactly zero, so the value is the tighter bound to the bit (new + (pick − new) could round past it)."""
    return pick(ref, new).detach() + (new - new.detach())


@strictly_fp32
def bound_spec(model: nn.Module, x: torch.Tensor, threat: ThreatModel, c: torch.Tensor, *, method: str = "crown",
               upper: bool = True, alpha_steps: int = ALPHA_STEPS, alpha_lr: float = ALPHA_LR) -> Bounds:
    """Bounds of ``c · f(x')`` over every x' in ``threat``'s ball ∩ [0, 1] around each input.

    ``c``: (B, S, K) specification rows over the K outputs (or (S, K), shared by the batch).
    ``alpha_steps`` and ``alpha_lr``: α-CROWN's projected Adam steps and learning rate (its method only).
    The model runs in eval mode (restored afterwards); no gradient is recorded.
    """
    _check_alpha(alpha_steps, alpha_lr)
    with torch.no_grad(), eval_mode(model):
        graph = _check_inputs(model, x, threat, method)
        k = graph.shapes(x)[-1]
        if c.ndim == 2:
            c = c.unsqueeze(0).expand(x.shape[0], -1, -1)
        if c.shape[0] != x.shape[0] or tuple(c.shape[2:]) != k:
            raise InputError(f"specification c must have shape (B, S, *{k}) for B = {x.shape[0]} inputs, "
                             f"got {tuple(c.shape)}")
        return _propagate(graph, x, threat, method, c.to(x.dtype), upper, (alpha_steps, alpha_lr))


def _check_alpha(steps, lr):
    check_positive_int(alpha_steps=steps)
    if not (isinstance(lr, (int, float)) and not isinstance(lr, bool) and math.isfinite(lr) and lr > 0):
        raise InputError(f"alpha_lr must be a positive finite number, got {lr!r}")


def margin_spec(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(B, K, K) rows e_y − e_j: the margins of the true class over every class (row y is zero)."""
    eye = torch.eye(num_classes, device=y.device)
    return eye[y].unsqueeze(1) - eye.unsqueeze(0)


@strictly_fp32
def margin_bounds(model: nn.Module, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel, *,
                  method: str = "crown", upper: bool = True, alpha_steps: int = ALPHA_STEPS,
                  alpha_lr: float = ALPHA_LR) -> Bounds:
    """Bounds on the margins z_y − z_j (B, K) over the input set; column y is exactly 0 (α-CROWN's options
    as in :func:`bound_spec`)."""
    check_labels(y, x)
    with torch.no_grad(), eval_mode(model):
        k, = _check_inputs(model, x, threat, method).shapes(x)[-1]
    check_label_range(y, k)
    return bound_spec(model, x, threat, margin_spec(y, k), method=method, upper=upper, alpha_steps=alpha_steps,
                      alpha_lr=alpha_lr)


def certified(bounds: Bounds, y: torch.Tensor) -> torch.Tensor:
    """Examples whose every margin to another class is bounded above zero (bool, (B,))."""
    own = F.one_hot(y, bounds.lower.shape[1]).bool()
    return ((bounds.lower > 0) | own).all(1)


TRAINING_BOUNDS = ("ibp", "crown_ibp")


@strictly_fp32
def margin_lower(model: nn.Module, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel,
                 method: str = "ibp") -> torch.Tensor:
    """Lower bounds on the margins (B, K), differentiable in the model's parameters: IBP's (IBP
    training) or CROWN-IBP's (Zhang et al. 2020: CROWN's backward pass from IBP's intermediate
    bounds). The model runs in its current mode: batch norm must be in eval mode."""
    check_choice(method, TRAINING_BOUNDS, "training bound")
    graph = trace(model)
    with torch.no_grad():
        k, = graph.shapes(x)[-1]
    return _propagate(graph, x, threat, method, margin_spec(y, k).to(x.dtype), False).lower


@strictly_fp32
def verify(model: nn.Module, data, threat: ThreatModel, *, methods=("ibp", "crown"), batch_size: int = 100,
           progress: bool = True, alpha_steps: int = ALPHA_STEPS, alpha_lr: float = ALPHA_LR) -> pd.DataFrame:
    """Certify every example of ``data`` (a :class:`~advlab.data.Dataset`) with each bound method.

    One row per example: ``example``, ``label``, ``clean_correct``, and per method ``m``:
    ``m`` (certified: every margin's lower bound > 0, so the prediction is the label everywhere in
    the set) and ``m_seconds`` (wall time per example, batched). Aggregate with
    :func:`advlab.evaluate.accuracy` (column ``m``) for certified accuracy.
    """
    for m in methods:
        check_choice(m, BOUND_METHODS, "bound method")
    check_positive_int(batch_size=batch_size)
    out = {m: [] for m in methods}
    secs = {m: [] for m in methods}
    clean = []
    for i in bar(range(0, len(data), batch_size), desc=f"certify {threat}", enabled=progress, leave=False):
        x, y = to_float(data.x[i:i + batch_size]), data.y[i:i + batch_size]
        clean.append((predict(model, x) == y).cpu())
        for m in methods:
            with Stopwatch(x.device) as sw:
                ok = certified(margin_bounds(model, x, y, threat, method=m, upper=False, alpha_steps=alpha_steps,
                                             alpha_lr=alpha_lr), y)
            out[m].append(ok.cpu())
            secs[m] += [sw.seconds / x.shape[0]] * x.shape[0]
    rows = pd.DataFrame({"example": data.indices.cpu().numpy(), "label": data.y.cpu().numpy(),
                         "clean_correct": torch.cat(clean).numpy()})
    for m in methods:
        rows[m] = torch.cat(out[m]).numpy()
        rows[f"{m}_seconds"] = secs[m]
    return rows.assign(norm=threat.norm, eps=threat.eps)


def relu_count(model: nn.Module, x: torch.Tensor) -> int:
    """The ReLU units of ``model`` on inputs shaped like ``x`` (one example suffices): what CROWN's
    cost grows with when they are unstable."""
    with torch.no_grad(), eval_mode(model):
        graph = trace(model)
        shapes = graph.shapes(x[:1])
    return sum(math.prod(shapes[j]) for j in graph.relu_nodes())
