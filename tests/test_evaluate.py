"""Evaluation: per-example rows, budgets asserted, exact intervals."""
import pandas as pd
import pytest
import torch
from scipy import stats

from advlab import ThreatModel
from advlab.errors import BudgetError, InputError
from advlab.evaluate import (accuracy, check_adversarial, clean_table, clopper_pearson, evaluate_attack, sweep,
                             worst_case)


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


def test_one_sided_clopper_pearson_is_the_beta_quantile():
    """The bound randomized smoothing needs: P(p >= lower) >= 1 - alpha."""
    lo, hi = clopper_pearson(990, 1000, confidence=0.999, alternative="greater")
    assert hi == 1.0 and lo == pytest.approx(stats.beta.ppf(0.001, 990, 11))
    lo, hi = clopper_pearson(3, 1000, confidence=0.95, alternative="less")
    assert lo == 0.0 and hi == pytest.approx(stats.beta.ppf(0.95, 4, 997))
    with pytest.raises(InputError, match="alternative"):
        clopper_pearson(3, 10, alternative="two")


def test_robust_counts_only_examples_correct_clean_and_attacked(mnist_model, mnist_test):
    sub = mnist_test.subset(200, seed=4)
    df = evaluate_attack(mnist_model, sub, attack="fgsm", threat=ThreatModel("linf", 0.05), progress=False)
    assert (df.robust == (df.clean_correct & df.adv_correct)).all()
    assert accuracy(df).correct.item() == (df.clean_correct & df.adv_correct).sum()


def test_worst_case_is_a_cascade_and_the_per_example_minimum(mnist_model, mnist_test):
    sub = mnist_test.subset(150, seed=6)
    t = ThreatModel("linf", 0.08)
    attacks = {"FGSM": ("fgsm", {}), "PGD-5": ("pgd", {"steps": 5})}
    wc = worst_case(mnist_model, sub, attacks=attacks, threat=t, seed=1, progress=False)
    fg = evaluate_attack(mnist_model, sub, attack="fgsm", threat=t, progress=False)
    assert len(wc) == len(sub) and (wc.robust <= wc.clean_correct).all()
    assert (wc.robust <= fg.robust).all()  # never above any member
    assert (wc.fooled_by[~fg.robust & fg.clean_correct] == "FGSM").all()
    # PGD ran only on what FGSM left: its examples cost FGSM's passes plus PGD's
    survivors = fg.robust.to_numpy()
    assert wc.forwards[survivors].min() > wc.forwards[~survivors & fg.clean_correct.to_numpy()].max()
    assert (wc.forwards[~fg.clean_correct.to_numpy()] == 0).all()  # misclassified: no attack ran
    with pytest.raises(InputError, match="unknown parameter"):
        worst_case(mnist_model, sub, attacks={"bad": ("pgd", {"stepz": 1})}, threat=t, progress=False)


def test_stopwatch_synchronises_cuda(monkeypatch):
    """Defect 5: timings on a GPU measured kernel launches; the stopwatch waits for the device."""
    from advlab import timing

    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append(str(device)))
    with timing.Stopwatch("cuda:0") as sw:
        pass
    assert calls == ["cuda:0", "cuda:0"] and sw.seconds >= 0
    with timing.Stopwatch("cpu"):
        pass
    assert len(calls) == 2


def test_no_timer_outside_the_stopwatch():
    """Every wall-clock measurement in the package goes through timing.Stopwatch."""
    from pathlib import Path

    import advlab

    pkg = Path(advlab.__file__).parent
    offenders = [f.relative_to(pkg).as_posix() for f in pkg.rglob("*.py")
                 if f.name != "timing.py" and "perf_counter" in f.read_text()]
    assert offenders == []


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


def test_rows_say_which_units_eps_is_in(mnist_model, mnist_test):
    """A table in per-channel units and one in pixels at the same ε concatenate into rows that still differ."""
    data = mnist_test.subset(8, seed=0)
    pixel = evaluate_attack(mnist_model, data, attack="pgd", threat=ThreatModel("linf", 0.1), steps=2, seed=0,
                            progress=False)
    scaled = evaluate_attack(mnist_model, data, attack="pgd", threat=ThreatModel("linf", 0.1, scale=(0.3081,)),
                             steps=2, seed=0, progress=False)
    both = pd.concat([pixel, scaled])
    assert list(both.columns[:4]) == ["attack", "norm", "eps", "units"]
    assert set(both.units) == {"pixel", "×(0.3081)"}
    worst = worst_case(mnist_model, data, attacks={"PGD": ("pgd", {"steps": 2})},
                       threat=ThreatModel("linf", 0.1, scale=(0.3081,)), seed=0, progress=False)
    assert (worst.units == "×(0.3081)").all()
