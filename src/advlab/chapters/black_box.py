"""Black-box attacks: the chapter's parameters and profiles, and the surrogates its transfer section trains.

It attacks the white-box chapter's models (:mod:`advlab.chapters.targets`), so one profile trains
them once for both chapters.
"""
from __future__ import annotations

from ..config import Chapter, Config, Param, Relation
from ..results import DataSpec, Evaluation, ModelSpec, Plan
from ..training import TrainConfig
from . import targets

_LINF_8 = 8 / 255
REPORT_NOISE_SIGMA = 0.1  # the VGG-19 report's noise level (its 3.2)

CHAPTER = Chapter(
    name="black-box",
    notebook="black_box.py",
    title="Black-box attacks",
    position=2,
    params={
        **targets.PARAMS,
        "n_test": Param(int, "MNIST-scale test examples attacked (seeded, class-stratified)", minimum=1),
        "eps": Param(float, "L∞ budget on the MNIST-scale models, pixel units of [0, 1]", minimum=0),
        "cifar_n_test": Param(int, "CIFAR-10 test examples for NES, Square, NATTACK and noise", minimum=1),
        "cifar_eps_linf": Param(float, "L∞ budget on CIFAR-10, pixel units", minimum=0),
        "queries": Param(int, "query budget per example of the score-based attacks", minimum=1),
        "nes_samples": Param(int, "NES samples per gradient estimate (antithetic pairs: even)", minimum=2),
        "nes_sigma": Param(float, "NES search standard deviation, pixel units", positive=True),
        "square_p_init": Param(float, "Square attack's initial fraction of pixels per square", positive=True,
                               maximum=1),
        "nattack_population": Param(int, "NATTACK samples per iteration", minimum=1),
        "nattack_sigma": Param(float, "NATTACK search standard deviation (tanh space)", positive=True),
        "nattack_lr": Param(float, "NATTACK learning rate of the mean", positive=True),
        "apgd_steps": Param(int, "APGD-CE iterations of the white-box yardstick", minimum=1),
        "pgd_steps": Param(int, "PGD iterations (step size 2.5 ε / steps)", minimum=1),
        "onepixel_n_test": Param(int, "CIFAR-10 test examples for the few-pixel attacks", minimum=1),
        "onepixel_pixels": Param(("list", int), "pixels the few-pixel attacks may change", minimum=1),
        "onepixel_population": Param(int, "differential-evolution population per example", minimum=4),
        "onepixel_generations": Param(int, "differential-evolution generations", minimum=1),
        "noise_sigmas": Param(("list", float), "standard deviations of the Gaussian noise, pixel units",
                              minimum=0),
        "noise_draws": Param(int, "noise draws per example (the worst of them is the K-query attack)", minimum=1),
        "noise_l2_grid": Param(("list", float), "L2 budgets of PGD-L2 in the noise comparison, pixel units",
                               minimum=0),
        "transfer_steps": Param(int, "iterations of PGD and MI-FGSM on the surrogates", minimum=1),
        "hsja_n_test": Param(int, "CIFAR-10 test examples for HopSkipJump, DeepFool and CW", minimum=1),
        "hsja_budgets": Param(("list", int), "HopSkipJump query budgets per example (one run each)", minimum=1),
        "deepfool_steps": Param(int, "DeepFool maximum iterations (overshoot 0.02)", minimum=1),
        "cw_steps": Param(int, "Carlini-Wagner Adam steps per binary-search step", minimum=1),
        "cw_search_steps": Param(int, "Carlini-Wagner binary-search steps over c", minimum=1),
        "cw_lr": Param(float, "Carlini-Wagner Adam learning rate (tanh space)", positive=True),
        "cw_initial_const": Param(float, "Carlini-Wagner initial trade-off constant c₀", positive=True),
        "squeeze_bits": Param(int, "bit depth of the feature-squeezing defense (levels: 2^bits)", minimum=1),
        "batch_size": Param(int, "examples per attack batch (black-box attacks query their population of "
                                 "each at once)", minimum=1),
        "n_show": Param(int, "examples per image grid", minimum=1),
    },
    base="quick",
    profiles={
        "quick": dict(**targets.PROFILES["quick"], n_test=200, eps=0.2, cifar_n_test=200, cifar_eps_linf=_LINF_8,
                      queries=2000, nes_samples=50, nes_sigma=0.001, square_p_init=0.05, nattack_population=100,
                      nattack_sigma=0.1, nattack_lr=0.02, apgd_steps=100, pgd_steps=20, onepixel_n_test=100,
                      onepixel_pixels=[1, 3, 5], onepixel_population=100, onepixel_generations=20,
                      noise_sigmas=[0.02, 0.05, 0.1, 0.2], noise_draws=20,
                      noise_l2_grid=[0.1, 0.25, 0.5, 1.0, 2.0], transfer_steps=10, hsja_n_test=50,
                      hsja_budgets=[100, 300, 1000, 2000], deepfool_steps=50, cw_steps=100, cw_search_steps=5,
                      cw_lr=0.01, cw_initial_const=0.1, squeeze_bits=3, batch_size=100,
                      n_show=6),
        "smoke": dict(**targets.PROFILES["smoke"], n_test=40, cifar_n_test=40, queries=200, nattack_population=20,
                      apgd_steps=20, pgd_steps=5, onepixel_n_test=12, onepixel_pixels=[1, 3],
                      onepixel_population=20, onepixel_generations=5, noise_sigmas=[0.05, 0.1], noise_draws=5,
                      noise_l2_grid=[0.25, 1.0], transfer_steps=5, hsja_n_test=10, hsja_budgets=[50, 200],
                      deepfool_steps=20, cw_steps=20, cw_search_steps=2, n_show=4),
        "paper": dict(**targets.PROFILES["paper"], n_test=1000, cifar_n_test=1000, queries=10000,
                      nattack_population=300, pgd_steps=40, onepixel_n_test=500, onepixel_population=400,
                      onepixel_generations=100, noise_sigmas=[0.01, 0.02, 0.05, 0.1, 0.2, 0.3], noise_draws=100,
                      noise_l2_grid=[0.1, 0.25, 0.5, 1.0, 2.0, 4.0], hsja_n_test=500,
                      hsja_budgets=[100, 300, 1000, 3000, 10000], cw_steps=1000, cw_search_steps=9,
                      batch_size=250),
    },
    relations=(
        Relation(("nes_samples",), lambda c: c.nes_samples % 2 == 0,
                 "nes_samples must be even: NES queries antithetic pairs x ± σu"),
        Relation(("nattack_population", "queries"), lambda c: c.nattack_population <= c.queries,
                 "nattack_population must not exceed queries: one NATTACK iteration queries its whole population"),
        Relation(("hsja_n_test", "cifar_n_test"), lambda c: c.hsja_n_test <= c.cifar_n_test,
                 "hsja_n_test must not exceed cifar_n_test: HopSkipJump's examples come from the attacked subset"),
        Relation(("onepixel_n_test", "cifar_n_test"), lambda c: c.onepixel_n_test <= c.cifar_n_test,
                 "onepixel_n_test must not exceed cifar_n_test: the few-pixel examples come from the attacked "
                 "subset"),
        Relation(("n_show", "onepixel_n_test"), lambda c: c.n_show <= c.onepixel_n_test,
                 "n_show must not exceed onepixel_n_test: the grid shows examples the few-pixel attacks fooled"),
    ),
)


