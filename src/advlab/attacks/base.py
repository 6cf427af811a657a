"""What every attack shares: input checks, the model-mode guard, pass counting, the registry."""
from __future__ import annotations

import inspect
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import check_choice, check_images, check_labels
from ..errors import InputError
from ..threat import ThreatModel


@dataclass
class AttackResult:
    """What an attack returns.

    Attributes
    ----------
    x_adv : Tensor (N, C, H, W)
        Detached adversarial inputs, inside the threat model's ball and the pixel box (for
        minimum-norm attacks, which have no ε, inside the pixel box).
    success : Tensor (N,) bool or None
        Whether the returned input fools the model (misclassified, or classified as the target),
        where the attack evaluated it; None where it did not need to (FGSM, single-restart PGD).
    forwards, backwards : int
        Forward and backward passes the attack spent, counted in examples (a pass over a batch of
        128 counts 128), so ``forwards / N`` is the cost per example.
    """

    x_adv: torch.Tensor
    success: torch.Tensor | None
    forwards: int
    backwards: int

    @property
    def passes_per_example(self) -> tuple[float, float]:
        n = self.x_adv.shape[0]
        return self.forwards / n, self.backwards / n


class PassCounter:
    """Counts forward and backward passes in examples."""

    def __init__(self):
        self.forwards = 0
        self.backwards = 0

    def result(self, x_adv, success=None) -> AttackResult:
        return AttackResult(x_adv.detach(), success, self.forwards, self.backwards)


@contextmanager
def eval_mode(model: nn.Module):
    """Run the model in eval mode and restore every submodule's own mode afterwards.

    Attacks never update batch-norm statistics or draw dropout masks: the attacked function is
    the deployed (eval-mode) model, whatever mode the caller had it in.
    """
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training


def check_attack_inputs(model, x, y, threat, *, targeted=False, target=None) -> torch.Tensor:
    """Validate the common arguments; return the labels the loss is taken against.

    Untargeted attacks move away from ``y``; targeted attacks move toward ``target``.
    """
    if not isinstance(model, nn.Module) and not callable(model):
        raise InputError(f"model must be a callable mapping images to logits, got {type(model).__name__}")
    check_images(x)
    check_labels(y, x)
    if threat is not None and not isinstance(threat, ThreatModel):
        raise InputError(f"threat must be an advlab.threat.ThreatModel, got {type(threat).__name__}")
    if targeted:
        if target is None:
            raise InputError("targeted=True needs target labels: pass target=<tensor of shape (N,)>")
        check_labels(target, x, name="target")
        return target
    if target is not None:
        raise InputError("target labels were given but targeted=False; pass targeted=True for a targeted attack")
    return y


def loss_and_grad(model, x_adv, labels, targeted, counter: PassCounter, loss: str = "ce"):
    """Per-example loss the attacker ascends, its input gradient, and the logits (one fwd+bwd).

    The loss is summed over the batch so each example's gradient is its own (no 1/N scaling).
    Targeted attacks ascend the negative cross-entropy of the target class.
    """
    x_adv = x_adv.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x_adv)
        per_example = attacker_loss(logits, labels, targeted, loss)
        grad, = torch.autograd.grad(per_example.sum(), x_adv)
    counter.forwards += x_adv.shape[0]
    counter.backwards += x_adv.shape[0]
    return per_example.detach(), grad, logits.detach()


def ce_loss(logits, labels):
    return F.cross_entropy(logits, labels, reduction="none")


def dlr_loss(logits, labels):
    """Difference of logits ratio (Croce & Hein 2020), untargeted; shift- and scale-invariant."""
    srt, _ = logits.sort(dim=1)
    z_y = logits.gather(1, labels[:, None]).squeeze(1)
    is_top = (srt[:, -1] == z_y)
    z_other = torch.where(is_top, srt[:, -2], srt[:, -1])
    return -(z_y - z_other) / (srt[:, -1] - srt[:, -3] + 1e-12)


LOSSES = {"ce": ce_loss, "dlr": dlr_loss}


def attacker_loss(logits, labels, targeted, loss="ce"):
    """The per-example objective the attacker maximises."""
    value = LOSSES[loss](logits, labels)
    return -value if targeted else value


def check_loss(loss: str, targeted: bool) -> None:
    """A known loss name; DLR only untargeted (its targeted variant is a different loss)."""
    check_choice(loss, LOSSES, "loss")
    if loss == "dlr" and targeted:
        raise InputError("the DLR loss here is untargeted; use loss='ce' for a targeted attack")


def fooled(logits, y, targeted, target=None) -> torch.Tensor:
    pred = logits.argmax(1)
    return pred == target if targeted else pred != y


# -- registry -----------------------------------------------------------------------------------
ATTACKS: dict[str, Callable[..., AttackResult]] = {}


def register(name: str):
    def deco(fn):
        ATTACKS[name] = fn
        return fn
    return deco


def get_attack(name: str) -> Callable[..., AttackResult]:
    """The attack function registered under ``name``; unknown names list the valid ones."""
    check_choice(name, ATTACKS, "attack")
    return ATTACKS[name]


def attack_params(name: str) -> dict:
    """Keyword parameters of an attack and their defaults (the positional model, x, y excluded)."""
    sig = inspect.signature(get_attack(name))
    return {k: p.default for k, p in sig.parameters.items() if p.kind is p.KEYWORD_ONLY}


def run_attack(name: str, model, x, y, **params) -> AttackResult:
    """Call the attack ``name`` with keyword ``params``, checking the names first."""
    valid = attack_params(name)
    unknown = set(params) - set(valid)
    if unknown:
        raise InputError(f"unknown parameter(s) {sorted(unknown)} for attack {name!r}; valid: {sorted(valid)}")
    return get_attack(name)(model, x, y, **params)
