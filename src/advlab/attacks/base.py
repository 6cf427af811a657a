"""What every attack shares: the registry, input checks, the model-mode guard and pass counting.

An attack is a plain function ``fn(model, x, y, *, threat, ..., targeted, target, generator)``
that returns the adversarial batch. :func:`register` records its kind and norms and wraps it, so
that every attack, however it is called, gets the same treatment in one place:

- its arguments are checked (images, labels, the threat model its kind needs, targeting);
- it sees the model through a :class:`CountingModel`, which counts forward and backward passes;
- it runs in eval mode, and the caller's modes are restored afterwards;
- the returned batch is evaluated once, so ``success`` and ``pred`` always describe the returned
  inputs themselves.
"""
from __future__ import annotations

import difflib
import functools
import inspect
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from ..checks import check_choice, check_images, check_label_range, check_labels, check_model_inputs
from ..errors import InputError
from ..models import eval_mode
from ..threat import NORMS, ThreatModel

# bounded: best input inside a given ε-ball; minimum-norm: smallest perturbation that fools, in a
# norm (an optional threat projects the result onto its ball); the black-box kinds see only
# scores (score-based) or labels (decision-based); transfer attacks craft on a surrogate.
#: The kinds of attack an :class:`AttackSpec` declares.
KINDS = ("bounded", "minimum-norm", "score-based", "decision-based", "transfer")
BLACK_BOX = ("score-based", "decision-based", "transfer")  # they receive a QueryOracle, never the model


@dataclass
class AttackResult:
    """What an attack returns.

    Attributes
    ----------
    x_adv : Tensor (N, C, H, W)
        Detached adversarial inputs, inside the threat model's ball and the pixel box (for
        minimum-norm attacks without a threat, inside the pixel box).
    success : Tensor (N,) bool
        Whether the returned input fools the model (misclassified, or classified as the target).
    pred : Tensor (N,) int64
        The model's prediction on the returned input.
    forwards, backwards : int
        Forward and backward passes the attack spent, counted in examples (a pass over a batch of
        128 counts 128), so ``forwards / N`` is the cost per example. The final evaluation of the
        returned batch is one of the forwards.
    queries : Tensor (N,) int64 or None
        Black-box attacks: the queries each example cost (the final evaluation is not a query).
    """

    x_adv: torch.Tensor
    success: torch.Tensor
    pred: torch.Tensor
    forwards: int
    backwards: int
    queries: torch.Tensor | None = None

    @property
    def passes_per_example(self) -> tuple[float, float]:
        """Forward and backward passes the attack spent per example, ``(forwards, backwards)``."""
        n = self.x_adv.shape[0]
        return self.forwards / n, self.backwards / n


class CountingModel:
    """The model as an attack sees it: passes counted in examples, labels checked on first use.

    A forward pass counts its batch size; a backward pass counts the batch size of the input whose
    gradient it computes (a hook on that input), so k gradient calls through one retained graph
    count k backward passes.
    """

    def __init__(self, model, labels: torch.Tensor | None = None):
        self.model = model
        self.forwards = 0
        self.backwards = 0
        self._labels = labels

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)
        self.forwards += x.shape[0]
        if x.requires_grad and torch.is_grad_enabled():
            x.register_hook(self._count_backward)
        if self._labels is not None:  # the number of classes is known after the first pass
            check_label_range(self._labels, logits.shape[1])
            self._labels = None
        return logits

    def _count_backward(self, grad):
        self.backwards += grad.shape[0]