def surrogate_configs(cfg: Config) -> dict[str, TrainConfig]:
    """The transfer section's models: the three MNIST-scale models, and the small CNN trained again
    with the next seed (same architecture and recipe, other weights: the attacker's own copy)."""
    out = dict(targets.mnist_configs(cfg))
    out[f"small_cnn (seed {cfg.seed + 1})"] = targets.mnist_configs(cfg, seed=cfg.seed + 1)["small_cnn"]
    return out


def score_attacks(cfg: Config) -> dict[str, tuple[str, dict]]:
    """The score-based attacks compared on CIFAR-10: label -> (attack, parameters)."""
    return {"NES": ("nes", {"samples": cfg.nes_samples, "sigma": cfg.nes_sigma}),
            "Square": ("square", {"p_init": cfg.square_p_init}),
            "NATTACK": ("nattack", {"population": cfg.nattack_population, "sigma": cfg.nattack_sigma,
                                    "lr": cfg.nattack_lr})}


def transfer_attacks(cfg: Config) -> dict[str, tuple[str, dict]]:
    """The attacks crafted on the surrogates: label -> (attack, parameters)."""
    return {"FGSM": ("fgsm", {}), "PGD": ("pgd", {"steps": cfg.transfer_steps}),
            "MI-FGSM": ("mifgsm", {"steps": cfg.transfer_steps})}


