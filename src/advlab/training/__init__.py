"""Training with SGD + momentum, a method plug-in per config, cached by configuration.

``load_or_train(config)`` returns the model for a :class:`TrainConfig`, training it only when no
valid checkpoint for exactly that configuration exists under the cache root. The training method
(standard, noise, PGD, FGSM, FGSM-RS, mixed L2+L∞, TRADES, IBP, DeepFool) is one config field,
``method``, with its parameters in ``method_params`` (``advlab.training.methods``).

Rooms: ``config`` (TrainConfig), ``loop`` (the training loop, DDP), ``monitor`` (held-out PGD
accuracy per epoch, catastrophic overfitting), ``checkpoint`` (load or train through the artifact
store), ``methods`` (the plug-ins), ``denoiser`` (the DnCNN's own loop, stored the same way).
"""
from .checkpoint import load_models, load_or_train, weights_digest
from .config import CHECKPOINT_FORMAT, SCHEDULES, TrainConfig
from .loop import train
from .denoiser import DenoiserConfig, load_or_train_denoiser
from .methods import METHODS, Method, get_method
from .monitor import CO_DROP, CO_FLOOR, CO_GAP, MONITOR_STEPS, overfitting_epochs

__all__ = ["CHECKPOINT_FORMAT", "CO_DROP", "CO_FLOOR", "CO_GAP", "METHODS", "MONITOR_STEPS", "SCHEDULES",
           "DenoiserConfig", "Method", "TrainConfig", "get_method", "load_or_train_denoiser", "load_models",
           "load_or_train", "overfitting_epochs", "train", "weights_digest"]
