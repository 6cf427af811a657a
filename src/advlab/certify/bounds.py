"""Sound bounds on a network's outputs over a threat model's input set: IBP and CROWN.

Both bound every output of a linear *specification* ``C · f(x')`` over all x' in the ball ∩ pixel
box around x. The specification the book certifies with is the margin, true class minus each
other class: if every margin's lower bound is positive, no input of the set changes the
prediction, whatever attack is tried.

- **IBP** (interval bound propagation, Gowal et al. 2018) pushes a box through the network layer
  by layer: an affine layer maps the centre exactly and the radius through |W|; a ReLU clips both
  ends. The trailing affine layers are folded into the specification (the margin is bounded
  directly, not as the difference of two logit intervals).
- **α-CROWN** (Xu et al. 2021) is CROWN with the lower line's slope of every unstable ReLU
  optimised per example and specification row (any slope in [0, 1] is sound): tighter, at the cost
  of ``alpha_steps`` more backward passes (:data:`ALPHA_STEPS` by default). **CROWN-IBP** (Zhang et
  al. 2020) is CROWN's backward pass from IBP's intermediate bounds: looser than CROWN, as cheap as
  one backward pass, and what CROWN-IBP training differentiates.
- **CROWN** (Zhang et al. 2018; the backward form of Wong & Kolter's convex outer bound) bounds
  every ReLU between two lines and propagates the specification backwards to the input: the upper
  line is the chord through (l, 0) and (u, u), the lower line has slope 1 where u ≥ −l and 0
  otherwise (CROWN's adaptive choice). The pre-activation bounds l, u of every ReLU layer are
  themselves computed this way, layer by layer, for the neurons IBP leaves unstable, and
  intersected with IBP's (both are sound, so the intersection is).

The input set is the threat model's ball intersected with [0, 1]: for L∞ that is a box; for L2 a
linear form is bounded both over the box hull and with the dual norm over the ball, and the
tighter of the two is kept (the first ReLU layer's bounds too, in IBP). Networks are sequential
compositions of the layers in :data:`SUPPORTED`; anything else is an error that names the layer.
Everything is batched over examples; memory grows with the batch and the network, never with the
dataset, and the neurons of a layer are bounded in chunks of at most :data:`MAX_ELEMENTS` floats.
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

#: The bound-propagation methods of :func:`margin_bounds`: interval (IBP), CROWN, α-CROWN (optimised slopes of
#: the final layer's relaxation) and CROWN-IBP (CROWN over IBP's intermediate bounds).
BOUND_METHODS = ("ibp", "crown", "alpha_crown", "crown_ibp")
ALPHA_STEPS = 20  # α-CROWN's default: projected Adam steps of the slope optimisation
ALPHA_LR = 0.25  # their default learning rate (slopes live in [0, 1])
SUPPORTED = ("Normalize", "Linear", "Conv2d", "ReLU", "Flatten", "BatchNorm1d/2d (eval mode)", "AvgPool2d",
             "Identity")
MAX_ELEMENTS = 2 ** 22  # floats per backward coefficient tensor (16 MiB): measured fastest on 2 cores
_BN = (nn.BatchNorm1d, nn.BatchNorm2d)
_AFFINE = (nn.Linear, nn.Conv2d, *_BN, nn.AvgPool2d, Normalize, nn.Flatten, nn.Identity)


def layers(model: nn.Module) -> list[nn.Module]:
    """The network as a flat list of supported layers, in order; an unsupported one is an error."""
    out = []

    def walk(m, path):
        if isinstance(m, nn.Sequential):
            for name, child in m.named_children():
                walk(child, f"{path}.{name}" if path else name)
        elif "SEQUENTIAL_PARTS" in vars(type(m)):  # a container declaring its forward is its parts in order
            for name in type(m).SEQUENTIAL_PARTS:
                walk(getattr(m, name), f"{path}.{name}" if path else name)
        elif isinstance(m, (nn.ReLU, *_AFFINE)):
            if isinstance(m, _BN) and (m.training or not m.track_running_stats):
                raise InputError(f"{type(m).__name__} at {path} normalises with batch statistics (training mode): "
                                 "bounds hold for the eval-mode network; call model.eval()")
            if isinstance(m, nn.Conv2d) and m.padding_mode != "zeros":
                raise InputError(f"Conv2d at {path} pads with {m.padding_mode!r}; bound propagation supports "
                                 "zero padding")
            out.append(m)
        else:
            raise InputError(f"bound propagation does not support {type(m).__name__} (at {path or 'the model'}); "
                             f"it supports sequential networks of {', '.join(SUPPORTED)}")

    walk(model, "")
    if not out:
        raise InputError("the model has no layers to bound")
    return out


# -- one layer at a time ---------------------------------------------------------------------------
def _bn_affine(m):
    scale = torch.rsqrt(m.running_var + m.eps)
    if m.affine:
        scale = scale * m.weight
    shift = -m.running_mean * scale + (m.bias if m.affine else 0)
    return scale, shift


def _channel(v, ndim):  # per-channel vector -> broadcastable over (N, C, ...)
    return v.view(1, -1, *([1] * (ndim - 2)))


def _abs_linear(m, r):
    """|W| r: the radius of an affine layer's output box for an input box of radius r."""
    if isinstance(m, nn.Linear):
        return F.linear(r, m.weight.abs())
    if isinstance(m, nn.Conv2d):
        return F.conv2d(r, m.weight.abs(), None, m.stride, m.padding, m.dilation, m.groups)
    if isinstance(m, _BN):
        return r * _channel(_bn_affine(m)[0].abs(), r.ndim)
    if isinstance(m, Normalize):
        return r / m.std.abs()
    return m(r)  # average pooling (non-negative weights, no bias), flatten, identity


