"""What determines a trained model: :class:`TrainConfig`, whose hash is its checkpoint's cache key."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from ..cache import cache_root, config_key
from ..checks import check_choice
from ..config import coerce
from ..data import dataset_spec
from ..errors import InputError
from ..models import build_model, model_options
from ..precision import PRECISIONS
from ..threat import ThreatModel
from .methods import METHODS, get_method

#: The checkpoints' format, part of their key: bumped when a change makes old checkpoints mean something else
#: (architecture, training loop).
CHECKPOINT_FORMAT = 3
#: The learning-rate schedules of :class:`TrainConfig`.
SCHEDULES = ("onecycle", "cosine", "cyclic", "constant")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained model; its hash is the checkpoint's cache key.

    Units: ``lr`` is the peak learning rate; ``batch_size`` in examples; ``epochs`` full passes
    over the (sub)set; every ε in ``method_params`` in pixel units of [0, 1].

    ``method`` names a training method of ``advlab.training.methods.METHODS`` and
    ``method_params`` its parameters (unknown or inapplicable names, a missing ε, a fraction
    outside [0, 1] fail here, before any training). ``init``, another config of the same
    architecture, fine-tunes its trained model instead of starting from random weights.
    ``monitor`` > 0 holds that many training-split examples out of training and measures PGD
    accuracy on them after every epoch (the method's threat model, 10 steps); the best epoch's
    weights are kept and a fall of more than ``CO_DROP`` is reported as catastrophic overfitting.
    ``precision`` is the arithmetic of the training steps on every device: "fp32" (IEEE float32,
    no TF32 on GPUs), or the GPU speed options "tf32" and "bf16" (autocast); it is part of the
    key, so a GPU and a CPU build the same model unless asked otherwise.
    """

    dataset: str
    model: str
    model_options: dict = field(default_factory=dict)
    epochs: int = 5
    batch_size: int = 128
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "onecycle"
    label_smoothing: float = 0.0
    augment: bool = False  # random crop + flip (CIFAR-10 practice)
    train_subset: int | None = None  # None: the whole training split
    seed: int = 0
    method: str = "standard"
    method_params: dict = field(default_factory=dict)
    init: TrainConfig | None = None
    monitor: int = 0
    eval_subset: int | None = 2000  # test examples for the metrics stored in the checkpoint
    precision: str = "fp32"

    def __post_init__(self):
        dataset_spec(self.dataset)
        opts = model_options(self.model)
        unknown = set(self.model_options) - set(opts)
        if unknown:
            raise InputError(f"unknown option(s) {sorted(unknown)} for model {self.model!r}; valid: {opts}")
        types = {"epochs": int, "batch_size": int, "seed": int, "lr": float, "momentum": float,
                 "weight_decay": float, "label_smoothing": float, "augment": bool, "monitor": int}
        for name, tp in types.items():
            object.__setattr__(self, name, coerce(getattr(self, name), tp, f"TrainConfig.{name}"))
        for name in ("train_subset", "eval_subset"):
            v = getattr(self, name)
            if v is not None and coerce(v, int, f"TrainConfig.{name}") < 1:
                raise InputError(f"TrainConfig.{name} must be a positive int or None (all), got {v!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise InputError("epochs and batch_size must be positive")
        if not self.lr > 0:
            raise InputError(f"TrainConfig.lr (the peak learning rate) must be > 0, got {self.lr}")
        if not 0 <= self.momentum < 1:
            raise InputError(f"TrainConfig.momentum must be in [0, 1), got {self.momentum}")
        if self.weight_decay < 0:
            raise InputError(f"TrainConfig.weight_decay must be >= 0, got {self.weight_decay}")
        if not 0 <= self.label_smoothing < 1:
            raise InputError(f"TrainConfig.label_smoothing must be in [0, 1), got {self.label_smoothing}")
        check_choice(self.schedule, SCHEDULES, "schedule")
        check_choice(self.precision, PRECISIONS, "precision")
        method = get_method(self.method)
        method.resolve(self.method_params)  # names, types, ranges, required ε
        if method.check_model is not None:  # e.g. IBP on a VGG with batch norm: said now, not 14 s into training
            method.check_model(build_model(self.model, self.dataset, **self.model_options))
        if self.monitor < 0:
            raise InputError(f"TrainConfig.monitor must be >= 0, got {self.monitor}")
        if self.monitor and method.threat(self.method_params) is None:
            raise InputError(f"monitor measures PGD accuracy in the method's threat model; {self.method!r} "
                             "has none (use monitor=0)")
        if self.init is not None:
            if not isinstance(self.init, TrainConfig):
                raise InputError(f"init must be a TrainConfig, got {type(self.init).__name__}")
            same = (self.init.dataset, self.init.model, self.init.model_options)
            if same != (self.dataset, self.model, self.model_options):
                raise InputError(f"init trains {same}; fine-tuning needs the same dataset, model and options "
                                 f"as {(self.dataset, self.model, self.model_options)}")

    def to_dict(self) -> dict:
        """Every field, as plain data (what the key hashes)."""
        return dataclasses.asdict(self)

    def __hash__(self):  # dict fields: hash the configuration key, consistent with ==
        return hash(self.key)

    @property
    def key(self) -> str:
        """The configuration's cache key: a hash of every field and the checkpoint format."""
        return config_key({"format": CHECKPOINT_FORMAT, **self.to_dict()})

    @property
    def params(self) -> dict:
        """The method's parameters with every default filled in."""
        return METHODS[self.method].resolve(self.method_params)

    @property
    def threat(self) -> ThreatModel | None:
        """The threat model the method trains against (None for standard and noise training)."""
        return METHODS[self.method].threat(self.method_params)

    def checkpoint_path(self, root=None) -> Path:
        """Where the checkpoint of this configuration lives under the cache ``root`` (default: the cache)."""
        tag = "" if self.method == "standard" else f"-{self.method}"
        if self.threat is not None:
            tag += f"_{self.threat.norm}_{self.threat.eps:g}"
        if self.init is not None:
            tag += "-finetuned"
        return cache_root(root) / "models" / f"{self.dataset}-{self.model}{tag}-{self.key}.pt"