def white_box_norms(cfg: Config) -> dict[str, list]:
    """The white-box minimum-norm yardsticks of the HopSkipJump section: label -> [attack, parameters]."""
    return {"DeepFool-L2": ["deepfool", {"norm": "l2", "steps": cfg.deepfool_steps}],
            "CW-L2": ["cw", {"steps": cfg.cw_steps, "binary_search_steps": cfg.cw_search_steps, "lr": cfg.cw_lr,
                             "initial_const": cfg.cw_initial_const}]}


def squeezing(cfg: Config) -> dict[str, list]:
    """The feature-squeezing section's model recipes: label -> wrappers in front of the CIFAR model."""
    bits = ["bits", {"bits": cfg.squeeze_bits}]
    return {"squeezed": [bits], "squeezed + BPDA": [bits, ["bpda"]]}


def plan(cfg: Config) -> Plan:
    """Every number of the chapter: the trainings (the target models, shared with the white-box
    chapter, and the surrogates), the query-limited attacks on the full test subsets, the transfer
    matrices, the few-pixel and HopSkipJump studies on sub-subsets, noise against PGD-L2, and the
    attacks on the feature-squeezed model (what ``advlab precompute`` fills)."""
    mnist, cifar = targets.mnist_configs(cfg), targets.cifar_configs(cfg)
    vgg = {cfg.cifar_model: cifar[cfg.cifar_model]}
    test = DataSpec(cfg.dataset, n=cfg.n_test, seed=cfg.seed)
    ctest = DataSpec("cifar10", n=cfg.cifar_n_test, seed=cfg.seed)
    pixel_set, hsja_set = ctest.within(cfg.onepixel_n_test), ctest.within(cfg.hsja_n_test)
    cifar_threat, mnist_threat = ["linf", cfg.cifar_eps_linf], ["linf", cfg.eps]
    wrapped = {label: {cfg.cifar_model: ModelSpec(cifar[cfg.cifar_model], w)} for label, w in squeezing(cfg).items()}

    def ev(kind, models_, data, inputs=None, **params):
        return Evaluation(kind, models_, data, params, seed=cfg.seed, block=cfg.batch_size, inputs=inputs or {})

    nes, nes_params = score_attacks(cfg)["NES"]
    surrogates = surrogate_configs(cfg)
    noise = ev("noise", vgg, ctest, sigmas=cfg.noise_sigmas, draws=cfg.noise_draws)
    return Plan(trainings={**mnist, **cifar, **{f"surrogate {k}": c for k, c in surrogates.items()}},
                evaluations={
        "clean mnist": ev("clean", mnist, test),
        "clean cifar": ev("clean", vgg, ctest),
        **{("cifar", label): ev("attack", vgg, ctest, attack=name, threat=cifar_threat, budget=cfg.queries, **params)
           for label, (name, params) in score_attacks(cfg).items()},
        "mnist NES": ev("attack", mnist, test, attack=nes, threat=mnist_threat, budget=cfg.queries, **nes_params),
        "cifar APGD": ev("attack", vgg, ctest, attack="apgd", threat=cifar_threat, steps=cfg.apgd_steps),
        **{("onepixel", k): ev("attack", vgg, pixel_set, attack="onepixel", pixels=k, output="probs",
                               population=cfg.onepixel_population, generations=cfg.onepixel_generations,
                               keep_inputs=cfg.n_show)
           for k in cfg.onepixel_pixels},
        "noise": noise,
        "noise PGD-L2": ev("matched_sweep", vgg, ctest, inputs={"noise": noise},
                           attacks={"pgd": {"steps": cfg.pgd_steps}}, norm="l2", eps_grid=cfg.noise_l2_grid),
        **{("transfer", label): ev("transfer", surrogates, test, attack=name, threat=mnist_threat, **params)
           for label, (name, params) in transfer_attacks(cfg).items()},
        **{("hsja", b): ev("attack", vgg, hsja_set, attack="hsja", budget=b, output="label") for b in cfg.hsja_budgets},
        "white-box norms": ev("minimal_norms", vgg, hsja_set, attacks=white_box_norms(cfg)),
        ("squeezed", "PGD"): ev("attack", wrapped["squeezed"], ctest, attack="pgd", threat=cifar_threat,
                                steps=cfg.pgd_steps),
        ("squeezed", "PGD + BPDA"): ev("attack", wrapped["squeezed + BPDA"], ctest, attack="pgd",
                                       threat=cifar_threat, steps=cfg.pgd_steps),
        **{("squeezed", label): ev("attack", wrapped["squeezed"], ctest, attack=name, threat=cifar_threat,
                                   budget=cfg.queries, **params)
           for label, (name, params) in score_attacks(cfg).items() if label != "NES"},
    })


