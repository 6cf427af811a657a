"""The white-box chapter's evaluations (FGSM budget search, ρ_adv table, transfer matrix, minimal
norms and their summary)."""
import pandas as pd
import pytest
import torch

from advlab import ThreatModel
from advlab.attacks import fgsm
from advlab.chapters.white_box import curve_grid
from advlab.evaluate import (evaluate_attack, fgsm_eps_for_rate, format_columns, minimal_norms, norm_summary,
                             rho_adv_rows, rho_adv_summary, transfer_matrix)
from advlab.models import predict

pytestmark = pytest.mark.book  # the checkout's chapters, notebooks or README: not in the library's run


@pytest.fixture(scope="module")
def models(mnist_model):
    from advlab.training import TrainConfig, load_or_train

    mlp, _ = load_or_train(TrainConfig(dataset="mnist", model="mlp", epochs=1, train_subset=3000, eval_subset=500),
                           progress=False)
    return {"cnn": mnist_model, "mlp": mlp}


@pytest.fixture(scope="module")
def small(mnist_test):
    return mnist_test.subset(60, seed=9, stratified=True)


def test_fgsm_budget_search_finds_the_smallest_sufficient_eps(mnist_model, small):
    x, y = small.images(), small.y
    eps = fgsm_eps_for_rate(mnist_model, x, y, rate=0.9)
    fooled = lambda e: int((predict(mnist_model, fgsm(mnist_model, x, y, threat=ThreatModel("linf", e)).x_adv) != y)
                           .sum())
    assert fooled(eps) >= 54  # 90% of 60
    assert fooled(eps - 1.0 / 2 ** 14) < 54  # the lower end of the final bisection bracket


def rho_adv_table(models, small):
    return rho_adv_summary(rho_adv_rows(models, small))


def test_rho_adv_deepfool_is_smaller_than_fgsm(models, small):
    table = rho_adv_table(models, small)
    assert list(table.index) == ["cnn", "mlp"]
    assert (table["rho_deepfool"] < table["rho_fgsm"]).all()
    assert (table["deepfool_success"] > 0.9).all() and (table["fgsm_fooled"] >= 0.9).all()


def test_rho_adv_averages_over_correctly_classified_examples_only(models, small):
    """Defect 9: one rule for perturbation sizes. A misclassified input (r = 0) must not count."""
    table = rho_adv_table(models, small)
    for name, model in models.items():
        correct = predict(model, small.images()) == small.y
        assert table.loc[name, "n"] == int(correct.sum())
        assert table.loc[name, "test_error"] == pytest.approx(1 - correct.float().mean().item())
    # with the old rule (mean over every fooled example, misclassified ones at r = 0) ρ would be smaller
    assert (table["rho_deepfool"] > 0).all()


def test_curve_grid_contains_the_headline_budget():
    assert curve_grid([0.0, 0.1, 0.3], 0.25) == [0.0, 0.1, 0.25, 0.3]
    assert curve_grid([0.0, 0.1], 0.1) == [0.0, 0.1]


def test_transfer_matrix_diagonal_is_the_white_box_accuracy(models, small):
    t = ThreatModel("linf", 0.1)
    m = transfer_matrix(models, small, attack="pgd", threat=t, steps=5, seed=3, progress=False)
    assert len(m) == 4 and set(m.source) == set(m.target) == {"cnn", "mlp"}
    white = evaluate_attack(models["cnn"], small, attack="pgd", threat=t, steps=5, progress=False,
                            generator=torch.Generator().manual_seed(3))
    diag = m[(m.source == "cnn") & (m.target == "cnn")].iloc[0]
    assert diag.correct == white.adv_correct.sum()
    assert (m.ci_low <= m.accuracy).all() and (m.accuracy <= m.ci_high).all()


def test_minimal_norms_rows_and_summary(models, small):
    rows = minimal_norms(models, small, {"DF-L2": ("deepfool", {"norm": "l2"}),
                                         "DF-Linf": ("deepfool", {"norm": "linf"})}, progress=False)
    assert len(rows) == 2 * 2 * len(small)
    assert (rows.linf <= rows.l2 + 1e-6).all()
    summary = norm_summary(rows)
    assert set(summary.index.get_level_values("attack")) == {"DF-L2", "DF-Linf"}
    assert (summary["success"] > 0.9).all()
    # the L∞-minimal perturbation is smaller in L∞ than the L2-minimal one, and vice versa
    for m in models:
        assert summary.loc[(m, "DF-Linf"), "median_linf"] < summary.loc[(m, "DF-L2"), "median_linf"]
        assert summary.loc[(m, "DF-L2"), "median_l2"] < summary.loc[(m, "DF-Linf"), "median_l2"]


def test_minimal_norms_takes_attacks_that_did_not_track_success(models, small):
    """Defect 3: FGSM and single-restart PGD used to return success=None and crashed minimal_norms."""
    t = ThreatModel("linf", 0.2)
    rows = minimal_norms(models, small, {"FGSM": ("fgsm", {"threat": t}), "PGD": ("pgd", {"threat": t, "steps": 3})},
                         progress=False)
    assert rows.success.dtype == bool and rows.success.any()
    assert (rows.linf <= 0.2 + 1e-5).all()


def test_format_columns_renders_floats_as_strings():
    df = pd.DataFrame({"a": [0.12345, 1.0], "t": [1.5, 2.25], "n": [1, 2]})
    out = format_columns(df, {"t": "{:.1f} ms"})
    assert out.a.tolist() == ["0.123", "1"] and out.t.tolist() == ["1.5 ms", "2.2 ms"] and out.n.tolist() == [1, 2]
