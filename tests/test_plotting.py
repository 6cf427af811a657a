"""Figures: the image grids are seeded, and their perturbation row measures the attack's own norm."""
import matplotlib
import numpy as np

from advlab import ThreatModel, plotting


def _images(fig):
    return [im.get_array().copy() for ax in fig.axes for im in ax.get_images()]


def test_pgd_image_grid_is_the_same_for_the_same_seed(mnist_model, mnist_test):
    """Issue 7: the PGD grids drew their random start from an unseeded generator."""
    matplotlib.use("Agg")
    sub = mnist_test.subset(20, seed=2)
    t = ThreatModel("linf", 0.1)
    a = _images(plotting.attack_grid(mnist_model, sub, attack="pgd", threat=t, n=3, seed=5, steps=3))
    b = _images(plotting.attack_grid(mnist_model, sub, attack="pgd", threat=t, n=3, seed=5, steps=3))
    assert len(a) == 9 and all(np.array_equal(x, y) for x, y in zip(a, b))


def test_minimum_norm_grid_titles_use_the_attacks_norm(mnist_model, mnist_test):
    matplotlib.use("Agg")
    sub = mnist_test.subset(10, seed=2)
    fig = plotting.attack_grid(mnist_model, sub, attack="deepfool", n=2, steps=5)
    titles = [ax.get_title() for ax in fig.axes]
    assert any(t.startswith("L2 = ") for t in titles) and "minimum L2 norm" in fig._suptitle.get_text()
    fig = plotting.attack_grid(mnist_model, sub, attack="deepfool", norm="linf", n=2, steps=5)
    assert any(ax.get_title().startswith("L∞ = ") for ax in fig.axes)
