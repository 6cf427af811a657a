"""The black-box chapter's compositions: query curves from one run, noise tables, transfer summaries,
the shared model plan, and the figures."""
import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch

from advlab import ThreatModel, plotting
from advlab.chapters import black_box, targets, white_box
from advlab.errors import InputError
from advlab.evaluate import (accuracy, accuracy_by_queries, evaluate_attack, nearest, noise_injection, noise_summary,
                             norm_summary, query_grid, transfer_matrix, transfer_summary)

pytestmark = pytest.mark.book  # the checkout's chapters, notebooks or README: not in the library's run


@pytest.fixture(scope="module")
def small(mnist_test):
    return mnist_test.subset(40, seed=3, stratified=True)


@pytest.mark.parametrize("profile", ["smoke", "quick", "paper"])
def test_both_chapters_train_the_same_models(profile):
    """One profile trains each model once: the chapters' plans agree, so their cache keys do."""
    wb = white_box.CHAPTER.resolve(profile, {})
    bb = black_box.CHAPTER.resolve(profile, {})
    assert targets.mnist_configs(wb) == targets.mnist_configs(bb)
    assert targets.cifar_configs(wb) == targets.cifar_configs(bb)
    surrogates = black_box.surrogate_configs(bb)
    assert {k: surrogates[k] for k in targets.MNIST_MODELS} == targets.mnist_configs(bb)
    extra = [c for k, c in surrogates.items() if k not in targets.MNIST_MODELS]
    assert len(extra) == 1 and extra[0].seed == bb.seed + 1 and extra[0].model == "small_cnn"


def test_relations_refuse_inconsistent_budgets():
    with pytest.raises(InputError, match="nes_samples must be even"):
        black_box.CHAPTER.resolve("quick", {"nes_samples": 51})
    with pytest.raises(InputError, match="nattack_population must not exceed queries"):
        black_box.CHAPTER.resolve("quick", {"queries": 50})
    with pytest.raises(InputError, match="hsja_n_test must not exceed cifar_n_test"):
        black_box.CHAPTER.resolve("quick", {"hsja_n_test": 10_000})


def test_accuracy_by_queries_reads_one_run_at_every_budget(mnist_model, small):
    rows = evaluate_attack(mnist_model, small, attack="square", threat=ThreatModel("linf", 0.3), budget=60,
                           seed=0, progress=False)
    curve = accuracy_by_queries(rows, [0, 1, 10, 60])
    # at budget 0 nothing is fooled: the clean accuracy; at the full budget: the run's accuracy
    assert curve.accuracy.iloc[0] == pytest.approx(rows.clean_correct.mean())
    assert curve.accuracy.iloc[-1] == pytest.approx(accuracy(rows).accuracy.iloc[0])
    assert (np.diff(curve.accuracy) <= 0).all() and (curve.ci_low <= curve.accuracy).all()
    by = accuracy_by_queries(pd.concat([rows.assign(k="a"), rows.assign(k="b")]), [60], by="k")
    assert list(by.k) == ["a", "b"] and (by.accuracy == curve.accuracy.iloc[-1]).all()


def test_query_grid_is_log_spaced_and_ends_at_the_budget():
    g = query_grid(2000)
    assert g[0] == 1 and g[-1] == 2000 and g == sorted(set(g))
    assert query_grid(1) == [1]


def test_noise_injection_mean_and_worst_of_k(mnist_model, small):
    rows = noise_injection(mnist_model, small, sigmas=[0.0, 0.3], draws=4, seed=1, progress=False)
    assert len(rows) == 2 * len(small)
    zero = rows[rows.sigma == 0.0]
    # σ = 0: every draw is x itself
    assert (zero.mean_correct == zero.clean_correct).all() and (zero.l2 == 0).all()
    noisy = rows[rows.sigma == 0.3]
    # the worst of K draws is never better than their mean, and the draws are the attack's queries
    assert (noisy.robust <= (noisy.mean_correct > 0)).all()
    assert ((noisy.queries >= 1) & (noisy.queries <= 4)).all()
    assert (noisy.l2 > 0).all() and (noisy.linf <= 1).all()
    summary = noise_summary(rows)
    assert list(summary.index) == [0.0, 0.3]
    assert (summary.worst_accuracy <= summary.mean_accuracy + 1e-12).all()
    assert (summary.mean_low <= summary.mean_accuracy).all() and (summary.mean_accuracy <= summary.mean_high).all()
    again = noise_injection(mnist_model, small, sigmas=[0.3], draws=4, seed=1, progress=False)
    assert np.array_equal(again.mean_correct.to_numpy(), noisy.mean_correct.to_numpy())


def test_noise_injection_refuses_bad_draws_and_sigma(mnist_model, small):
    with pytest.raises(InputError, match="draws"):
        noise_injection(mnist_model, small, sigmas=[0.1], draws=0, progress=False)
    with pytest.raises(InputError, match="sigma"):
        noise_injection(mnist_model, small, sigmas=[-0.1], draws=2, progress=False)


