"""A network as the graph bound propagation walks: traced by ``torch.fx``, checked once.

:func:`trace` turns any ``nn.Module`` whose ``forward`` torch.fx can follow (no data-dependent
Python control flow) into nodes in topological order, each one of:

- ``input``: the batch;
- ``affine``: an affine map of one tensor, a module or a small wrapper (linear and convolution
  layers, batch norm in eval mode, :class:`~advlab.models.Normalize`, average and adaptive average
  pooling, flatten/reshape/view, identity, dropout in eval mode, and multiplication, division,
  addition or subtraction by a constant, as a reader writes normalisation inline);
- ``add``: the sum (or difference) of two tensors that both depend on the input (residual blocks);
- ``relu`` and ``maxpool``: the nonlinearities, relaxed by linear bounds.

Anything else (a ``torch.round``, a ``tanh``, an ``nn.Dropout`` in training mode, TorchScript)
is an :class:`~advlab.errors.InputError` that names the operation and its module path, raised
before any bound is computed. Shapes come from one pass over two examples (:meth:`Graph.shapes`):
a network that mixes the examples of a batch is refused there.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import fx, nn

from ..errors import InputError
from ..models import Normalize
from ..precision import Autocast

#: What :func:`trace` supports, as the error message names it.
SUPPORTED = ("Linear", "Conv2d (zero padding)", "BatchNorm1d/2d (eval mode)", "Normalize", "AvgPool2d",
             "AdaptiveAvgPool2d", "MaxPool2d", "ReLU", "Flatten/reshape/view", "Identity", "Dropout (eval mode)",
             "addition of two branches", "+ - × ÷ by a constant")
_BN = (nn.BatchNorm1d, nn.BatchNorm2d)
_AFFINE_MODULES = (nn.Linear, nn.Conv2d, *_BN, Normalize, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Flatten,
                   nn.Identity, nn.Dropout)
_LEAVES = (*_AFFINE_MODULES, nn.ReLU, nn.MaxPool2d)
_RELU = (F.relu, torch.relu, torch.relu_)
_RESHAPE_FUNCTIONS = (torch.flatten, torch.reshape)
_RESHAPE_METHODS = ("flatten", "view", "reshape", "contiguous")
_POOL_FUNCTIONS = (F.avg_pool2d, F.adaptive_avg_pool2d)
_ARITHMETIC = {operator.add: "add", torch.add: "add", operator.sub: "sub", torch.sub: "sub", operator.mul: "mul",
               torch.mul: "mul", operator.truediv: "div", torch.div: "div"}


class Scale(nn.Module):
    """x ↦ x·w + b with constant w, b (broadcast over the batch): arithmetic with a constant."""

    def __init__(self, w, b):
        super().__init__()
        self.w, self.b = w, b

    def forward(self, x):
        return x * self.w + self.b


class Reshape(nn.Module):
    """Each example reshaped to ``shape`` (flatten, view, reshape with the batch kept)."""

    def __init__(self, shape: tuple):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x):
        return x.reshape(x.shape[0], *self.shape)


class Call(nn.Module):
    """A traced call of a pooling function with its constant arguments bound."""

    def __init__(self, fn, args, kwargs):
        super().__init__()
        self.fn, self.args, self.kwargs = fn, tuple(args), dict(kwargs)

    def forward(self, x):
        return self.fn(x, *self.args, **self.kwargs)


@dataclass(frozen=True)
class MaxPool:
    """The parameters of a 2-d max pooling (module or functional), normalised to pairs."""

    kernel: tuple
    stride: tuple
    padding: tuple
    dilation: tuple

    def __call__(self, x):
        return F.max_pool2d(x, self.kernel, self.stride, self.padding, self.dilation)


@dataclass(frozen=True)
class Node:
    """One operation: ``op`` (input, affine, add, relu, maxpool), the indices of its inputs, the
    callable that computes it (affine and maxpool), the sign of the second summand (add), and where it
    sits in the model (a module path or the traced node's name)."""

    op: str
    inputs: tuple
    fn: object = None
    sign: float = 1.0
    where: str = ""


@dataclass(frozen=True)
class Graph:
    """The traced network: nodes in topological order, node 0 the input and the last the output."""

    nodes: tuple

    def shapes(self, x: torch.Tensor) -> list:
        """The output shape (without the batch) of every node, from the first two examples of ``x``;
        a network that cannot take ``x`` or mixes examples is an :class:`InputError`."""
        z = x[:2]
        vals = [z]
        try:
            for n in self.nodes[1:]:
                vals.append(evaluate(n, [vals[i] for i in n.inputs]))
        except RuntimeError as e:
            raise InputError(f"the model cannot take x of shape {tuple(x.shape)} "
                             f"({str(e).strip().splitlines()[0]}); pass a batch of the shape it was trained on, "
                             "e.g. (N, C, H, W) for images") from None
        for n, v in zip(self.nodes, vals):
            if v.shape[0] != z.shape[0]:
                raise InputError(f"the model cannot take x of shape {tuple(x.shape)}: {n.where or n.op} turns "
                                 f"{z.shape[0]} examples into {v.shape[0]}; pass a batch of the shape it was trained "
                                 "on, e.g. (N, C, H, W) for images")
        return [tuple(v.shape[1:]) for v in vals]

    def consumers(self) -> dict:
        """Node index -> the indices of the nodes that read it."""
        out = {i: [] for i in range(len(self.nodes))}
        for j, n in enumerate(self.nodes):
            for i in n.inputs:
                out[i].append(j)
        return out

    def relu_nodes(self) -> list:
        """The indices of the ReLU nodes, in order."""
        return [j for j, n in enumerate(self.nodes) if n.op == "relu"]


def evaluate(node: Node, ins: list):
    """The node's output for concrete inputs (the forward pass the bounds enclose)."""
    if node.op == "affine" or node.op == "maxpool":
        return node.fn(ins[0])
    if node.op == "relu":
        return ins[0].clamp(min=0)
    if node.op == "add":
        return ins[0] + node.sign * ins[1]
    raise AssertionError(node.op)


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m, qualname):
        return isinstance(m, _LEAVES) or super().is_leaf_module(m, qualname)


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _unsupported(what, where):
    return InputError(f"bound propagation does not support {what} (at {where or 'the model'}); it supports "
                      f"{', '.join(SUPPORTED)}")


