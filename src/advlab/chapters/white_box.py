"""White-box attacks: the chapter's parameters, profiles, plan of trainings, and its paper-specific tables."""
from __future__ import annotations

import math

import pandas as pd

from ..attacks import fgsm, run_attack
from ..config import ALL, Chapter, Config, Param, Relation
from ..data import Dataset
from ..evaluate import check_adversarial
from ..models import predict
from ..threat import L2, ThreatModel
from ..timing import Stopwatch
from ..training import TrainConfig

_LINF_8 = 8 / 255
MNIST_MODELS = ("mlp", "small_cnn", "lenet5")

CHAPTER = Chapter(
    name="white-box",
    notebook="white_box.py",
    title="White-box attacks",
    position=1,
    params={
        "seed": Param(int, "seed of training, subsets and random starts", minimum=0),
        "dataset": Param(str, "dataset of the MNIST-scale part", choices=("mnist", "fashion-mnist")),
        "mnist_epochs": Param(int, "training epochs of the MLP, small CNN and LeNet-5", minimum=1),
        "mnist_train_subset": Param(int, f"their training examples ({ALL!r}: the whole split)", minimum=1,
                                    all_allowed=True),
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
        "cifar_model": Param(str, "VGG variant on CIFAR-10", choices=("vgg11", "vgg13", "vgg16", "vgg19")),
        "cifar_width": Param(float, "VGG width multiplier (1.0: the standard 64-512 channels)", positive=True),
        "cifar_epochs": Param(int, "VGG training epochs", minimum=1),
        "cifar_train_subset": Param(int, f"VGG training examples ({ALL!r}: all 50,000)", minimum=1,
                                    all_allowed=True),
        "cifar_n_test": Param(int, "CIFAR-10 test examples attacked", minimum=1),
        "cifar_eps_linf": Param(float, "headline L∞ budget on CIFAR-10, pixel units", minimum=0),
        "cifar_eps_l2": Param(float, "headline L2 budget on CIFAR-10, pixel units", minimum=0),
        "cifar_linf_grid": Param(("list", float), "L∞ budgets of the CIFAR-10 curves", minimum=0),
        "cifar_l2_grid": Param(("list", float), "L2 budgets of the CIFAR-10 curves", minimum=0),
        "batch_size": Param(int, "examples per attack batch", minimum=1),
        "n_show": Param(int, "examples per image grid", minimum=1),
    },
    base="quick",
    profiles={
        "quick": dict(seed=0, dataset="mnist", mnist_epochs=2, mnist_train_subset=ALL, n_test=1000, eps=0.1,
                      eps_grid=[0.0, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3], pgd_steps=20,
                      deepfool_steps=50, fgsm_fool_rate=0.9, n_minimal=200, cw_steps=100, cw_search_steps=5,
                      cw_lr=0.1, cw_initial_const=0.1, apgd_steps=100, cifar_model="vgg19", cifar_width=0.125,
                      cifar_epochs=4, cifar_train_subset=ALL, cifar_n_test=500, cifar_eps_linf=_LINF_8,
                      cifar_eps_l2=0.5,
                      cifar_linf_grid=[0.0, 1 / 255, 2 / 255, 4 / 255, 6 / 255, _LINF_8, 12 / 255, 16 / 255],
                      cifar_l2_grid=[0.0, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5], batch_size=500, n_show=8),
        "smoke": dict(mnist_epochs=1, mnist_train_subset=4000, n_test=200, eps_grid=[0.0, 0.1, 0.2, 0.3],
                      pgd_steps=5, n_minimal=30, cw_steps=20, cw_search_steps=2, apgd_steps=20,
                      cifar_model="vgg11", cifar_epochs=1, cifar_train_subset=2000, cifar_n_test=60,
                      cifar_linf_grid=[0.0, 2 / 255, _LINF_8], cifar_l2_grid=[0.0, 0.25, 0.5], batch_size=200,
                      n_show=4),
        "paper": dict(mnist_epochs=10, n_test=10000,
                      eps_grid=[0.0, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3], pgd_steps=40,
                      n_minimal=1000, cw_steps=1000, cw_search_steps=9, cw_lr=0.01, cifar_width=1.0,
                      cifar_epochs=30, cifar_n_test=10000, batch_size=1000),
    },
    relations=(
        Relation(("n_minimal", "n_test"), lambda c: c.n_minimal <= c.n_test,
                 "n_minimal must not exceed n_test: the minimum-norm examples are drawn from the attacked test subset"),
        Relation(("n_show", "n_test", "cifar_n_test"), lambda c: c.n_show <= min(c.n_test, c.cifar_n_test),
                 "n_show must not exceed n_test or cifar_n_test: the image grids show attacked test examples"),
    ),
)


