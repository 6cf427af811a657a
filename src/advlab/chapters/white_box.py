"""White-box attacks: the chapter's parameters and profiles, and its paper-specific tables.

Its models (the plan of trainings) are shared with later chapters: :mod:`advlab.chapters.targets`.
"""
from __future__ import annotations

from ..config import Chapter, Config, Param, Relation
from ..results import DataSpec, Evaluation, Plan
from . import targets

_LINF_8 = 8 / 255

CHAPTER = Chapter(
    name="white-box",
    notebook="white_box.py",
    title="White-box attacks",
    position=1,
    params={
        **{k: targets.PARAMS[k] for k in ("seed", "dataset", "mnist_epochs", "mnist_train_subset")},
        "n_test": Param(int, "test examples attacked (seeded, class-stratified)", minimum=1),
        "eps": Param(float, "headline L∞ budget on MNIST, pixel units of [0, 1]", minimum=0),
        "eps_grid": Param(("list", float), "L∞ budgets of the MNIST curves, pixel units", minimum=0),
        "pgd_steps": Param(int, "PGD iterations (step size 2.5 ε / steps)", minimum=1),
        "deepfool_steps": Param(int, "DeepFool maximum iterations (overshoot 0.02)", minimum=1),
        "fgsm_fool_rate": Param(float, "fraction of correctly classified examples FGSM's ε must fool in the "
                                       "ρ_adv table", positive=True, maximum=1),
        "n_minimal": Param(int, "test examples for the minimum-norm attacks (DeepFool, CW)", minimum=1),
        "cw_steps": Param(int, "Carlini-Wagner Adam steps per binary-search step", minimum=1),
        "cw_search_steps": Param(int, "Carlini-Wagner binary-search steps over c", minimum=1),
        "cw_lr": Param(float, "Carlini-Wagner Adam learning rate (tanh space)", positive=True),
        "cw_initial_const": Param(float, "Carlini-Wagner initial trade-off constant c₀", positive=True),
        "apgd_steps": Param(int, "APGD iterations (the reference budget is 100)", minimum=1),
        **{k: targets.PARAMS[k] for k in ("cifar_model", "cifar_width", "cifar_epochs", "cifar_train_subset")},
        "cifar_n_test": Param(int, "CIFAR-10 test examples attacked", minimum=1),
        "cifar_eps_linf": Param(float, "headline L∞ budget on CIFAR-10, pixel units", minimum=0),
        "cifar_eps_l2": Param(float, "headline L2 budget on CIFAR-10, pixel units", minimum=0),
        "cifar_linf_grid": Param(("list", float), "L∞ budgets of the CIFAR-10 curves", minimum=0),
        "cifar_l2_grid": Param(("list", float), "L2 budgets of the CIFAR-10 curves", minimum=0),
        "batch_size": Param(int, "examples per attack batch, and per block of an evaluation (the unit a "
                                 "process computes under torchrun)", minimum=1),
        "n_show": Param(int, "examples per image grid", minimum=1),
    },
    base="quick",
    profiles={
        "quick": dict(**targets.PROFILES["quick"], n_test=1000, eps=0.1,
                      eps_grid=[0.0, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3], pgd_steps=20,
                      deepfool_steps=50, fgsm_fool_rate=0.9, n_minimal=200, cw_steps=100, cw_search_steps=5,
                      cw_lr=0.1, cw_initial_const=0.1, apgd_steps=100, cifar_n_test=500, cifar_eps_linf=_LINF_8,
                      cifar_eps_l2=0.5,
                      cifar_linf_grid=[0.0, 1 / 255, 2 / 255, 4 / 255, 6 / 255, _LINF_8, 12 / 255, 16 / 255],
                      cifar_l2_grid=[0.0, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5], batch_size=500, n_show=8),
        "smoke": dict(**targets.PROFILES["smoke"], n_test=200, eps_grid=[0.0, 0.1, 0.2, 0.3],
                      pgd_steps=5, n_minimal=30, cw_steps=20, cw_search_steps=2, apgd_steps=20, cifar_n_test=60,
                      cifar_linf_grid=[0.0, 2 / 255, _LINF_8], cifar_l2_grid=[0.0, 0.25, 0.5], batch_size=50,
                      n_show=4),
        "paper": dict(**targets.PROFILES["paper"], n_test=10000,
                      eps_grid=[0.0, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3], pgd_steps=40,
                      n_minimal=1000, cw_steps=1000, cw_search_steps=9, cw_lr=0.01, cifar_n_test=10000,
                      batch_size=250),
    },
    relations=(
        Relation(("n_minimal", "n_test"), lambda c: c.n_minimal <= c.n_test,
                 "n_minimal must not exceed n_test: the minimum-norm examples are drawn from the attacked test subset"),
        Relation(("n_show", "n_test", "cifar_n_test"), lambda c: c.n_show <= min(c.n_test, c.cifar_n_test),
                 "n_show must not exceed n_test or cifar_n_test: the image grids show attacked test examples"),
    ),
)


