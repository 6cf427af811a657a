"""A model the reader brings: a weights file with a way to build the network, or a TorchScript file,
loaded safely and checked on the dataset's input shape before any long work starts.

Architectures (:data:`ARCHITECTURES`): a registered advlab name (``small_cnn``, ``vgg19``, ...),
``package.module:function`` returning an ``nn.Module`` (imported only when named), or
``torchscript`` (the file is the whole model). Weights load with ``weights_only=True``: a plain
state dict, an advlab checkpoint, or a dict holding one under ``state_dict`` or ``model``.
"""
from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import json
import warnings
from pathlib import Path

import torch
from torch import nn

from ..cache import file_sha256
from ..data import dataset_spec
from ..errors import CheckpointError, InputError
from . import MODELS, Normalize, build_model, eval_mode

TORCHSCRIPT = "torchscript"
ARCHITECTURES = (f"a registered advlab architecture ({', '.join(MODELS)}), 'package.module:function' returning "
                 f"an nn.Module, or {TORCHSCRIPT!r} for a TorchScript file")
PROBE_CALLS = 8  # calls on the same inputs that must all agree for a model to count as deterministic


def _function(architecture: str):
    """The callable named ``package.module:function`` (its module imported now, because the user named it)."""
    module_name, _, attr = architecture.partition(":")
    if not module_name or not attr:
        raise InputError(f"architecture {architecture!r}: write it 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise InputError(f"architecture {architecture!r}: cannot import {module_name!r} ({e}); is it on "
                         "PYTHONPATH?") from None
    fn = module
    for part in attr.split("."):
        fn = getattr(fn, part, None)
    if not callable(fn):
        raise InputError(f"architecture {architecture!r}: {module_name} has no callable {attr!r}")
    return fn


def _defines(path: str, name: str) -> bool:
    """Whether the Python source ``path`` defines ``name`` at its top level (a def, a class or an assignment)."""
    try:
        tree = ast.parse(Path(path).read_text())
    except (OSError, SyntaxError, ValueError):
        return False
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            return True
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return True
    return False


def architecture_digest(architecture: str) -> str | None:
    """sha256 of the source file that defines a ``module:function`` architecture (None for the others):
    part of the cache key, so an edited network definition recomputes. Found without running the
    reader's module where it defines the function itself (``importlib.util.find_spec``); a re-exported
    one is followed by importing it."""
    if ":" not in architecture:
        return None
    module_name, _, attr = architecture.partition(":")
    try:
        spec = importlib.util.find_spec(module_name) if module_name else None
    except (ImportError, ValueError):
        spec = None
    origin = getattr(spec, "origin", None)
    if origin and origin.endswith(".py") and _defines(origin, attr.split(".")[0]):
        return file_sha256(origin)
    try:
        source = inspect.getsourcefile(_function(architecture))
    except TypeError:  # a builtin or C extension: no source to hash
        return None
    return file_sha256(source) if source else None


def check_architecture(architecture: str) -> None:
    if not isinstance(architecture, str):
        raise InputError(f"architecture must be a string: {ARCHITECTURES}")
    if architecture != TORCHSCRIPT and ":" not in architecture and architecture not in MODELS:
        raise InputError(f"unknown architecture {architecture!r}; valid: {ARCHITECTURES}")


def _state_dict(path: Path) -> dict:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 (bad zip, unpickling refused, a TorchScript archive, ...)
        hint = (" It holds more than tensors (a pickled model object?): save model.state_dict() instead, or "
                f"export TorchScript and use architecture {TORCHSCRIPT!r}") if "weights_only" in str(e) else ""
        raise CheckpointError(f"cannot load weights from {path} with weights_only=True ({type(e).__name__}: "
                              f"{str(e).splitlines()[0][:200]}).{hint}") from None
    for key in ("state_dict", "model"):  # an advlab (or Lightning-style) checkpoint around the weights
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} holds no state dict (a mapping of names to tensors)")
    if all(k.startswith("module.") for k in obj):  # saved from DistributedDataParallel
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def _load_into(net: nn.Module, state: dict, path: Path, architecture: str) -> nn.Module:
    own = net.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        def few(keys):
            return ", ".join(keys[:5]) + (f" (+{len(keys) - 5} more)" if len(keys) > 5 else "")
        parts = [f"missing {few(missing)}" if missing else "", f"unexpected {few(unexpected)}" if unexpected else "",
                 "shape differs: " + few([f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in wrong])
                 if wrong else ""]
        raise InputError(f"the weights in {path} do not match architecture {architecture!r}: "
                         + "; ".join(p for p in parts if p))
    net.load_state_dict(state)
    return net


def _has_normalize(state: dict) -> bool:
    """An advlab model's state dict: its first layer is :class:`~advlab.models.Normalize`, whose only tensors
    are the buffers ``0.mean`` and ``0.std``. The bare weights of a registered ``nn.Sequential`` network
    (``conv_small``: ``0.weight``, ``0.bias``, ...) start with ``0.`` too, and are not one."""
    first = {k for k in state if k.startswith("0.")}
    return first == {"0.mean", "0.std"}


