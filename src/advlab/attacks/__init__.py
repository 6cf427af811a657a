"""Attacks: plain functions ``attack(model, x, y, *, threat, ..., generator=None) -> AttackResult``.

``ATTACKS`` maps the names papermill and the CLI use to an :class:`AttackSpec` (the function, its
kind and the norms it supports); ``run_attack(name, ...)`` checks parameter names against the
function's signature. Black-box attacks live in ``attacks/blackbox/``, register the same way, and
receive the model only inside a :class:`QueryOracle`.
"""
from .base import ATTACKS, KINDS, AttackResult, AttackSpec, CountingModel, attack_params, get_attack, run_attack
from .fgsm import fgsm
from .pgd import pgd
from .deepfool import deepfool
from .cw import carlini_wagner_l2
from .apgd import apgd, apgd_t
from .mifgsm import mifgsm
from .blackbox import (QueryBudgetError, QueryOracle, gaussian_noise, hop_skip_jump, nattack, nes, one_pixel,
                       square)
from .transfer import transfer

__all__ = ["apgd", "apgd_t", "ATTACKS", "AttackResult", "AttackSpec", "attack_params", "carlini_wagner_l2",
           "CountingModel", "deepfool", "fgsm", "gaussian_noise", "get_attack", "KINDS", "mifgsm", "nes", "pgd",
           "QueryBudgetError",
           "hop_skip_jump", "nattack", "one_pixel", "QueryOracle", "run_attack", "square", "transfer"]
