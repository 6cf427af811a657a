"""Figures: the image grids draw kept adversarial inputs, and their perturbation row measures the attack's own norm."""
import matplotlib
import numpy as np

from advlab import ThreatModel, plotting
from advlab.evaluate import evaluate_attack


def _images(fig):
    return [im.get_array().copy() for ax in fig.axes for im in ax.get_images()]


def test_pgd_image_grid_draws_the_kept_inputs(mnist_model, mnist_test):
    """A grid shows the adversarial inputs of the table it illustrates (drawn, never re-attacked)."""
    matplotlib.use("Agg")
    sub = mnist_test.subset(20, seed=2)
    rows = evaluate_attack(mnist_model, sub, attack="pgd", threat=ThreatModel("linf", 0.1), steps=3, seed=5,
                           keep_inputs=3, progress=False)
    fig = plotting.attack_grid(rows, sub, n=3)
    a = _images(fig)
    assert len(a) == 9 and all(np.array_equal(x, y) for x, y in zip(a, _images(plotting.attack_grid(rows, sub, n=3))))
    kept = rows[rows.changed.notna()]
    assert [ax.get_title().split("pred ")[-1] for ax in fig.axes[6:]] == [sub.classes[p] for p in kept.adv_pred]
    assert "pgd, L∞ ε = 0.1" in fig._suptitle.get_text()


def test_minimum_norm_grid_titles_use_the_attacks_norm(mnist_model, mnist_test):
    matplotlib.use("Agg")
    sub = mnist_test.subset(10, seed=2)
    rows = evaluate_attack(mnist_model, sub, attack="deepfool", steps=5, keep_inputs=2, progress=False)
    fig = plotting.attack_grid(rows, sub, n=2)
    titles = [ax.get_title() for ax in fig.axes]
    assert any(t.startswith("L2 = ") for t in titles) and "minimum L2 norm" in fig._suptitle.get_text()
    rows = evaluate_attack(mnist_model, sub, attack="deepfool", norm="linf", steps=5, keep_inputs=2, progress=False)
    fig = plotting.attack_grid(rows, sub, n=2)
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
