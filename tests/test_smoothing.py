"""Randomized smoothing: exact certificates of a constant classifier, the Clopper-Pearson bound
against scipy's, abstention, reproducibility, batching across examples, bad input."""
import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from advlab.certify import ABSTAIN, certified_accuracy, certify, lower_confidence_bound, sample_counts, smoothed_predict
from advlab.errors import InputError
from advlab.evaluate import clopper_pearson


class Constant(nn.Module):
    def __init__(self, k, classes=10):
        super().__init__()
        self.k, self.classes = k, classes

    def forward(self, x):
        out = torch.zeros(x.shape[0], self.classes)
        out[:, self.k] = 1
        return out


class CoinFlip(nn.Module):
    """Class 0 or 1 by the sign of the noise on the first pixel of a grey image: p_A = 1/2."""

    def forward(self, x):
        out = torch.zeros(x.shape[0], 10)
        out[torch.arange(x.shape[0]), (x[:, 0, 0, 0] > 0.5).long()] = 1
        return out


X = torch.full((5, 1, 4, 4), 0.5)


def test_constant_classifier_gets_the_exact_known_certificate():
    pred, radius = certify(Constant(3), X, sigma=0.25, n0=10, n=1000, alpha=0.001,
                           generator=torch.Generator().manual_seed(0))
    # every sample votes for class 3: p_A's lower bound is alpha^(1/n), the radius sigma * Phi^-1 of it
    expected = 0.25 * stats.norm.ppf(0.001 ** (1 / 1000))
    assert (pred == 3).all() and torch.allclose(radius, torch.full((5,), expected, dtype=torch.float32))


@pytest.mark.parametrize("k,n", [(0, 50), (1, 50), (37, 50), (50, 50), (990, 1000)])
def test_lower_bound_matches_scipy_clopper_pearson(k, n):
    low, _ = clopper_pearson(k, n, confidence=0.999, alternative="greater")
    assert lower_confidence_bound(k, n, 0.001) == pytest.approx(low, abs=1e-9)


def test_abstains_where_it_must():
    gen = torch.Generator().manual_seed(1)
    pred, radius = certify(CoinFlip(), X, sigma=0.5, n0=20, n=400, alpha=0.001, generator=gen)
    assert (pred == ABSTAIN).all() and (radius == 0).all()
    assert (smoothed_predict(CoinFlip(), X, sigma=0.5, n=400, alpha=0.001, generator=gen) == ABSTAIN).all()
    assert (smoothed_predict(Constant(7), X, sigma=0.5, n=50, generator=gen) == 7).all()


def test_same_seed_same_certificates_and_counts_stream_across_examples():
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 10))
    x = torch.rand(7, 1, 4, 4)
    a = certify(model, x, sigma=0.5, n0=10, n=300, batch_size=64, generator=torch.Generator().manual_seed(2))
    b = certify(model, x, sigma=0.5, n0=10, n=300, batch_size=64, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    sizes = []
    model.register_forward_hook(lambda m, i, o: sizes.append(i[0].shape[0]))
    counts = sample_counts(model, x, 30, 0.5, batch_size=64)
    assert counts.sum(1).tolist() == [30] * 7 and sizes == [64, 64, 64, 18]  # full batches, no padding


def test_certified_accuracy_counts_correct_and_large_enough_radii():
    pred, radius, y = torch.tensor([1, 2, ABSTAIN]), torch.tensor([0.5, 0.1, 0.0]), torch.tensor([1, 3, 0])
    assert certified_accuracy(pred, radius, y, [0.0, 0.25, 1.0]) == [pytest.approx(1 / 3), pytest.approx(1 / 3), 0.0]
    assert certified_accuracy(pred, radius, y, [math.inf]) == [0.0]


@pytest.mark.parametrize("kwargs,match", [({"sigma": 0.0}, "sigma"), ({"sigma": -1.0}, "sigma"),
                                          ({"n0": 100, "n": 100}, "n0"), ({"alpha": 1.0}, "alpha"),
                                          ({"alpha": 0.0}, "alpha")])
def test_bad_smoothing_arguments(kwargs, match):
    args = {"sigma": 0.25, "n0": 10, "n": 100, **kwargs}
    with pytest.raises(InputError, match=match):
        certify(Constant(0), X, **args)


def test_lower_bound_is_vectorised():
    assert np.allclose(lower_confidence_bound([0, 10], 10, 0.05), [0.0, 0.05 ** 0.1])


def test_smoothadv_stays_in_the_l2_ball_and_leaves_the_model_alone(mnist_model, batch):
    from advlab.certify import smoothadv
    from advlab.threat import ThreatModel

    x, y = batch[0][:16], batch[1][:16]
    mnist_model.train()
    for p in mnist_model.parameters():  # the shared fixture may carry another test's gradients
        p.grad = None
    before = {k: v.clone() for k, v in mnist_model.state_dict().items()}
    x_adv = smoothadv(mnist_model, x, y, sigma=0.25, eps=1.0, steps=3, draws=2)
    assert ThreatModel("l2", 1.0).contains(x, x_adv).all()
    assert (x_adv != x).any()
    assert mnist_model.training and all(torch.equal(v, mnist_model.state_dict()[k]) for k, v in before.items())
    assert all(p.grad is None for p in mnist_model.parameters())
    mnist_model.eval()
    assert torch.equal(smoothadv(mnist_model, x, y, sigma=0.25, eps=0.0), x)
    # the attack lowers the smoothed classifier's accuracy (same noise stream for both predictions)
    acc = [float((smoothed_predict(mnist_model, z, sigma=0.25, n=64, alpha=0.01,
                                   generator=torch.Generator().manual_seed(0)) == y).float().mean())
           for z in (x, smoothadv(mnist_model, x, y, sigma=0.25, eps=2.0, steps=5, draws=4))]
    assert acc[1] < acc[0]
    with pytest.raises(InputError, match="sigma"):
        smoothadv(mnist_model, x, y, sigma=0.0, eps=1.0)