def trace(model: nn.Module) -> Graph:
    """The model's graph of supported operations; an unsupported one is an :class:`InputError`
    naming it and its module path. The model must be in eval mode where batch norm or dropout would
    otherwise use the batch or randomness (the caller puts it there)."""
    if isinstance(model, Autocast):  # a bf16 policy's wrapper: bounds are IEEE fp32 whatever it asked
        model = model.model
    if isinstance(model, torch.jit.ScriptModule):
        raise InputError("bound propagation traces the model's Python forward with torch.fx; a TorchScript module "
                         "cannot be traced: load the network as an nn.Module (its class and state dict)")
    try:
        graph = _Tracer().trace(model)
    except Exception as e:  # noqa: BLE001  (fx raises many types for untraceable Python)
        raise InputError(f"bound propagation cannot trace the model's forward with torch.fx "
                         f"({type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}); "
                         "it needs a forward without data-dependent Python control flow") from None
    index, consts, nodes, sizes = {}, {}, [], {}

    def const(a):  # the value of an argument that does not depend on the input
        if isinstance(a, fx.Node):
            if a in consts:
                return consts[a]
            raise _unsupported(f"an input-dependent argument ({a.name})", a.name)
        if isinstance(a, (tuple, list)):
            return type(a)(const(v) for v in a)
        return a

    def add(node, fx_node):
        index[fx_node] = len(nodes)
        nodes.append(node)

    for n in graph.nodes:
        where = n.target if n.op == "call_module" else n.name
        if n.op == "placeholder":
            if index:
                raise InputError("bound propagation bounds models of one input; this forward takes several")
            add(Node("input", ()), n)
        elif n.op == "get_attr":
            obj = model
            for part in n.target.split("."):
                obj = getattr(obj, part)
            consts[n] = obj.detach() if torch.is_tensor(obj) else obj
        elif n.op == "output":
            out = n.args[0]
            if not (isinstance(out, fx.Node) and out in index):
                raise InputError("bound propagation bounds a model that returns one tensor of logits")
            last = index[out]
            if last != len(nodes) - 1:  # the output is not the last node: put an identity after it
                nodes.append(Node("affine", (last,), nn.Identity(), where="output"))
        elif _size_of(n, index, sizes):
            continue  # x.size(0), x.shape[0]: a Python value only reshapes use
        elif not any(isinstance(a, fx.Node) and a in index for a in (*n.args, *n.kwargs.values())):
            # does not depend on the input (a constant expression of the model's buffers): computed once here
            try:
                if n.op == "call_module":
                    consts[n] = model.get_submodule(n.target)(*const(n.args), **const(n.kwargs))
                elif n.op == "call_function":
                    consts[n] = n.target(*const(n.args), **const(n.kwargs))
                else:
                    a = const(n.args)
                    consts[n] = getattr(a[0], n.target)(*a[1:], **const(n.kwargs))
            except InputError:
                continue  # a value of the input's shape (x.size(0) * 2): only reshapes may use it
        elif n.op == "call_module":
            _module_node(model.get_submodule(n.target), n, index, add, where)
        elif n.op == "call_function":
            _function_node(n, index, sizes, const, add, where)
        elif n.op == "call_method":
            _method_node(n, index, sizes, const, add, where)
    if len(nodes) < 2:
        raise InputError("the model has no layers to bound")
    return Graph(tuple(nodes))


