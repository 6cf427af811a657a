"""The book's chapters: notebook file, parameter schema and the smoke / quick / paper profiles.

smoke: CI, under a minute per chapter on 2 CPU cores. quick: the CPU default of ``make book``.
paper: the papers' scale (full test sets), meant for a GPU.
"""
from __future__ import annotations

from .checks import check_choice
from .config import Chapter, Param
from .data import DATASETS
from .models import MODELS
from .threat import NORMS

WHITE_BOX = Chapter(
    name="white-box",
    notebook="white_box.py",
    title="White-box attacks",
    params={
        "seed": Param(int, "seed of training, subsets and random starts"),
        "dataset": Param(str, "dataset", choices=tuple(DATASETS)),
        "model": Param(str, "architecture attacked", choices=tuple(MODELS)),
        "epochs": Param(int, "training epochs"),
        "train_subset": Param(int, "training examples (None: the whole split)", optional=True),
        "n_test": Param(int, "test examples attacked (seeded, class-stratified subset)"),
        "norm": Param(str, "threat-model norm", choices=NORMS),
        "eps": Param(float, "headline budget ε, pixel units of [0, 1]"),
        "eps_grid": Param(("list", float), "budgets of the accuracy-vs-ε curve, pixel units"),
        "batch_size": Param(int, "examples per attack batch"),
        "n_show": Param(int, "examples in the image grid"),
    },
    profiles={
        "smoke": dict(seed=0, dataset="mnist", model="small_cnn", epochs=1, train_subset=6000,
                      n_test=200, norm="linf", eps=0.1, eps_grid=[0.0, 0.05, 0.1, 0.2, 0.3],
                      batch_size=200, n_show=6),
        "quick": dict(seed=0, dataset="mnist", model="small_cnn", epochs=2, train_subset=None,
                      n_test=1000, norm="linf", eps=0.1,
                      eps_grid=[0.0, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3],
                      batch_size=500, n_show=8),
        "paper": dict(seed=0, dataset="mnist", model="small_cnn", epochs=10, train_subset=None,
                      n_test=10000, norm="linf", eps=0.1,
                      eps_grid=[0.0, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.175, 0.2, 0.25, 0.3],
                      batch_size=1000, n_show=8),
    },
)

CHAPTERS = {c.name: c for c in (WHITE_BOX,)}


def get_chapter(name: str) -> Chapter:
    check_choice(name, CHAPTERS, "chapter")
    return CHAPTERS[name]
