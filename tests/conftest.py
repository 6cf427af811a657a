"""Test environment: the CLI's own data and cache defaults (../shared/data, .cache), no tqdm.

Set before collection, so nbval's kernels inherit it too.
"""
import os
from pathlib import Path

import pytest
import torch

from advlab.cli import configure_environment

ROOT = Path(__file__).resolve().parents[1]
configure_environment(ROOT)
os.environ["TQDM_DISABLE"] = "1"  # progress bars differ between runs; nbval compares outputs
os.environ.setdefault("ADVLAB_DOWNLOAD", "0")  # tests never reach for the network


@pytest.fixture(scope="session")
def mnist_test():
    from advlab.data import load_dataset

    return load_dataset("mnist", "test")


@pytest.fixture(scope="session")
def mnist_model():
    """A small CNN trained for one epoch on 3,000 MNIST images (cached; ~2 s cold on 2 cores)."""
    from advlab.training import TrainConfig, load_or_train

    model, _ = load_or_train(TrainConfig(dataset="mnist", model="small_cnn", epochs=1, train_subset=3000,
                                         eval_subset=500), progress=False)
    return model


@pytest.fixture
def batch(mnist_test):
    sub = mnist_test.subset(64, seed=1)
    return sub.images(), sub.y


class Linear(torch.nn.Module):
    """Logits W·flatten(x) + b: the model where optimal attacks have closed forms."""

    def __init__(self, w, b):
        super().__init__()
        self.w = torch.nn.Parameter(w)
        self.b = torch.nn.Parameter(b)

    def forward(self, x):
        return x.flatten(1) @ self.w.T + self.b


@pytest.fixture
def linear_model():
    g = torch.Generator().manual_seed(0)
    return Linear(torch.randn(2, 3 * 4 * 4, generator=g), torch.zeros(2))