def _size_of(n, index, sizes) -> bool:
    """Record x.size(d), x.shape and x.shape[d] of an input-dependent x (d, or "shape")."""
    a = n.args[0] if n.args else None
    if n.op == "call_method" and n.target == "size" and a in index:
        sizes[n] = n.args[1] if len(n.args) > 1 else "shape"
    elif n.op == "call_function" and n.target is getattr and a in index and n.args[1] == "shape":
        sizes[n] = "shape"
    elif n.op == "call_function" and n.target is operator.getitem and sizes.get(a) == "shape":
        sizes[n] = n.args[1]
    else:
        return False
    return True


def _module_node(m, n, index, add, where):
    if len(n.args) != 1 or n.kwargs or not isinstance(n.args[0], fx.Node) or n.args[0] not in index:
        raise _unsupported(f"{type(m).__name__} called with several arguments", where)
    src = (index[n.args[0]],)
    if isinstance(m, _BN) and (m.training or not m.track_running_stats):
        raise InputError(f"{type(m).__name__} at {where} normalises with batch statistics (training mode): bounds "
                         "hold for the eval-mode network; call model.eval()")
    if isinstance(m, nn.Dropout) and m.training and m.p > 0:
        raise InputError(f"Dropout at {where} is in training mode (random); bounds hold for the eval-mode network")
    if isinstance(m, nn.Conv2d) and m.padding_mode != "zeros":
        raise InputError(f"Conv2d at {where} pads with {m.padding_mode!r}; bound propagation supports zero padding")
    if isinstance(m, nn.ReLU):
        add(Node("relu", src, where=where), n)
    elif isinstance(m, nn.MaxPool2d):
        if m.ceil_mode or m.return_indices:
            raise _unsupported("MaxPool2d with ceil_mode or return_indices", where)
        add(Node("maxpool", src, MaxPool(_pair(m.kernel_size), _pair(m.stride or m.kernel_size), _pair(m.padding),
                                         _pair(m.dilation)), where=where), n)
    elif isinstance(m, _AFFINE_MODULES):
        add(Node("affine", src, m, where=where), n)
    else:
        raise _unsupported(type(m).__name__, where)