def curve_grid(grid, headline: float) -> list[float]:
    """The budgets of a curve: the grid with the headline budget added, so its cell can look it up."""
    return sorted(set(grid) | {headline})


def cw_params(cfg: Config) -> dict:
    return {"steps": cfg.cw_steps, "binary_search_steps": cfg.cw_search_steps, "lr": cfg.cw_lr,
            "initial_const": cfg.cw_initial_const}


def reader_models(cfg: Config) -> dict:
    """The models a reader may name ``book:white-box/NAME``: the standard MLP, small CNN, LeNet-5 and VGG."""
    return {**targets.mnist_configs(cfg), **targets.cifar_configs(cfg)}


def plan(cfg: Config) -> Plan:
    """The chapter's trainings and per-example evaluations (what ``advlab precompute`` fills)."""
    mnist, cifar = targets.mnist_configs(cfg), targets.cifar_configs(cfg)
    vgg = {cfg.cifar_model: cifar[cfg.cifar_model]}
    test = DataSpec(cfg.dataset, n=cfg.n_test, seed=cfg.seed)
    minimal = DataSpec(cfg.dataset, n=cfg.n_minimal, seed=cfg.seed)
    ctest = DataSpec("cifar10", n=cfg.cifar_n_test, seed=cfg.seed)
    pgd = {"steps": cfg.pgd_steps}
    cnn = {"small_cnn": mnist["small_cnn"]}
    grid = test.within(min(cfg.n_test, 2 * cfg.n_show))  # enough for n_show correctly classified ones
    linf8, l2 = ["linf", cfg.cifar_eps_linf], ["l2", cfg.cifar_eps_l2]

    def ev(kind, models_, data, **params):
        return Evaluation(kind, models_, data, params, seed=cfg.seed, block=cfg.batch_size)

    attacks = {"fgsm": {}, "pgd": pgd}
    return Plan(trainings={**{f"{cfg.dataset} {k}": c for k, c in mnist.items()},
                           **{f"cifar10 {k}": c for k, c in cifar.items()}}, evaluations={
        "clean": ev("clean", mnist, test),
        "mlp_fgsm": ev("attack", {"mlp": mnist["mlp"]}, test, attack="fgsm", threat=["linf", cfg.eps]),
        "mlp_deepfool": ev("attack", {"mlp": mnist["mlp"]}, test, attack="deepfool", norm="l2",
                           steps=cfg.deepfool_steps),
        "curves": ev("sweep", mnist, test, attacks=attacks, norm="linf", eps_grid=curve_grid(cfg.eps_grid, cfg.eps)),
        "minimal_norms": ev("minimal_norms", mnist, minimal, attacks={
            "DeepFool-L2": ["deepfool", {"norm": "l2", "steps": cfg.deepfool_steps}],
            "DeepFool-L∞": ["deepfool", {"norm": "linf", "steps": cfg.deepfool_steps}],
            "CW-L2": ["cw", cw_params(cfg)]}),
        "transfer": ev("transfer", mnist, test, attack="pgd", threat=["linf", cfg.eps], **pgd),
        "cifar_fgsm": ev("attack", vgg, ctest, attack="fgsm", threat=linf8),
        "cifar_pgd_linf": ev("attack", vgg, ctest, attack="pgd", threat=linf8, **pgd),
        "cifar_pgd_l2": ev("attack", vgg, ctest, attack="pgd", threat=l2, **pgd),
        "cifar_apgd": ev("attack", vgg, ctest, attack="apgd", threat=linf8, steps=cfg.apgd_steps),
        "cifar_curves_linf": ev("sweep", vgg, ctest, attacks=attacks, norm="linf", eps_grid=cfg.cifar_linf_grid),
        "cifar_curves_l2": ev("sweep", vgg, ctest, attacks=attacks, norm="l2", eps_grid=cfg.cifar_l2_grid),
        # the DeepFool paper's Table 1: FGSM's ε is a statistic of the whole subset, so one block
        "rho_adv": Evaluation("rho_adv", mnist, minimal, {"deepfool": {"steps": cfg.deepfool_steps},
                                                          "fgsm_rate": cfg.fgsm_fool_rate},
                              seed=cfg.seed, block=cfg.n_minimal),
        # the example grids: each attack's first correctly classified examples, kept as images
        **{f"grid {name}": ev("attack", cnn, grid, attack=name, keep_inputs=cfg.n_show, **params)
           for name, params in grid_attacks(cfg).items()},
        "cifar grid pgd": ev("attack", vgg, ctest.within(min(cfg.cifar_n_test, 4 * cfg.n_show)), attack="pgd",
                             threat=linf8, keep_inputs=cfg.n_show, **pgd),
    })


def grid_attacks(cfg: Config) -> dict[str, dict]:
    """The attacks of the example grids on the small CNN: name -> parameters (threat included)."""
    linf = ["linf", cfg.eps]
    return {"fgsm": {"threat": linf}, "pgd": {"threat": linf, "steps": cfg.pgd_steps},
            "deepfool": {"norm": "l2", "steps": cfg.deepfool_steps}, "cw": cw_params(cfg)}
