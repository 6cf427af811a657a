"""Transfer attacks: adversarial examples crafted white-box on a surrogate, replayed on the target."""
from __future__ import annotations

import torch

from ..errors import InputError
from ..threat import ThreatModel
from .base import get_attack, register


@register("transfer", kind="transfer", outputs=("logits", "probs", "top1", "label"))
def transfer(oracle, x: torch.Tensor, y: torch.Tensor, *, threat: ThreatModel, surrogate=None,
             source_attack: str = "mifgsm", source_params: dict | None = None, targeted: bool = False,
             target: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Attack ``surrogate`` with a white-box attack and return its examples for the target.

    Threat model: ``threat``; the target model is never queried (0 queries per example): the
    attacker trained their own surrogate (another architecture or another seed) and relies on
    adversarial examples transferring (Szegedy et al. 2014; Papernot et al. 2017).

    Parameters
    ----------
    oracle : QueryOracle of the target (only the framework's final evaluation reads it)
    surrogate : callable, images -> logits, the attacker's own model
    source_attack : str, default "mifgsm" (a bounded white-box attack in the registry)
    source_params : dict, its parameters (the threat, targeting and generator are passed on)
    """
    if surrogate is None or not callable(surrogate):
        raise InputError("transfer needs surrogate=<the attacker's own model>")
    spec = get_attack(source_attack)
    if spec.kind != "bounded":
        raise InputError(f"transfer crafts with a bounded white-box attack, got {source_attack!r} ({spec.kind})")
    params = dict(source_params or {})
    spec.check_params(params)
    return spec.fn(surrogate, x, y, threat=threat, targeted=targeted, target=target, generator=generator,
                   **params).x_adv