def _function_node(n, index, sizes, const, add, where):
    f = n.target
    live = [a for a in n.args if isinstance(a, fx.Node) and a in index]
    if f in _RELU:
        add(Node("relu", (index[n.args[0]],), where=where), n)
    elif f is F.max_pool2d:
        args = dict(zip(("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"),
                        const(n.args[1:])), **const(n.kwargs))
        if args.get("ceil_mode") or args.get("return_indices"):
            raise _unsupported("max_pool2d with ceil_mode or return_indices", where)
        k = _pair(args["kernel_size"])
        add(Node("maxpool", (index[n.args[0]],), MaxPool(k, _pair(args.get("stride") or k),
                                                       _pair(args.get("padding", 0)), _pair(args.get("dilation", 1))),
                 where=where), n)
    elif f in _POOL_FUNCTIONS and len(live) == 1 and n.args[0] is live[0]:
        add(Node("affine", (index[live[0]],), Call(f, const(n.args[1:]), const(n.kwargs)), where=where), n)
    elif f in _RESHAPE_FUNCTIONS and len(live) == 1 and n.args[0] is live[0]:
        add(Node("affine", (index[live[0]],), _reshape_of(n, sizes), where=where), n)
    elif f in _ARITHMETIC and len(n.args) == 2 and not n.kwargs:
        kind, (a, b) = _ARITHMETIC[f], n.args
        if len(live) == 2:
            if kind not in ("add", "sub"):
                raise _unsupported(f"{kind} of two input-dependent tensors", where)
            add(Node("add", (index[a], index[b]), sign=1.0 if kind == "add" else -1.0, where=where), n)
            return
        x_first = isinstance(a, fx.Node) and a in index
        c = const(b if x_first else a)
        if kind == "add":
            w, bias = 1.0, c
        elif kind == "sub":
            w, bias = (1.0, -c) if x_first else (-1.0, c)
        elif kind == "mul":
            w, bias = c, 0.0
        elif x_first:  # x / c
            w, bias = 1.0 / c, 0.0
        else:
            raise _unsupported("division by an input-dependent tensor", where)
        add(Node("affine", (index[a if x_first else b],), Scale(w, bias), where=where), n)
    else:
        raise _unsupported(f"the function {getattr(f, '__name__', f)}", where)


def _method_node(n, index, sizes, const, add, where):
    if n.target in _RESHAPE_METHODS:
        add(Node("affine", (index[n.args[0]],), _reshape_of(n, sizes), where=where), n)
    elif n.target in ("relu", "relu_"):
        add(Node("relu", (index[n.args[0]],), where=where), n)
    elif n.target == "mean" and len(n.args) >= 2:  # a global average over spatial dimensions
        args, kwargs = const(n.args[1:]), const(n.kwargs)
        add(Node("affine", (index[n.args[0]],), Call(torch.mean, args, kwargs), where=where), n)
    else:
        raise _unsupported(f"the tensor method .{n.target}()", where)


def _reshape_of(n, sizes):
    """flatten, view, reshape: per example (the batch dimension kept), else an InputError."""
    if n.target == "flatten" or n.target is torch.flatten:
        start = n.args[1] if len(n.args) > 1 else n.kwargs.get("start_dim", 0)
        end = n.args[2] if len(n.args) > 2 else n.kwargs.get("end_dim", -1)
        if start == 0:
            raise InputError(f"{n.name} flattens the batch dimension into the features")
        return nn.Flatten(start, end)
    if n.target == "contiguous":
        return nn.Identity()
    dims = n.args[1:] if n.args[1:] else tuple(n.kwargs.values())
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = tuple(dims[0])
    if len(dims) < 2 or not (dims[0] == -1 or (isinstance(dims[0], fx.Node) and sizes.get(dims[0]) == 0)):
        raise InputError(f"{n.name} reshapes to {dims}: bound propagation needs the batch dimension kept first "
                         "(x.view(x.size(0), ...) or x.flatten(1))")
    rest = dims[1:]
    if any(isinstance(d, fx.Node) for d in rest):
        raise _unsupported(f"a reshape by the input's sizes other than the batch ({n.name})", n.name)
    return Reshape(rest)