@dataclass(frozen=True)
class AttackSpec:
    """A registered attack: its function, kind, supported norms and whether it can be targeted."""

    name: str
    fn: Callable[..., AttackResult]
    kind: str
    norms: tuple[str, ...]
    targeted: bool
    outputs: tuple[str, ...] = ()  # black-box attacks: the oracle outputs they can work with
    scaled: bool = False  # works in a threat model with per-channel units (ThreatModel.scale)

    @property
    def needs_threat(self) -> bool:
        """Bounded and score-based attacks work inside an ε-ball; an attack with no norms (the
        one-pixel attack's L0 budget) brings its own threat model as parameters."""
        return self.kind not in ("minimum-norm", "decision-based") and bool(self.norms)

    @property
    def black_box(self) -> bool:
        """Whether the attack sees the model only through queries (score- or decision-based)."""
        return self.kind in BLACK_BOX

    def params(self) -> dict:
        """Keyword parameters and their defaults (the positional model, x, y excluded)."""
        sig = inspect.signature(self.fn)
        return {k: p.default for k, p in sig.parameters.items() if p.kind is p.KEYWORD_ONLY}

    def check_params(self, params) -> None:
        """Refuse parameter names the attack does not take, listing the valid ones."""
        valid = self.params()
        unknown = set(params) - set(valid)
        if unknown:
            near = sorted({m for u in unknown for m in difflib.get_close_matches(u, valid, n=2)})
            hint = f" (did you mean {', '.join(near)}?)" if near else ""
            raise InputError(f"unknown parameter(s) {sorted(unknown)} for attack {self.name!r}{hint}; "
                             f"valid: {sorted(valid)}")

    def norm_for(self, threat: ThreatModel | None, params: dict) -> str:
        """The norm the attack's perturbations are measured in: the threat's, else its ``norm`` parameter."""
        if threat is not None:
            return threat.norm
        return params.get("norm") or self.params().get("norm") or (self.norms[0] if self.norms else None)


#: Every registered attack by the name :func:`run_attack` and the chapters use (``fgsm``, ``pgd``, ``apgd``, ...).
ATTACKS: dict[str, AttackSpec] = {}


