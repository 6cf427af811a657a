"""Models of the reports and standard architectures, with normalisation as the first layer.

Every model built here maps images in [0, 1] to logits, so every ε in advlab is in pixel units.
``build_model(name, dataset, **options)`` is the one entry point; ``MODELS`` lists the names.
"""
from __future__ import annotations

import inspect
from contextlib import contextmanager

import torch
from torch import nn

from ..checks import check_choice
from ..data import dataset_spec
from ..errors import InputError
from ..precision import Autocast
from .nets import MLP, VGG, ConvSmall, LeNet5, PreActResNet18, SmallCNN, WideResNet

__all__ = ["MODELS", "Autocast", "Normalize", "build_model", "eval_mode", "model_options", "predict", "to_device"]


class Normalize(nn.Module):
    """(x - mean) / std per channel; x in [0, 1]. Buffers, so they follow ``.to(device)``."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


def _vgg(depth):
    def build(shape, num_classes, width: float = 1.0):
        return VGG(depth, shape, num_classes, width=width)
    build.__name__ = f"vgg{depth}"
    build.__doc__ = (f"VGG-{depth} with batch norm for 32×32 inputs (Simonyan & Zisserman 2015); "
                     "width scales every layer.")
    return build


def _mlp(shape, num_classes, hidden: tuple = (512,)):
    """Fully connected net, default 784-512-10 (the MNIST report's model)."""
    return MLP(shape, num_classes, hidden=tuple(hidden))


def _small_cnn(shape, num_classes, width: float = 1.0):
    """2 conv (32, 64 channels, 3×3) + 2 fully connected (128, classes) layers."""
    return SmallCNN(shape, num_classes, width=width)


def _conv_small(shape, num_classes, width: float = 1.0):
    """Wong & Kolter's small ConvNet: 2 conv (16, 32 channels, 4×4, stride 2) + 2 fully connected (100,
    classes); no pooling, so bound propagation (IBP, CROWN) certifies it."""
    return ConvSmall(shape, num_classes, width=width)


def _lenet5(shape, num_classes):
    """LeNet-5 (LeCun et al. 1998) with ReLU and max pooling."""
    return LeNet5(shape, num_classes)


def _preact_resnet18(shape, num_classes, width: float = 1.0):
    """Pre-activation ResNet-18 (He et al. 2016), CIFAR variant."""
    return PreActResNet18(shape, num_classes, width=width)


def _wide_resnet(shape, num_classes, depth: int = 28, widen_factor: int = 10, dropout: float = 0.0):
    """WideResNet-depth-widen_factor (Zagoruyko & Komodakis 2016)."""
    return WideResNet(shape, num_classes, depth=depth, widen_factor=widen_factor, dropout=dropout)


#: The architectures :func:`build_model` builds, by name; each takes the dataset's shape and classes, then
#: its keyword options (:func:`model_options`).
MODELS = {
    "mlp": _mlp,
    "small_cnn": _small_cnn,
    "conv_small": _conv_small,
    "lenet5": _lenet5,
    "vgg11": _vgg(11),
    "vgg13": _vgg(13),
    "vgg16": _vgg(16),
    "vgg19": _vgg(19),
    "preact_resnet18": _preact_resnet18,
    "wide_resnet": _wide_resnet,
}


def model_options(name: str) -> dict:
    """The keyword options of a model and their defaults."""
    check_choice(name, MODELS, "model")
    sig = inspect.signature(MODELS[name])
    return {k: p.default for k, p in list(sig.parameters.items())[2:]}


def build_model(name: str, dataset: str, **options) -> nn.Sequential:
    """Build ``name`` for ``dataset``'s input shape and classes: ``Normalize -> net``.

    Unknown options are an error that lists the valid ones. The parameters are drawn from the
    global RNG; :func:`advlab.training.load_or_train` wraps this in a forked, seeded RNG.
    """
    spec = dataset_spec(name=dataset)
    valid = model_options(name)
    unknown = set(options) - set(valid)
    if unknown:
        raise InputError(f"unknown option(s) {sorted(unknown)} for model {name!r}; valid: {valid}")
    net = MODELS[name](spec.shape, len(spec.classes), **options)
    return nn.Sequential(Normalize(spec.mean, spec.std), net)


def to_device(model: nn.Module, device, channels_last: bool | None = None) -> nn.Module:
    """``model`` on ``device``; convolutional models in channels-last memory format on CUDA.

    Channels-last (NHWC) is what cuDNN's tensor-core convolutions want. ``channels_last=None``
    means "on CUDA only": on CPU the layout stays contiguous, so CPU results do not change.
    """
    device = torch.device(device)
    model = model.to(device)
    if channels_last is None:
        channels_last = device.type == "cuda"
    if channels_last and any(isinstance(m, nn.Conv2d) for m in model.modules()):
        model = model.to(memory_format=torch.channels_last)
    return model


@contextmanager
def eval_mode(model: nn.Module):
    """Run the model in eval mode and restore every submodule's own mode afterwards.

    Attacks never update batch-norm statistics or draw dropout masks: the attacked function is
    the deployed (eval-mode) model, whatever mode the caller had it in. A plain callable that is
    no ``nn.Module`` has no mode and passes through.
    """
    if not isinstance(model, nn.Module):
        yield model
        return
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training


@torch.no_grad()
def predict(model, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Predicted classes (N,) of the eval-mode model; the caller's mode is restored."""
    with eval_mode(model):
        return torch.cat([model(x[i:i + batch_size]).argmax(1) for i in range(0, x.shape[0], batch_size)])
