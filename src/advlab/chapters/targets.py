"""The models several chapters attack: one schema, one set of profile values, one plan of trainings.

Chapters that attack the same models take these parameters and values, so the same profile
trains each model once: equal :class:`~advlab.training.TrainConfig` means an equal cache key.
A chapter includes ``PARAMS`` in its schema and ``PROFILES[p]`` in its profile ``p``.
"""
from __future__ import annotations

from ..config import ALL, Config, Param
from ..training import TrainConfig

MNIST_MODELS = ("mlp", "small_cnn", "lenet5")
#: The name of the attacker's surrogate in an adaptive evaluation's models (:func:`surrogate_config`): it
#: rides along to be transferred from, never evaluated.
SURROGATE = "attacker's surrogate"

PARAMS = {
    "seed": Param(int, "seed of training, subsets and random starts", minimum=0),
    "dataset": Param(str, "dataset of the MNIST-scale part", choices=("mnist", "fashion-mnist")),
    "mnist_epochs": Param(int, "training epochs of the MLP, small CNN and LeNet-5", minimum=1),
    "mnist_train_subset": Param(int, f"their training examples ({ALL!r}: the whole split)", minimum=1,
                                all_allowed=True),
    "cifar_model": Param(str, "VGG variant on CIFAR-10", choices=("vgg11", "vgg13", "vgg16", "vgg19")),
    "cifar_width": Param(float, "VGG width multiplier (1.0: the standard 64-512 channels)", positive=True),
    "cifar_epochs": Param(int, "VGG training epochs", minimum=1),
    "cifar_train_subset": Param(int, f"VGG training examples ({ALL!r}: all 50,000)", minimum=1, all_allowed=True),
}

# The base ("quick") values are complete; smoke and paper are overlays, as in every chapter.
PROFILES = {
    "quick": dict(seed=0, dataset="mnist", mnist_epochs=2, mnist_train_subset=ALL, cifar_model="vgg19",
                  cifar_width=0.125, cifar_epochs=4, cifar_train_subset=ALL),
    "smoke": dict(mnist_epochs=1, mnist_train_subset=4000, cifar_model="vgg11", cifar_epochs=1,
                  cifar_train_subset=2000),
    "paper": dict(mnist_epochs=10, cifar_width=1.0, cifar_epochs=30),
}


# The adaptive evaluation's budgets, profile by profile, shared by the chapters that judge models with it
# (defenses, your model): the same profile attacks every model of the book equally hard.
EVALUATION_PROFILES = {
    "quick": dict(n_test=100, apgd_steps=50, apgd_targets=3, square_queries=1000, escalation_queries=5000,
                  batch_size=200, audit_n=40, audit_steps=8, eot_draws=8),
    "smoke": dict(n_test=40, apgd_steps=10, square_queries=1000, escalation_queries=2000, audit_n=20, audit_steps=3,
                  eot_draws=2),
    "paper": dict(n_test=1000, apgd_steps=100, apgd_targets=9, square_queries=5000, escalation_queries=20000,
                  audit_n=500, audit_steps=20, eot_draws=32),
}


def mnist_configs(cfg: Config, seed: int | None = None) -> dict[str, TrainConfig]:
    """The three MNIST-scale models (the report's MLP, a small CNN, LeNet-5), one recipe.

    ``seed`` overrides the configured seed: the same recipe trained again, as an attacker's
    surrogate that shares the architecture but not the weights.
    """
    return {name: TrainConfig(dataset=cfg.dataset, model=name, epochs=cfg.mnist_epochs,
                              train_subset=cfg.mnist_train_subset, seed=cfg.seed if seed is None else seed)
            for name in MNIST_MODELS}


def cifar_configs(cfg: Config) -> dict[str, TrainConfig]:
    """The report's VGG on CIFAR-10 at the configured width, with crop-and-flip augmentation."""
    return {cfg.cifar_model: TrainConfig(dataset="cifar10", model=cfg.cifar_model,
                                         model_options={"width": cfg.cifar_width}, epochs=cfg.cifar_epochs,
                                         train_subset=cfg.cifar_train_subset, augment=True, seed=cfg.seed)}


def surrogate_config(cfg: Config, dataset: str) -> TrainConfig:
    """The attacker's surrogate of the adaptive evaluation's transfer attack on ``dataset``: the book's
    standard model of that dataset, trained by someone else. On MNIST-scale data the small CNN of
    another seed (the black-box chapter's surrogate); on CIFAR-10 the white-box chapter's VGG."""
    if dataset == "cifar10":
        return cifar_configs(cfg)[cfg.cifar_model]
    return mnist_configs(cfg, seed=cfg.seed + 1)["small_cnn"]