def _ibp_affine(m, lo, hi):
    mid, rad = (hi + lo) / 2, (hi - lo) / 2
    mid, rad = m(mid), _abs_linear(m, rad)
    return mid - rad, mid + rad


def _back_affine(m, a, in_shape):
    """A ↦ (A·W, A·b) for an affine layer z ↦ Wz + b; A has shape (R, *out) for R specification rows."""
    r = a.shape[0]
    if isinstance(m, nn.Linear):
        return a @ m.weight, (a @ m.bias if m.bias is not None else 0)
    if isinstance(m, (nn.Flatten, nn.Identity)):
        return a.reshape(r, *in_shape), 0
    if isinstance(m, Normalize):
        return a / m.std, -(a * (m.mean / m.std)).flatten(1).sum(1)
    if isinstance(m, _BN):
        scale, shift = _bn_affine(m)
        return a * _channel(scale, a.ndim), (a * _channel(shift, a.ndim)).flatten(1).sum(1)
    if isinstance(m, nn.Conv2d) and isinstance(m.padding, tuple):
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = m.kernel_size, m.stride, m.padding, m.dilation
        oh, ow = a.shape[-2:]
        extra = (in_shape[-2] - ((oh - 1) * sh - 2 * ph + dh * (kh - 1) + 1),
                 in_shape[-1] - ((ow - 1) * sw - 2 * pw + dw * (kw - 1) + 1))
        out = F.conv_transpose2d(a, m.weight, None, m.stride, m.padding, extra, m.groups, m.dilation)
        return out, (a.sum((2, 3)) @ m.bias if m.bias is not None else 0)
    # any other affine layer (average pooling, 'same' padding): the transpose is its input gradient
    with torch.enable_grad():
        z = torch.zeros((r, *in_shape), device=a.device, dtype=a.dtype, requires_grad=True)
        g, = torch.autograd.grad(m(z), z, a, create_graph=a.requires_grad)  # α-CROWN differentiates through it
    bias = m(torch.zeros((1, *in_shape), device=a.device, dtype=a.dtype))
    return g, (a * bias).flatten(1).sum(1)


def _relaxation(lo, hi):
    """CROWN's ReLU lines: lower slope (adaptive), upper slope and upper intercept, shaped like lo."""
    unstable = (lo < 0) & (hi > 0)
    active = (lo >= 0).to(lo.dtype)
    width = (hi - lo).clamp_min(1e-12)
    up_slope = torch.where(unstable, hi / width, active)
    up_bias = torch.where(unstable, -hi * lo / width, torch.zeros_like(lo))
    lo_slope = torch.where(unstable, (hi >= -lo).to(lo.dtype), active)
    return lo_slope, up_slope, up_bias


# -- backward propagation of a specification ------------------------------------------------------
@dataclass
class _Net:
    mods: list
    shapes: list  # input shape (without batch) of every layer, and the output's last
    relax: dict  # ReLU index -> (lower slope, upper slope, upper intercept), each (B, *shape)