# -- the plan: what the chapter trains ---------------------------------------------------------
def mnist_configs(cfg: Config) -> dict[str, TrainConfig]:
    """The three MNIST-scale models (the report's MLP, a small CNN, LeNet-5), one recipe."""
    return {name: TrainConfig(dataset=cfg.dataset, model=name, epochs=cfg.mnist_epochs,
                              train_subset=cfg.mnist_train_subset, seed=cfg.seed)
            for name in MNIST_MODELS}


def cifar_configs(cfg: Config) -> dict[str, TrainConfig]:
    """The report's VGG on CIFAR-10 at the configured width, with crop-and-flip augmentation."""
    return {cfg.cifar_model: TrainConfig(dataset="cifar10", model=cfg.cifar_model,
                                         model_options={"width": cfg.cifar_width}, epochs=cfg.cifar_epochs,
                                         train_subset=cfg.cifar_train_subset, augment=True, seed=cfg.seed)}


def curve_grid(grid, headline: float) -> list[float]:
    """The budgets of a curve: the grid with the headline budget added, so its cell can look it up."""
    return sorted(set(grid) | {headline})


# -- the DeepFool paper's Table 1 --------------------------------------------------------------
def fgsm_eps_for_rate(model, x, y, rate: float = 0.9, norm: str = "linf", hi: float = 1.0,
                      iterations: int = 14) -> float:
    """Smallest FGSM budget (bisection) that fools at least ``rate`` of the batch.

    This is how the DeepFool paper makes FGSM comparable to a minimum-norm attack: the budget is
    set so that FGSM fools 90% of the data. Returns ``hi`` if even that budget falls short.
    FGSM's fooling rate need not grow with ε; the result is the upper end of the final bisection
    bracket, whose lower end (2^-iterations below) fools fewer than ``rate``.
    """
    needed = math.ceil(rate * len(y) - 1e-9)  # count, not a float32 mean: 54/60 must reach 0.9

    def enough(eps):
        return int(fgsm(model, x, y, threat=ThreatModel(norm, eps)).success.sum()) >= needed

    if not enough(hi):
        return hi
    lo = 0.0
    for _ in range(iterations):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if enough(mid) else (mid, hi)
    return hi


def rho_adv_table(models: dict, data: Dataset, *, deepfool_params: dict | None = None,
                  fgsm_rate: float = 0.9) -> pd.DataFrame:
    """The DeepFool paper's Table 1: ρ_adv = mean ‖r‖₂/‖x‖₂ and time per example, DeepFool vs FGSM.

    Both attacks run on the examples each model classifies correctly, and ρ_adv is averaged over
    those the attack fools (the rule of :func:`advlab.evaluate.norm_summary`). FGSM's budget is the
    smallest L∞ ε that fools ``fgsm_rate`` of them (bisection, its cost not counted in the time).
    Columns (fractions; times in milliseconds per example): ``n``, ``test_error``, ``rho_deepfool``,
    ``deepfool_success``, ``deepfool_ms``, ``rho_fgsm``, ``fgsm_eps``, ``fgsm_fooled``, ``fgsm_ms``.
    """
    x, y = data.images(), data.y
    rows = []
    for name, model in models.items():
        correct = predict(model, x) == y
        xc, yc = x[correct], y[correct]
        xnorm = L2.norm(xc)
        with Stopwatch(x.device) as t_df:
            df = run_attack("deepfool", model, xc, yc, **(deepfool_params or {}))
        check_adversarial(xc, df.x_adv)
        eps = fgsm_eps_for_rate(model, xc, yc, fgsm_rate)
        with Stopwatch(x.device) as t_fg:
            fg = fgsm(model, xc, yc, threat=ThreatModel("linf", eps))
        rows.append({
            "model": name, "n": len(yc), "test_error": 1 - correct.float().mean().item(),
            "rho_deepfool": (L2.norm(df.x_adv - xc) / xnorm)[df.success].mean().item(),
            "deepfool_success": df.success.float().mean().item(), "deepfool_ms": 1e3 * t_df.seconds / len(yc),
            "rho_fgsm": (L2.norm(fg.x_adv - xc) / xnorm)[fg.success].mean().item(), "fgsm_eps": eps,
            "fgsm_fooled": fg.success.float().mean().item(), "fgsm_ms": 1e3 * t_fg.seconds / len(yc),
        })
    return pd.DataFrame(rows).set_index("model")