def test_transfer_summary_splits_the_diagonal(mnist_model, small):
    other = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    m = transfer_matrix({"a": mnist_model, "b": other}, small, attack="fgsm", threat=ThreatModel("linf", 0.2),
                        progress=False).assign(attack="FGSM")
    s = transfer_summary(m)
    diag = m[m.source == m.target].accuracy.mean()
    off = m[m.source != m.target].accuracy
    assert s.loc["FGSM", "white_box"] == pytest.approx(diag)
    assert s.loc["FGSM", "transfer"] == pytest.approx(off.mean())
    assert s.loc["FGSM", "transfer_min"] == off.min()


def test_norm_summary_gives_the_median_interval(mnist_model, small):
    rows = evaluate_attack(mnist_model, small, attack="deepfool", norm="l2", steps=20, progress=False)
    s = norm_summary(rows.assign(model="m"), by=("model", "attack")).iloc[0]
    assert s.median_l2_low <= s.median_l2 <= s.median_l2_high


def test_nearest_sigma():
    assert nearest([0.02, 0.05, 0.2], black_box.REPORT_NOISE_SIGMA) == 0.05


def test_query_and_pixel_figures(mnist_model, small):
    matplotlib.use("Agg")
    rows = evaluate_attack(mnist_model, small, attack="square", threat=ThreatModel("linf", 0.3), budget=30,
                           seed=0, progress=False)
    curve = accuracy_by_queries(rows.assign(attack="Square"), query_grid(30), by="attack")
    fig = plotting.accuracy_vs_queries(curve, yardsticks={"white-box": accuracy(rows).iloc[0]})
    assert fig.axes[0].get_xscale() == "log" and "queries" in fig.axes[0].get_xlabel()
    runs = {f"{k} pixels": evaluate_attack(mnist_model, small, attack="onepixel", pixels=k, output="probs",
                                           population=8, generations=2, seed=0, keep_inputs=3, progress=False)
            for k in (1, 2)}
    fig = plotting.pixel_attack_grid(runs, small, n=3)
    assert len(fig.axes) == 9
    # the circles sit on the changed pixels: at most k per image in row k
    circles = [len(ax.collections[0].get_offsets()) for ax in fig.axes]
    assert circles[:3] == [0, 0, 0] and max(circles[3:6]) <= 1 and max(circles[6:]) <= 2


def _spent(square, nes):
    """query_summary rows for Square and NES: (fooled, median, low, high) each."""
    return pd.DataFrame([{"attack label": a, "fooled": f, "median": m, "median_low": lo, "median_high": hi}
                         for a, (f, m, lo, hi) in (("Square", square), ("NES", nes))]).set_index("attack label")


def _final(*lows):
    return pd.DataFrame({"ci_low": list(lows)}, index=["Square", "NES"][:len(lows)])


@pytest.mark.parametrize("square,nes,says", [
    ((20, 40, 30, 60), (20, 400, 300, 500), "a random search that spends one query per step beats"),
    ((20, 400, 300, 500), (20, 40, 30, 60), "the gradient estimate, at 51 queries per step, is cheaper"),
    ((20, 100, 50, 200), (20, 150, 90, 260), "the intervals overlap, so neither is shown to be cheaper"),
    ((5, 80, 40, 90), (0, float("nan"), float("nan"), float("nan")), "Only Square fooled examples"),
    ((0, float("nan"), float("nan"), float("nan")),) * 2 + ("Neither Square nor NES fooled an example within 100",),
])
def test_query_prose_says_only_what_the_numbers_support(square, nes, says):
    """At small budgets the chapter read "Square needs a median of nan queries, NES nan: a random search
    ... beats a gradient estimate". Every comparison now follows the numbers, and none is made on nan."""
    text = black_box.query_prose(_spent(square, nes), _final(0.1, 0.1), {"ci_high": 0.5}, 51, 100)
    assert says in text and "nan" not in text
    assert "beats" not in text or square[2] < nes[1]


def test_query_prose_on_reaching_the_white_box_figure():
    spent = _spent((20, 40, 30, 60), (20, 400, 300, 500))
    assert "Every score-based attack comes within" in black_box.query_prose(spent, _final(0.1, 0.2), {"ci_high": 0.3},
                                                                             51, 100)
    assert "Square reach the white-box APGD accuracy (overlapping intervals), NES not yet" in \
        black_box.query_prose(spent, _final(0.1, 0.5), {"ci_high": 0.3}, 51, 100)
    assert "no score-based attack reaches" in black_box.query_prose(spent, _final(0.6, 0.5), {"ci_high": 0.3},
                                                                    51, 100)


@pytest.mark.slow
def test_small_budget_chapter_draws_no_conclusion_the_numbers_do_not_support(tmp_path, capsys):
    """Through the CLI as the README runs it: at 20 queries Square and NES fool (almost) nothing, and
    the page must say so rather than compare two medians of nan."""
    import json

    from advlab.cli import main

    out = tmp_path / "bb.ipynb"
    assert main(["run", "black-box", "--profile", "smoke", "-p", "queries", "20", "-p", "nattack_population", "10",
                 "-o", str(out)]) == 0, capsys.readouterr().err
    glued = [o["data"] for c in json.loads(out.read_text())["cells"] for o in c.get("outputs", [])
             if o.get("metadata", {}).get("scrapbook", {}).get("name") == "query_prose"]
    prose = " ".join(str(v) for d in glued for k, v in d.items() if k.endswith("text/plain"))
    assert prose and "nan" not in prose
    assert "beats" not in prose or "Square needs a median of" in prose