def query_prose(spent, final, apgd, step_cost: int, budget: int) -> str:
    """The chapter's sentences on query cost, drawn from the numbers: which of Square and NES needs
    fewer queries (a claim only where the medians' 95% intervals do not overlap), and whether the
    score-based attacks reach the white-box APGD accuracy (intervals overlapping) at this budget.

    ``spent``: :func:`~advlab.evaluate.query_summary` indexed by attack label; ``final``:
    :func:`~advlab.evaluate.accuracy` indexed by attack label; ``apgd``: APGD's accuracy row.
    """
    fooled = {a: int(spent.loc[a, "fooled"]) for a in ("Square", "NES")}
    med = {a: f"{spent.loc[a, 'median']:.0f} [{spent.loc[a, 'median_low']:.0f}, {spent.loc[a, 'median_high']:.0f}]"
           for a in fooled if fooled[a]}
    if not any(fooled.values()):
        first = (f"Neither Square nor NES fooled an example within {budget} queries, so their query costs "
                 "cannot be compared here.")
    elif not all(fooled.values()):
        done, none = ("Square", "NES") if fooled["Square"] else ("NES", "Square")
        first = (f"Only {done} fooled examples (a median of {med[done]} queries, 95% interval); {none} fooled "
                 f"none within {budget} queries.")
    else:
        lo = {a: spent.loc[a, "median_low"] for a in fooled}
        hi = {a: spent.loc[a, "median_high"] for a in fooled}
        first = f"Square needs a median of {med['Square']} queries (95% interval), NES {med['NES']}: "
        if hi["Square"] < lo["NES"]:
            first += (f"a random search that spends one query per step beats a gradient estimate that spends "
                      f"{step_cost} per step, as in the Square paper.")
        elif hi["NES"] < lo["Square"]:
            first += (f"here the gradient estimate, at {step_cost} queries per step, is cheaper than the random "
                      "search, unlike in the Square paper.")
        else:
            first += "the intervals overlap, so neither is shown to be cheaper on these examples."
    close = [a for a in final.index if final.loc[a, "ci_low"] <= apgd["ci_high"]]
    if len(close) == len(final):
        second = (f"Every score-based attack comes within the interval of the white-box APGD accuracy at "
                  f"{budget} queries: against an undefended model, hiding the gradients costs the attacker "
                  "queries, not success.")
    elif close:
        second = (f"At {budget} queries {', '.join(close)} reach the white-box APGD accuracy (overlapping "
                  f"intervals), {', '.join(a for a in final.index if a not in close)} not yet.")
    else:
        second = (f"At {budget} queries no score-based attack reaches the white-box APGD accuracy: hiding the "
                  "gradients still costs the attacker success at this budget.")
    return f"{first} {second}"
