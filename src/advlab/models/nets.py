"""Architectures. Each takes the input shape (C, H, W) and the number of classes."""
from __future__ import annotations

import math

import torch.nn.functional as F
from torch import nn

from ..errors import InputError


def _w(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))


class MLP(nn.Module):
    SEQUENTIAL_PARTS = ("layers",)  # forward is these parts in order (what bound propagation walks)

    def __init__(self, shape, num_classes, hidden=(512,)):
        super().__init__()
        dims = [math.prod(shape), *hidden]
        layers = [nn.Flatten()]
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(dims[-1], num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)


class SmallCNN(nn.Module):
    SEQUENTIAL_PARTS = ("features", "classifier")  # forward is these parts in order (what bound propagation walks)

    def __init__(self, shape, num_classes, width=1.0):
        super().__init__()
        c, h, w = shape
        c1, c2, f = _w(32, width), _w(64, width), _w(128, width)
        self.features = nn.Sequential(
            nn.Conv2d(c, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(c2 * (h // 4) * (w // 4), f), nn.ReLU(), nn.Linear(f, num_classes)
        )

    def forward(self, x):
        return self.classifier(self.features(x))


class ConvSmall(nn.Sequential):
    """The small ConvNet of Wong & Kolter (2018): two 4×4 stride-2 convolutions (16, 32 channels),
    a 100-unit layer, the classes. Sequential by construction, so every certifier can bound it."""

    def __init__(self, shape, num_classes, width=1.0):
        c, h, w = shape
        c1, c2, f = _w(16, width), _w(32, width), _w(100, width)
        super().__init__(
            nn.Conv2d(c, c1, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(c1, c2, 4, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(c2 * (h // 4) * (w // 4), f), nn.ReLU(), nn.Linear(f, num_classes),
        )


class LeNet5(nn.Module):
    SEQUENTIAL_PARTS = ("features", "classifier")  # forward is these parts in order (what bound propagation walks)

    def __init__(self, shape, num_classes):
        super().__init__()
        c, h, w = shape
        if (h, w) not in ((28, 28), (32, 32)):
            raise InputError(f"LeNet-5 takes 28×28 or 32×32 inputs, got {h}×{w}")
        pad = 2 if h == 28 else 0  # 28×28 digits are padded to LeNet's 32×32 field
        self.features = nn.Sequential(
            nn.Conv2d(c, 6, 5, padding=pad), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


VGG_CFG = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
         512, 512, 512, 512, "M"],
}


class VGG(nn.Module):
    """VGG with batch norm for 32×32 inputs: five pooling stages down to 1×1, one linear layer."""

    SEQUENTIAL_PARTS = ("features", "classifier")  # forward is these parts in order

    def __init__(self, depth, shape, num_classes, width=1.0):
        super().__init__()
        c, h, w = shape
        if (h, w) != (32, 32):
            raise InputError(f"VGG here is the 32×32 (CIFAR) variant, got {h}×{w} inputs")
        layers, prev = [], c
        for v in VGG_CFG[depth]:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                out = _w(v, width)
                layers += [nn.Conv2d(prev, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU()]
                prev = out
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(prev, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


class PreActBlock(nn.Module):
    """Pre-activation residual block (BN-ReLU-conv twice), with optional dropout between (WRN)."""

    def __init__(self, cin, cout, stride, dropout=0.0):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(cout), nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.shortcut = (nn.Conv2d(cin, cout, 1, stride, bias=False)
                         if stride != 1 or cin != cout else None)

    def forward(self, x):
        out = F.relu(self.bn1(x))
        skip = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv2(self.dropout(F.relu(self.bn2(self.conv1(out)))))
        return out + skip


class PreActResNet18(nn.Module):
    def __init__(self, shape, num_classes, width=1.0):
        super().__init__()
        widths = [_w(v, width) for v in (64, 128, 256, 512)]
        self.conv1 = nn.Conv2d(shape[0], widths[0], 3, 1, 1, bias=False)
        blocks, prev = [], widths[0]
        for i, wd in enumerate(widths):
            for j in range(2):
                blocks.append(PreActBlock(prev, wd, 2 if (i > 0 and j == 0) else 1))
                prev = wd
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(prev)
        self.linear = nn.Linear(prev, num_classes)

    def forward(self, x):
        out = self.blocks(self.conv1(x))
        out = F.adaptive_avg_pool2d(F.relu(self.bn(out)), 1).flatten(1)
        return self.linear(out)


class WideResNet(nn.Module):
    def __init__(self, shape, num_classes, depth=28, widen_factor=10, dropout=0.0):
        super().__init__()
        if (depth - 4) % 6 != 0 or depth < 10:
            raise InputError(f"WideResNet depth must be 6n + 4 (10, 16, 22, 28, 34, ...), got {depth}")
        n = (depth - 4) // 6
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = nn.Conv2d(shape[0], widths[0], 3, 1, 1, bias=False)
        blocks, prev = [], widths[0]
        for i, wd in enumerate(widths[1:]):
            for j in range(n):
                blocks.append(PreActBlock(prev, wd, 2 if (i > 0 and j == 0) else 1, dropout))
                prev = wd
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(prev)
        self.linear = nn.Linear(prev, num_classes)

    def forward(self, x):
        out = self.blocks(self.conv1(x))
        out = F.adaptive_avg_pool2d(F.relu(self.bn(out)), 1).flatten(1)
        return self.linear(out)