def load_model_file(path, dataset: str, architecture: str = TORCHSCRIPT, options: dict | None = None,
                    normalization=None, device=None) -> nn.Module:
    """The model in ``path`` for ``dataset``, in eval mode on ``device``, mapping pixels in [0, 1] to
    logits (or log-probabilities).

    ``normalization`` ``(mean, std)`` per channel puts :class:`~advlab.models.Normalize` in front,
    for a model trained on normalised inputs. For a registered architecture, a state dict with
    advlab's own ``Normalize`` layer (an advlab checkpoint) loads into :func:`build_model`, which
    normalises already; a bare network's weights load into the network alone. Every failure to
    build or load is an :class:`InputError` or :class:`CheckpointError` naming the cause.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"model file {path} does not exist (or is not a file)")
    check_architecture(architecture)
    spec = dataset_spec(dataset)
    options = dict(options or {})
    if architecture == TORCHSCRIPT:
        if options:
            raise InputError("a TorchScript model takes no options: it is built already")
        try:
            with warnings.catch_warnings():  # deprecated for new code in torch 2.11, and still how models ship
                warnings.simplefilter("ignore", DeprecationWarning)
                net = torch.jit.load(str(path), map_location="cpu")
        except Exception as e:  # noqa: BLE001
            raise InputError(f"{path} is not a TorchScript file ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
                             "for a file of weights, name its architecture") from None
    else:
        state = _state_dict(path)
        if architecture in MODELS:
            full = build_model(architecture, dataset, **options)
            if _has_normalize(state):  # advlab's Normalize -> net: pixels in already
                if normalization is not None:
                    raise InputError(f"{path} is an advlab model with its own normalisation layer; "
                                     "normalising its inputs again would be wrong (set normalization to 'none')")
                net = full
            else:
                net = full[1]
        else:
            try:
                net = _function(architecture)(**options)
            except TypeError as e:
                raise InputError(f"architecture {architecture!r} called with options {options}: {e}") from None
            if not isinstance(net, nn.Module):
                raise InputError(f"architecture {architecture!r} returned {type(net).__name__}, not an nn.Module")
        net = _load_into(net, state, path, architecture)
    if normalization is not None:
        mean, std = (list(map(float, v)) for v in normalization)
        channels = spec.shape[0]
        if len(mean) != channels or len(std) != channels or min(std) <= 0:
            raise InputError(f"normalization needs {channels} means and {channels} positive stds for "
                             f"{spec.title}, got mean {mean}, std {std}")
        net = nn.Sequential(Normalize(mean, std), net)
    net = net.to(torch.device(device or "cpu")).eval()
    check_classifier(net, dataset)
    return net


def check_classifier(model: nn.Module, dataset: str) -> None:
    """Two probe inputs of ``dataset``'s shape through ``model``: it must run and return finite
    (N, classes) scores, or an :class:`InputError` says what it did instead."""
    spec = dataset_spec(dataset)
    device = next((t.device for t in [*model.parameters(), *model.buffers()]), torch.device("cpu"))
    gen = torch.Generator().manual_seed(0)
    x = torch.rand((2, *spec.shape), generator=gen).to(device)
    where = f"{spec.title} inputs of shape {tuple(x.shape)} (pixels in [0, 1])"
    try:
        with torch.no_grad(), eval_mode(model):
            out = model(x)
    except Exception as e:  # noqa: BLE001 (whatever the user's network raises)
        raise InputError(f"the model fails on {where}: {type(e).__name__}: {str(e).splitlines()[0][:300]}") from None
    k = len(spec.classes)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, k) or not out.is_floating_point():
        what = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise InputError(f"the model must return (N, {k}) class scores on {where}; it returned {what}")
    if not torch.isfinite(out).all():
        raise InputError(f"the model returns non-finite scores on {where}")


def is_randomized(model, x: torch.Tensor) -> bool:
    """Whether ``model`` answers the same inputs differently from one call to the next in eval mode
    (found by behaviour: wherever the model draws its randomness)."""
    with torch.no_grad(), eval_mode(model):
        first = model(x)
        # several calls: a random choice among few values (a shift of a pixel or two) may repeat once
        return any(not torch.allclose(first, model(x), rtol=1e-4, atol=1e-5) for _ in range(PROBE_CALLS - 1))


def json_options(options) -> dict:
    """Model options as a JSON object (they are part of a cache key)."""
    if not isinstance(options, dict):
        raise InputError(f"model options must be a mapping of names to values, got {options!r}")
    try:
        json.dumps(options, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise InputError(f"model options must be JSON values: {e}") from None
    return dict(options)


__all__ = ["ARCHITECTURES", "TORCHSCRIPT", "architecture_digest", "check_architecture", "check_classifier",
           "file_sha256", "is_randomized", "json_options", "load_model_file"]
