"""The book's chapters: notebook file, parameter schema and the smoke / quick / paper profiles.

smoke: CI, under a minute per chapter on 2 CPU cores. quick: the CPU default of ``make book``.
paper: the papers' scale (full test sets), meant for a GPU.
"""
from __future__ import annotations

from .checks import check_choice
from .config import Chapter, Param

_LINF_8 = 8 / 255

WHITE_BOX = Chapter(
    name="white-box",
    notebook="white_box.py",
    title="White-box attacks",
    params={
        "seed": Param(int, "seed of training, subsets and random starts"),
        "dataset": Param(str, "dataset of the MNIST-scale part", choices=("mnist", "fashion-mnist")),
        "mnist_epochs": Param(int, "training epochs of the MLP, small CNN and LeNet-5"),
        "mnist_train_subset": Param(int, "their training examples (None: all)", optional=True),
        "n_test": Param(int, "test examples attacked (seeded, class-stratified)"),
        "eps": Param(float, "headline L∞ budget on MNIST, pixel units of [0, 1]"),
        "eps_grid": Param(("list", float), "L∞ budgets of the MNIST curves, pixel units"),
        "pgd_steps": Param(int, "PGD iterations (step size 2.5 ε / steps)"),
        "deepfool_steps": Param(int, "DeepFool maximum iterations (overshoot 0.02)"),
        "n_minimal": Param(int, "test examples for the minimum-norm attacks (DeepFool, CW)"),
        "cw_steps": Param(int, "Carlini-Wagner Adam steps per binary-search step"),
        "cw_search_steps": Param(int, "Carlini-Wagner binary-search steps over c"),
        "cw_lr": Param(float, "Carlini-Wagner Adam learning rate (tanh space)"),
        "apgd_steps": Param(int, "APGD iterations (the reference budget is 100)"),
        "cifar_model": Param(str, "VGG variant on CIFAR-10", choices=("vgg11", "vgg13", "vgg16", "vgg19")),
        "cifar_width": Param(float, "VGG width multiplier (1.0: the standard 64-512 channels)"),
        "cifar_epochs": Param(int, "VGG training epochs"),
        "cifar_train_subset": Param(int, "VGG training examples (None: all 50,000)", optional=True),
        "cifar_n_test": Param(int, "CIFAR-10 test examples attacked"),
        "cifar_eps_linf": Param(float, "headline L∞ budget on CIFAR-10, pixel units"),
        "cifar_eps_l2": Param(float, "headline L2 budget on CIFAR-10, pixel units"),
        "cifar_linf_grid": Param(("list", float), "L∞ budgets of the CIFAR-10 curves"),
        "cifar_l2_grid": Param(("list", float), "L2 budgets of the CIFAR-10 curves"),
        "batch_size": Param(int, "examples per attack batch"),
        "n_show": Param(int, "examples per image grid"),
    },
    profiles={
        "smoke": dict(seed=0, dataset="mnist", mnist_epochs=1, mnist_train_subset=4000, n_test=200, eps=0.1,
                      eps_grid=[0.0, 0.1, 0.2, 0.3], pgd_steps=5, deepfool_steps=50, n_minimal=30,
                      cw_steps=20, cw_search_steps=2, cw_lr=0.1, apgd_steps=20, cifar_model="vgg11", cifar_width=0.125,
                      cifar_epochs=1, cifar_train_subset=2000, cifar_n_test=60, cifar_eps_linf=_LINF_8, cifar_eps_l2=0.5,
                      cifar_linf_grid=[0.0, 2 / 255, _LINF_8], cifar_l2_grid=[0.0, 0.25, 0.5],
                      batch_size=200, n_show=4),
        "quick": dict(seed=0, dataset="mnist", mnist_epochs=2, mnist_train_subset=None, n_test=1000, eps=0.1,
                      eps_grid=[0.0, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3], pgd_steps=20,
                      deepfool_steps=50, n_minimal=200, cw_steps=100, cw_search_steps=5, cw_lr=0.1, apgd_steps=100, cifar_model="vgg19",
                      cifar_width=0.125, cifar_epochs=4, cifar_train_subset=None, cifar_n_test=500,
                      cifar_eps_linf=_LINF_8, cifar_eps_l2=0.5,
                      cifar_linf_grid=[0.0, 1 / 255, 2 / 255, 4 / 255, 6 / 255, _LINF_8, 12 / 255, 16 / 255],
                      cifar_l2_grid=[0.0, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5],
                      batch_size=500, n_show=8),
        "paper": dict(seed=0, dataset="mnist", mnist_epochs=10, mnist_train_subset=None, n_test=10000, eps=0.1,
                      eps_grid=[0.0, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3], pgd_steps=40,
                      deepfool_steps=50, n_minimal=1000, cw_steps=1000, cw_search_steps=9, cw_lr=0.01, apgd_steps=100, cifar_model="vgg19",
                      cifar_width=1.0, cifar_epochs=30, cifar_train_subset=None, cifar_n_test=10000,
                      cifar_eps_linf=_LINF_8, cifar_eps_l2=0.5,
                      cifar_linf_grid=[0.0, 1 / 255, 2 / 255, 4 / 255, 6 / 255, _LINF_8, 12 / 255, 16 / 255],
                      cifar_l2_grid=[0.0, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5],
                      batch_size=1000, n_show=8),
    },
)

CHAPTERS = {c.name: c for c in (WHITE_BOX,)}


def get_chapter(name: str) -> Chapter:
    check_choice(name, CHAPTERS, "chapter")
    return CHAPTERS[name]