class Oracle:
    """What a black-box attack receives instead of the model; :class:`~advlab.attacks.blackbox.QueryOracle`
    implements it. The framework resets its per-example counts before the attack, reads ``queries``
    after it, and asks ``final_labels`` for the labels of the inputs the attack returns (the
    framework's check of success, not one of the attacker's queries)."""

    output: str
    queries: torch.Tensor

    def reset(self, n: int, device, labels: torch.Tensor | None = None) -> None:
        raise NotImplementedError

    def final_labels(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


def check_attack_inputs(spec: AttackSpec, model, x, y, threat, targeted, target) -> None:
    """Validate the arguments every attack shares, with messages that name the attack."""
    if spec.black_box:
        if not isinstance(model, Oracle):
            raise InputError(f"{spec.name} is a {spec.kind} black-box attack: pass the model inside "
                             f"QueryOracle(model, output=..., budget=...), got {type(model).__name__}")
        if model.output not in spec.outputs:
            raise InputError(f"{spec.name} needs an oracle answering {' or '.join(spec.outputs)}; "
                             f"this one answers {model.output!r}")
    elif isinstance(model, Oracle):
        raise InputError(f"{spec.name} is a {spec.kind} attack: it needs the model itself, not a QueryOracle")
    elif not callable(model):
        raise InputError(f"model must be a callable mapping images to logits, got {type(model).__name__}")
    check_images(x)
    if not isinstance(model, Oracle):  # the oracle says it at the first query (its model stays sealed)
        check_model_inputs(model, x)
    check_labels(y, x)
    if threat is None:
        if spec.needs_threat:
            raise InputError(f"{spec.name} is a {spec.kind} attack: pass threat=ThreatModel(norm, eps)")
    elif not isinstance(threat, ThreatModel):
        raise InputError(f"threat must be an advlab.threat.ThreatModel, got {type(threat).__name__}")
    elif threat.norm not in spec.norms:
        raise InputError(f"{spec.name} supports the norms {list(spec.norms)}, got a {threat.norm} threat model")
    elif threat.scale is not None and not spec.scaled:
        raise InputError(f"{spec.name} works in pixel units only; a threat model with per-channel units (scale) is "
                         f"supported by {', '.join(sorted(n for n, a in ATTACKS.items() if a.scaled))}")
    if targeted:
        if not spec.targeted:
            raise InputError(f"{spec.name} is untargeted only")
        if target is None:
            raise InputError("targeted=True needs target labels: pass target=<tensor of shape (N,)>")
        check_labels(target, x, name="target")
    elif target is not None:
        raise InputError("target labels were given but targeted=False; pass targeted=True for a targeted attack")


def register(name: str, *, kind: str, norms: tuple[str, ...] = NORMS, targeted: bool = True,
             outputs: tuple[str, ...] = (), scaled: bool = False):
    """Register ``fn`` under ``name`` and wrap it with the shared checks, counting and evaluation.

    ``norms`` lists the norms the attack supports; for a minimum-norm attack the first is the one
    it minimises when neither a threat nor a ``norm`` argument says otherwise.

    ``fn(model, x, y, *, threat, targeted, target, ...)`` receives a :class:`CountingModel` in
    eval mode (a black-box attack: the caller's ``QueryOracle``, its counts reset) and int64
    labels, and returns the adversarial batch. ``outputs`` lists the oracle outputs a black-box
    attack can work with.
    """
    check_choice(kind, KINDS, "attack kind")
    if (kind in BLACK_BOX) != bool(outputs):
        raise InputError(f"attack {name!r}: outputs are given for black-box attacks, and only for them")
    for n in norms:
        check_choice(n, NORMS, "norm")

    def deco(fn):
        @functools.wraps(fn)
        def attack(model, x: torch.Tensor, y: torch.Tensor, *, threat: ThreatModel | None = None,
                   targeted: bool = False, target: torch.Tensor | None = None, **params) -> AttackResult:
            spec = ATTACKS[name]
            spec.check_params(params)  # pgd(..., step=3): the valid names, not Python's TypeError
            check_attack_inputs(spec, model, x, y, threat, targeted, target)
            y = y.long()
            target = target.long() if target is not None else None
            if spec.black_box:
                model.reset(x.shape[0], x.device, labels=target if targeted else y)
                x_adv = fn(model, x, y, threat=threat, targeted=targeted, target=target, **params).detach()
                pred = model.final_labels(x_adv)  # the framework's check, not one of the attacker's queries
                queries = model.queries.clone()
                forwards, backwards = int(queries.sum()) + x.shape[0], 0
            else:
                counted = CountingModel(model, target if targeted else y)
                with eval_mode(model):
                    x_adv = fn(counted, x, y, threat=threat, targeted=targeted, target=target, **params).detach()
                    with torch.no_grad():  # the flags describe the returned inputs themselves
                        pred = counted(x_adv).argmax(1)
                queries, forwards, backwards = None, counted.forwards, counted.backwards
            success = pred == target if targeted else pred != y
            return AttackResult(x_adv, success, pred, forwards, backwards, queries)

        ATTACKS[name] = AttackSpec(name, attack, kind, tuple(norms), targeted, tuple(outputs), scaled)
        return attack
    return deco


def get_attack(name: str) -> AttackSpec:
    """The attack registered under ``name``; unknown names list the valid ones."""
    check_choice(name, ATTACKS, "attack")
    return ATTACKS[name]


def attack_params(name: str) -> dict:
    """Keyword parameters of an attack and their defaults (the positional model, x, y excluded)."""
    return get_attack(name).params()


def run_attack(name: str, model, x, y, **params) -> AttackResult:
    """Call the attack ``name`` with keyword ``params``, checking the names first."""
    spec = get_attack(name)
    spec.check_params(params)
    return spec.fn(model, x, y, **params)


# -- losses and gradients -----------------------------------------------------------------------
def loss_and_grad(model, x_adv, labels, targeted, loss: str = "ce"):
    """Per-example loss the attacker ascends, its input gradient, and the logits (one fwd+bwd).

    The loss is summed over the batch so each example's gradient is its own (no 1/N scaling).
    Targeted attacks ascend the negative cross-entropy of the target class.
    """
    return objective_and_grad(model, x_adv, lambda logits: attacker_loss(logits, labels, targeted, loss))


def objective_and_grad(model, x_adv, objective):
    """``objective(logits)`` (per example), its input gradient and the logits, in one fwd+bwd; a model
    without a gradient path gives a zero gradient."""
    x_adv = x_adv.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x_adv)
        per_example = objective(logits)
        # a model whose output does not depend differentiably on its input (a threshold on a
        # detached input) gives no gradient: zero, as far as an attack can tell, not a crash
        grad = torch.autograd.grad(per_example.sum(), x_adv, allow_unused=True)[0] \
            if per_example.requires_grad else None
    return per_example.detach(), torch.zeros_like(x_adv) if grad is None else grad, logits.detach()


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

