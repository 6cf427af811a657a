"""Attacks: plain functions ``attack(model, x, y, *, threat, ..., generator=None) -> AttackResult``.

``ATTACKS`` maps the names papermill and the CLI use to the functions; ``run_attack(name, ...)``
checks parameter names against the function's signature.
"""
from .base import ATTACKS, AttackResult, attack_params, eval_mode, get_attack, run_attack
from .fgsm import fgsm
from .pgd import pgd
from .deepfool import deepfool
from .cw import carlini_wagner_l2
from .apgd import apgd

__all__ = ["apgd", "ATTACKS", "AttackResult", "attack_params", "carlini_wagner_l2", "deepfool", "eval_mode", "fgsm", "get_attack", "pgd", "run_attack"]
