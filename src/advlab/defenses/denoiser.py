"""A denoising front-end: DnCNN (Zhang et al. 2017) in front of a classifier.

The small-CNN report trains a DnCNN to map adversarial examples of the undefended classifier
back to their clean images and places it before the classifier. DnCNN learns the residual: its
layers predict the perturbation, which is subtracted from the input. The pipeline is an ordinary
differentiable model, so the honest evaluation attacks denoiser and classifier together
(an adaptive attack); attacking the classifier alone and then denoising is the report's setting.
"""
from __future__ import annotations

import torch
from torch import nn

from ..checks import check_positive_int


class DnCNN(nn.Module):
    """conv + ReLU, then ``depth`` hidden layers of conv + batch norm + ReLU, then conv; the output
    is ``clamp(x - residual(x), 0, 1)`` (residual learning; the report used 10 hidden layers)."""

    def __init__(self, channels: int, depth: int = 10, width: int = 64):
        super().__init__()
        check_positive_int(channels=channels, depth=depth, width=width)
        layers = [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(depth):
            layers += [nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(width, channels, 3, padding=1))
        self.residual = nn.Sequential(*layers)
        self.depth, self.width = depth, width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.residual(x)).clamp(0, 1)


class Denoised(nn.Module):
    """``classifier(denoiser(x))``: the defended pipeline, differentiable end to end."""

    def __init__(self, denoiser: nn.Module, classifier: nn.Module):
        super().__init__()
        self.denoiser = denoiser
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.denoiser(x))