def _backward(net: _Net, c, stop: int, upper: bool):
    """Linear bounds of ``c · (network output)`` in terms of the input of layer ``stop``.

    ``c``: (B, S, *output shape), or (1, S, ...) when every example shares it: it then stays one
    copy through the affine layers down to the first ReLU (an intermediate layer's identity
    specification costs one pass, not B). Returns ``(A_lo, b_lo, A_hi, b_hi)``: for every x' of the
    set, A_lo·z + b_lo ≤ c·f ≤ A_hi·z + b_hi with z the input of layer ``stop`` (A_hi, b_hi None
    when ``upper`` is False)."""
    s = c.shape[1]
    a_lo, a_hi = c, (c if upper else None)
    b_lo = torch.zeros(c.shape[:2], device=c.device, dtype=c.dtype)
    b_hi = torch.zeros_like(b_lo) if upper else None

    def affine(m, a, bias_sum, shape):
        n = a.shape[0]
        a, bias = _back_affine(m, a.reshape(n * s, *a.shape[2:]), shape)
        return a.view(n, s, *shape), bias_sum + (bias.view(n, s) if torch.is_tensor(bias) else 0)

    for j in range(len(net.mods) - 1, stop - 1, -1):
        m = net.mods[j]
        if isinstance(m, nn.ReLU):
            # α-CROWN's lower slopes carry the specification dimension already; CROWN's do not
            ls, us, ub = (t if t.ndim == a_lo.ndim else t.unsqueeze(1) for t in net.relax[j])
            pos, neg = a_lo.clamp(min=0), a_lo.clamp(max=0)
            b_lo = b_lo + (neg * ub).flatten(2).sum(2)
            a_lo = pos * ls + neg * us
            if upper:
                pos, neg = a_hi.clamp(min=0), a_hi.clamp(max=0)
                b_hi = b_hi + (pos * ub).flatten(2).sum(2)
                a_hi = pos * us + neg * ls
        else:
            a_lo, b_lo = affine(m, a_lo, b_lo, net.shapes[j])
            if upper:
                a_hi, b_hi = affine(m, a_hi, b_hi, net.shapes[j])
    return a_lo, b_lo, a_hi, b_hi


def _concretize(a, bias, lo, hi, sign: int, ball=None):
    """min (sign = −1 → lower bound) or max (sign = +1) of a·z + bias over the box [lo, hi] and,
    with ``ball = (x, eps)``, over the L2 ball too (the tighter of the two)."""
    lo, hi = lo.unsqueeze(1), hi.unsqueeze(1)
    pos, neg = a.clamp(min=0), a.clamp(max=0)
    if sign < 0:
        out = bias + (pos * lo + neg * hi).flatten(2).sum(2)
    else:
        out = bias + (pos * hi + neg * lo).flatten(2).sum(2)
    if ball is not None:
        x, eps = ball
        centre = bias + (a * x.unsqueeze(1)).flatten(2).sum(2)
        dual = eps * a.flatten(2).norm(dim=2)
        out = torch.maximum(out, centre - dual) if sign < 0 else torch.minimum(out, centre + dual)
    return out


@dataclass
class Bounds:
    """Lower and upper bounds (B, S) of a specification, and the pre-activation bounds ``(l, u)``
    of every ReLU layer in order, each ``(B, *shape)``: the certificate's intermediate evidence."""

    lower: torch.Tensor
    upper: torch.Tensor | None
    layers: list


def _check_inputs(model, x, threat, method):
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
    return layers(model)


def _propagate(mods, x, threat, method, c, upper: bool, alpha: tuple = (ALPHA_STEPS, ALPHA_LR)):
    """Bounds of ``c · f`` over the input set: the IBP box through every layer, tightened at every
    ReLU layer by CROWN (methods "crown" and "alpha_crown"), then the specification propagated back
    (with optimised lower slopes for "alpha_crown"; from IBP's intermediate bounds for "crown_ibp")."""
    lo, hi = threat.bounds(x)
    ball = (x, threat.eps) if threat.norm == "l2" else None
    shapes, z = [], x[:1]
    with torch.no_grad():
        for m in mods:
            shapes.append(tuple(z.shape[1:]))
            z = m(z)
    shapes.append(tuple(z.shape[1:]))
    net = _Net(mods, shapes, {})
    pre = []
    for j, m in enumerate(mods):
        if isinstance(m, nn.ReLU):
            # CROWN tightens every ReLU layer; IBP the first under L2 (the dual norm of the affine prefix)
            if method in ("crown", "alpha_crown") or (ball is not None and not pre):
                lo, hi = _tighten(_Net(mods[:j], shapes[:j + 1], net.relax), x, threat, ball, lo, hi)
            pre.append((lo, hi))
            net.relax[j] = _relaxation(lo, hi)
            lo, hi = lo.clamp(min=0), hi.clamp(min=0)
        else:
            lo, hi = _ibp_affine(m, lo, hi)
    if method == "ibp" and pre:  # the affine layers after the last ReLU fold into the specification
        stop = max(j for j in net.relax) + 1
        box, ball = (pre[-1][0].clamp(min=0), pre[-1][1].clamp(min=0)), None
    else:
        stop, box = 0, threat.bounds(x)
    a_lo, b_lo, a_hi, b_hi = _backward(net, c, stop, upper)
    lower = _concretize(a_lo, b_lo, *box, -1, ball)
    up = _concretize(a_hi, b_hi, *box, +1, ball) if upper else None
    if method == "alpha_crown" and pre:
        unstable = {j: (lo < 0) & (hi > 0) for j, (lo, hi) in zip(net.relax, pre)}
        lower = torch.maximum(lower, _optimised_lower(net, unstable, c, box, ball, *alpha))
    return Bounds(lower, up, pre)


