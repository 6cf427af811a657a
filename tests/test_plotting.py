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


def test_multi_panel_figures_fit_the_page():
    """Three 5.2-inch panels side by side were shrunk to half size on a 1280-pixel page."""
    import pandas as pd

    matplotlib.use("Agg")
    acc = pd.DataFrame([{"attack": a, "model": "m", "eps": e, "norm": "linf", "accuracy": 0.5, "ci_low": 0.4,
                         "ci_high": 0.6} for a in ("FGSM", "PGD", "APGD") for e in (0.0, 0.1)])
    fig = plotting.accuracy_panels(acc, panel="attack", hue="model")
    assert fig.get_size_inches()[0] <= plotting.PAGE_WIDTH
    assert sum(ax.get_visible() for ax in fig.axes) == 3  # two rows: 2 + 1, the spare cell hidden
    for n, w in ((1, 5.2), (2, 5.2), (5, 3.6), (3, 12.0)):
        fig, axes = plotting.panel_grid(n, w, 3)
        assert len(axes) == n and (fig.get_size_inches()[0] <= plotting.PAGE_WIDTH or w > plotting.PAGE_WIDTH)
