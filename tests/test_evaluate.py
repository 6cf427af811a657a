"""Evaluation: per-example rows, budgets asserted, exact intervals."""
import pytest
import torch
from scipy import stats

from advlab import ThreatModel
from advlab.errors import BudgetError
from advlab.evaluate import accuracy, check_adversarial, clean_table, clopper_pearson, evaluate_attack, sweep


def test_rows_per_example_and_robust_below_clean(mnist_model, mnist_test):
    sub = mnist_test.subset(120, seed=0)
    df = evaluate_attack(mnist_model, sub, attack="pgd", threat=ThreatModel("linf", 0.1), batch_size=50,
                         steps=5, generator=torch.Generator().manual_seed(0), progress=False)
    assert len(df) == 120 and df["example"].tolist() == sub.indices.tolist()
    assert (df["linf"] <= 0.1 + 1e-6).all()
    assert df["adv_correct"].sum() <= df["clean_correct"].sum()
    # 5 steps of one forward and one backward, and the evaluation of the result
    assert df["forwards"].iloc[0] == 6 and df["backwards"].iloc[0] == 5
    clean = clean_table(mnist_model, sub)
    assert clean["correct"].tolist() == df["clean_correct"].tolist()


def test_sweep_at_eps_zero_is_clean_accuracy(mnist_model, mnist_test):
    sub = mnist_test.subset(100, seed=0)
    df = sweep(mnist_model, sub, attacks={"fgsm": {}}, norm="linf", eps_grid=[0.0, 0.2], progress=False)
    acc = accuracy(df, by=["attack", "eps"])
    assert acc.loc[acc.eps == 0.0, "accuracy"].item() == df[df.eps == 0.0]["clean_correct"].mean()
    assert acc.loc[acc.eps == 0.2, "accuracy"].item() <= acc.loc[acc.eps == 0.0, "accuracy"].item()


def test_clopper_pearson_is_scipys_exact_interval():
    lo, hi = clopper_pearson(29, 100)
    assert (lo, hi) == pytest.approx((stats.beta.ppf(0.025, 29, 72), stats.beta.ppf(0.975, 30, 71)))
    assert clopper_pearson(0, 50)[0] == 0.0 and clopper_pearson(50, 50)[1] == 1.0


@pytest.mark.parametrize("bad,match", [
    (lambda x: x + 0.2, "ball"),
    (lambda x: x * 0 - 0.01, "pixel box"),
    (lambda x: x.index_put((torch.tensor([2]), torch.tensor([0]), torch.tensor([3]), torch.tensor([5])),
                           torch.tensor(float("nan"))), "NaN"),
])
def test_out_of_budget_adversarial_inputs_are_refused(bad, match):
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 0.5 + 0.25
    with pytest.raises(BudgetError, match=match):
        check_adversarial(x, bad(x), ThreatModel("linf", 0.1))


def test_evaluate_refuses_a_cheating_attack(mnist_model, mnist_test, monkeypatch):
    from advlab.attacks import base

    monkeypatch.setattr(base, "ATTACKS", dict(base.ATTACKS))  # the registration below is undone

    @base.register("cheat", kind="bounded")
    def cheat(model, x, y, *, threat, targeted=False, target=None, generator=None):
        return (x + 2 * threat.eps).clamp(0, 1)

    with pytest.raises(BudgetError):
        evaluate_attack(mnist_model, mnist_test.subset(10), attack="cheat", threat=ThreatModel("linf", 0.1),
                        progress=False)