def _optimised_lower(net: _Net, unstable: dict, c, box, ball, steps: int, lr: float):
    """α-CROWN (Xu et al. 2021): the lower line of every unstable ReLU may have any slope in [0, 1]
    and stay sound, so each (example, specification row, neuron) gets its own slope, optimised by
    projected Adam to raise the concretized lower bound. Starts from CROWN's slopes; every iterate is
    a sound bound, and the best per row is returned. The intermediate bounds stay CROWN's.
    ``steps`` Adam steps of learning rate ``lr``: the caller's declared options, part of a result's key."""
    s = c.shape[1]
    alphas = {j: net.relax[j][0].unsqueeze(1).expand(-1, s, *net.relax[j][0].shape[1:]).clone().requires_grad_(True)
              for j in net.relax}
    opt = torch.optim.Adam(alphas.values(), lr=lr)
    best = None
    with torch.enable_grad():
        for it in range(steps + 1):
            relax = {j: (torch.where(unstable[j].unsqueeze(1), alphas[j], net.relax[j][0].unsqueeze(1)),
                         *net.relax[j][1:]) for j in net.relax}
            a_lo, b_lo, _, _ = _backward(_Net(net.mods, net.shapes, relax), c, 0, False)
            lower = _concretize(a_lo, b_lo, *box, -1, ball)
            best = lower.detach() if best is None else torch.maximum(best, lower.detach())
            if it == steps:
                break
            opt.zero_grad()
            (-lower.sum()).backward(inputs=list(alphas.values()))
            opt.step()
            with torch.no_grad():
                for a in alphas.values():
                    a.clamp_(0, 1)
    return best


def _tighten(prefix: _Net, x, threat, ball, lo, hi):
    """CROWN bounds for the neurons of a pre-activation layer that the current box leaves unstable
    in some example of the batch, intersected with the box; chunked to bound the memory."""
    b = x.shape[0]
    shape = lo.shape[1:]
    flat_lo, flat_hi = lo.reshape(b, -1).clone(), hi.reshape(b, -1).clone()
    todo = ((flat_lo < 0) & (flat_hi > 0)).any(0).nonzero().squeeze(1)
    if todo.numel() == 0:
        return lo, hi
    widest = max(math.prod(s) for s in prefix.shapes)
    chunk = max(1, MAX_ELEMENTS // (b * widest))
    box = threat.bounds(x)
    for part in torch.split(todo, chunk):
        c = torch.zeros(1, part.numel(), flat_lo.shape[1], device=x.device, dtype=x.dtype)
        c[0, torch.arange(part.numel(), device=x.device), part] = 1
        a_lo, b_lo, a_hi, b_hi = _backward(prefix, c.view(1, part.numel(), *shape), 0, True)
        flat_lo[:, part] = torch.maximum(flat_lo[:, part], _concretize(a_lo, b_lo, *box, -1, ball))
        flat_hi[:, part] = torch.minimum(flat_hi[:, part], _concretize(a_hi, b_hi, *box, +1, ball))
    return flat_lo.view(b, *shape), flat_hi.view(b, *shape)


def _outputs(mods, x) -> tuple:
    """The output shape per example, from two examples through the layers: images without their
    channel dimension broadcast into a wrong batch there, and fail here with a clear error."""
    z, first = x[:2], None
    try:
        for m in mods:
            z = m(z)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
    if first is not None or z.shape[0] != min(2, x.shape[0]):
        raise InputError(f"the model cannot take x of shape {tuple(x.shape)}{f' ({first})' if first else ''}; "
                         "pass a batch of the shape it was trained on, e.g. (N, C, H, W) for images")
    return tuple(z.shape[1:])


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
        mods = _check_inputs(model, x, threat, method)
        k = _outputs(mods, x)
        if c.ndim == 2:
            c = c.unsqueeze(0).expand(x.shape[0], -1, -1)
        if c.shape[0] != x.shape[0] or tuple(c.shape[2:]) != k:
            raise InputError(f"specification c must have shape (B, S, *{k}) for B = {x.shape[0]} inputs, "
                             f"got {tuple(c.shape)}")
        return _propagate(mods, x, threat, method, c.to(x.dtype), upper, (alpha_steps, alpha_lr))


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
        k, = _outputs(_check_inputs(model, x, threat, method), x)
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
    mods = layers(model)
    with torch.no_grad():
        k, = _outputs(mods, x)
    return _propagate(mods, x, threat, method, margin_spec(y, k).to(x.dtype), False).lower


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
    n, z = 0, x[:1]
    with torch.no_grad():
        for m in layers(model):
            n += z[0].numel() if isinstance(m, nn.ReLU) else 0
            z = m(z)
    return n
