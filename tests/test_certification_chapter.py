"""The certification chapter's plan (shared models, one config per training), its compositions
(sandwich summary, soundness counts, the toy network's outer bounds) and its relations."""
import matplotlib
import numpy as np
import pandas as pd
import pytest
from scipy.spatial import Delaunay

from advlab import plotting
from advlab.chapters import certification, get_chapter
from advlab.errors import InputError

pytestmark = pytest.mark.book  # the checkout's chapters, notebooks or README: not in the library's run

matplotlib.use("Agg")


@pytest.mark.parametrize("profile", ["smoke", "quick", "paper"])
def test_plan_trains_each_model_once_and_validates(profile):
    cfg = get_chapter("certification").resolve(profile, {})
    plan = certification.bound_configs(cfg)
    assert len(plan) == 2 * 4 * len(cfg.eps_list)
    # the standard model of each architecture is one checkpoint whatever the ε
    assert len({plan[k].key for k in plan if k[1] == "standard"}) == 2
    assert len({c.key for c in plan.values()}) == 2 + 2 * 3 * len(cfg.eps_list)
    for (arch, training, eps), c in plan.items():
        if training in ("IBP", "CROWN-IBP"):
            assert c.params["eps"] == cfg.ibp_train_eps[cfg.eps_list.index(eps)]
        if training == "CROWN-IBP":  # Zhang et al.'s MNIST setting, on IBP's schedule
            assert (c.params["beta_start"], c.params["beta_end"]) == (1.0, 0.0)
            assert plan[(arch, "IBP", eps)].params.items() <= c.params.items()
        if training == "PGD":
            assert c.threat.eps == eps
    smooth = certification.smoothing_configs(cfg)
    assert {s for ds, s in smooth if ds == "cifar10"} == set(cfg.cifar_sigmas)
    assert all(c.params["sigma"] == s for (_, s), c in smooth.items())


def test_relations_are_checked():
    ch = get_chapter("certification")
    with pytest.raises(InputError, match="ibp_train_eps"):
        ch.resolve("quick", {"eps_list": [0.1]})
    with pytest.raises(InputError, match="n_milp"):
        ch.resolve("quick", {"n_milp": 1000})
    with pytest.raises(InputError, match="n0"):
        ch.resolve("quick", {"n0": 500})


def _rows():
    return pd.DataFrame({
        "architecture": ["small MLP"] * 4, "training": ["standard"] * 4, "eps": [0.1] * 4,
        "ibp": [True, False, False, False], "crown": [True, True, False, False],
        "alpha_crown": [True, True, False, False], "certified": [True, True, False, False],
        "attacked": [True, True, True, False], "exact": ["robust", "robust", "undecided", "not robust"],
        "binaries": [np.nan, np.nan, 40, np.nan], "binaries_crown": [np.nan, np.nan, 42, np.nan],
        "lps": [np.nan, np.nan, 30, np.nan], "milp_seconds": [np.nan, np.nan, 3.1, np.nan]})


def test_sandwich_summary_orders_the_bounds_and_soundness_counts():
    s = certification.sandwich_summary(_rows()).set_index("bound")
    assert s.loc["IBP", "accuracy"] == 0.25 and s.loc["CROWN", "accuracy"] == 0.5
    assert s.loc["exact (MILP)", "accuracy"] == 0.5 and s.loc["exact (MILP)", "undecided"] == 1
    assert s.loc["attacked (ensemble)", "accuracy"] == 0.75
    assert s.loc["α-CROWN", "accuracy"] == 0.5 and s.loc["any certificate", "accuracy"] == 0.5
    milp = certification.milp_table(_rows())
    assert milp.loc[("standard", 0.1)].to_dict() == {
        "given to the MILP": 1, "decided": 0, "robust": 0, "not robust": 0, "binaries (CROWN bounds)": 42.0,
        "binaries (after LP)": 40.0, "LPs": 30.0, "seconds": 3.1}
    assert set(certification.soundness(_rows()).values()) == {0}
    bad = _rows().assign(attacked=[False, True, True, False])
    assert certification.soundness(bad)["certified but fooled by an attack"] == 1
    fig = plotting.sandwich(certification.sandwich_summary(_rows()))
    assert fig.axes[0].get_ylabel().endswith("(%)")


def test_toy_outer_bounds_contain_the_true_image_and_crown_is_the_smaller():
    net = certification.toy_network(12, seed=0)
    sets = certification.toy_sets(net, 0.15, 61)
    for name in ("ibp", "crown"):
        hull = Delaunay(sets[name])
        assert (hull.find_simplex(sets["points"], tol=1e-6) >= 0).all(), name

    def area(p):
        x, y = p[:, 0], p[:, 1]
        return 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))

    assert area(sets["crown"]) < area(sets["ibp"])
    fig = plotting.reachable_sets(sets)
    assert "logit" in fig.axes[0].get_xlabel()


def test_certified_curve_counts_correct_and_large_enough_radii():
    rows = pd.DataFrame({"correct": [True, True, False, True], "radius": [0.1, 0.6, 0.0, 0.3],
                         "prediction": [1, 2, -1, 0], "seconds": 0.1})
    curve = certification.certified_curve(rows, [0.0, 0.25, 0.5, 1.0]).set_index("radius")
    assert list(curve["accuracy"]) == [0.75, 0.5, 0.25, 0.0]
    table = certification.smoothing_table({("mnist", 0.5): rows}, [0.0, 0.5])
    assert table.loc[("mnist", 0.5), "abstain (%)"] == 25.0


def test_published_comparison_sets_ibp_and_crown_ibp_beside_the_papers():
    rows = pd.concat([_rows().assign(architecture="small ConvNet", training=t, eps=e)
                      for t in ("IBP", "CROWN-IBP") for e in (0.1, 0.3)], ignore_index=True)
    table = certification.published_comparison(certification.sandwich_summary(rows))
    assert list(table.columns) == ["IBP training, certified (%)", "CROWN-IBP training, certified (%)",
                                   "published certified (%)"]
    assert table.loc[0.3, "published certified (%)"] == "93.3 (CROWN-IBP)"
    assert table.loc[0.1, "IBP training, certified (%)"].startswith("50.0 ")
