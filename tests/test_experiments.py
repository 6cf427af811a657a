"""Chapter compositions: FGSM budget search, ρ_adv table, transfer matrix, minimal norms."""
import pandas as pd
import pytest
import torch

from advlab import ThreatModel
from advlab.evaluate import evaluate_attack, format_columns, predict
from advlab.experiments import (fgsm_eps_for_rate, minimal_norms, norm_summary, rho_adv_table,
                                transfer_matrix)


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
    from advlab.attacks import fgsm

    fooled = lambda e: int((predict(mnist_model, fgsm(mnist_model, x, y, threat=ThreatModel("linf", e)).x_adv) != y).sum())  # noqa: E731
    assert fooled(eps) >= 54  # 90% of 60
    assert fooled(eps - 1.0 / 2 ** 14) < 54  # the lower end of the final bisection bracket


def test_rho_adv_deepfool_is_smaller_than_fgsm(models, small):
    table = rho_adv_table(models, small)
    assert list(table.index) == ["cnn", "mlp"]
    assert (table["ρ_adv DeepFool"] < table["ρ_adv FGSM"]).all()
    assert (table["DeepFool success (%)"] > 90).all()


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
    rows = minimal_norms(models, small, {"DF-L2": ("deepfool", {"norm": "l2"}), "DF-Linf": ("deepfool", {"norm": "linf"})},
                         progress=False)
    assert len(rows) == 2 * 2 * len(small)
    assert (rows.linf <= rows.l2 + 1e-6).all()
    summary = norm_summary(rows)
    assert set(summary.index.get_level_values("attack")) == {"DF-L2", "DF-Linf"}
    assert (summary["success (%)"] > 90).all()
    # the L∞-minimal perturbation is smaller in L∞ than the L2-minimal one, and vice versa
    for m in models:
        assert summary.loc[(m, "DF-Linf"), "median L∞"] < summary.loc[(m, "DF-L2"), "median L∞"]
        assert summary.loc[(m, "DF-L2"), "median L2"] < summary.loc[(m, "DF-Linf"), "median L2"]


def test_format_columns_renders_floats_as_strings():
    df = pd.DataFrame({"a": [0.12345, 1.0], "t": [1.5, 2.25], "n": [1, 2]})
    out = format_columns(df, {"t": "{:.1f} ms"})
    assert out.a.tolist() == ["0.123", "1"] and out.t.tolist() == ["1.5 ms", "2.2 ms"] and out.n.tolist() == [1, 2]
