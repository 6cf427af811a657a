"""Training methods as plug-ins: one name in ``TrainConfig.method``, its parameters in ``method_params``.

A method turns a training batch into the loss the optimiser minimises. Adversarial methods craft
their inputs with the model in eval mode (batch-norm statistics are updated by the training
forward pass only, as in TRADES' reference code) and the model's parameters receive no gradient
from the inner maximisation: it differentiates with respect to the inputs only.

Every adversarial method takes ``fraction``, the share of each batch that is perturbed (the VGG-19
report trains on half-perturbed batches, Madry et al. on fully perturbed ones); the loss is the
mean cross-entropy over the whole, partly perturbed batch.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from ..attacks import run_attack
from ..attacks.base import loss_and_grad
from ..certify.bounds import margin_lower
from ..certify.graph import trace
from ..checks import check_choice
from ..config import coerce
from ..errors import InputError
from ..models import eval_mode
from ..threat import NORMS, ThreatModel
from ..rng import randn

REQUIRED = object()


@dataclass
class StepOut:
    """What a method returns for one batch: the loss to minimise, the logits of the inputs it
    trained on (for the running accuracy), the mean cross-entropy on clean and on perturbed
    examples where the step computed them (``None`` otherwise), and the passes it spent in
    examples (forward, backward; training passes included)."""

    loss: torch.Tensor
    logits: torch.Tensor
    clean_loss: torch.Tensor | None
    adv_loss: torch.Tensor | None
    forwards: int
    backwards: int


@dataclass(frozen=True)
class Method:
    """A training method: ``step`` computes one batch's loss, ``params`` declares its parameters (type,
    default or REQUIRED, choices), ``adversarial`` says whether it attacks during training, and
    ``check_model`` refuses a model it cannot train. :data:`~advlab.training.METHODS` holds the registered ones."""

    name: str
    step: Callable
    params: dict = field(default_factory=dict)  # name -> (type, default or REQUIRED, choices or None)
    adversarial: bool = True
    doc: str = ""
    check_model: Callable | None = None  # fn(model in training mode): raise InputError if the method cannot train it

    def resolve(self, params: dict) -> dict:
        """Defaults filled in, names, types and ranges checked; an error names what is valid."""
        if not isinstance(params, dict):
            raise InputError(f"method_params must be a dict, got {type(params).__name__}")
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            valid = ", ".join(self.params) or "none"
            raise InputError(f"parameter(s) {unknown} do not apply to training method {self.name!r}; "
                             f"its parameters: {valid}")
        out = {}
        for name, (tp, default, choices) in self.params.items():
            if name not in params:
                if default is REQUIRED:
                    raise InputError(f"training method {self.name!r} needs {name} ({tp.__name__}); "
                                     f"e.g. method_params={{'{name}': ...}}")
                out[name] = default
                continue
            v = params[name]
            out[name] = None if v is None else coerce(v, tp, f"{self.name}.{name}")
            if choices is not None:
                check_choice(out[name], choices, f"{self.name}.{name}")
        for name in ("eps", "eps_linf", "eps_l2", "sigma"):
            if name in out and (not math.isfinite(out[name]) or out[name] < 0):
                raise InputError(f"{self.name}.{name} must be a finite number >= 0, got {out[name]}")
        if "fraction" in out and not 0 <= out["fraction"] <= 1:
            raise InputError(f"{self.name}.fraction (the adversarial share of each batch) must be in [0, 1], "
                             f"got {out['fraction']}")
        if out.get("steps", 1) < 1:
            raise InputError(f"{self.name}.steps must be >= 1, got {out['steps']}")
        for name in ("kappa", "warmup", "ramp", "beta_start", "beta_end"):
            if name in out and not 0 <= out[name] <= 1:
                raise InputError(f"{self.name}.{name} must be in [0, 1], got {out[name]}")
        if out.get("warmup", 0) + out.get("ramp", 0) > 1:
            raise InputError(f"{self.name}: warmup + ramp (shares of the training steps) must not exceed 1, "
                             f"got {out['warmup']} + {out['ramp']}")
        for name in ("step_size", "beta", "scale"):
            if out.get(name) is not None and not out[name] > 0:
                raise InputError(f"{self.name}.{name} must be > 0, got {out[name]}")
        return out

    def threat(self, params: dict) -> ThreatModel | None:
        """The threat model the method trains against (for mixed training: its L∞ ball)."""
        p = self.resolve(params)
        if "eps_linf" in p:
            return ThreatModel("linf", p["eps_linf"])
        return ThreatModel(p["norm"], p["eps"]) if "eps" in p else None


#: The training methods by name (``standard``, ``pgd``, ``trades``, ``ibp``, ...): each computes one step's loss.
METHODS: dict[str, Method] = {}


def register_method(name: str, params: dict, adversarial: bool = True, check_model: Callable | None = None):
    def deco(fn):
        METHODS[name] = Method(name, fn, params, adversarial, (fn.__doc__ or "").strip().split("\n")[0],
                               check_model)
        return fn
    return deco


def _bounds_apply(model) -> None:
    """IBP trains through interval bounds of the training-mode network: every layer must be one
    bound propagation supports, and batch norm (batch statistics in training) is not."""
    bn = next((n for n, m in model.named_modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)), None)
    why = None
    if bn is not None:
        why = f"it has batch norm (at {bn}), which normalises with batch statistics while training"
    else:
        try:
            trace(model.eval())
        except InputError as e:
            why = str(e)
    if why:
        raise InputError(f"IBP training cannot bound this network: {why}. It trains ReLU networks without "
                         "batch norm (of advlab's: mlp, conv_small, small_cnn, lenet5)")


def get_method(name: str) -> Method:
    """The registered training method ``name``; unknown names list the valid ones."""
    check_choice(name, METHODS, "training method")
    return METHODS[name]


# -- inner maximisation ---------------------------------------------------------------------------
def pgd_inner(model, x, y, threat: ThreatModel, steps: int, step_size: float, random_start: bool,
              generator) -> torch.Tensor:
    """Madry et al.'s inner maximisation: the last PGD iterate on the cross-entropy (eval mode).

    Training needs no per-example bookkeeping of the best iterate, nor a final evaluation: the
    cost is exactly ``steps`` forward + input-backward passes.
    """
    x_adv = threat.random_start(x, generator) if random_start else x
    with eval_mode(model):
        for _ in range(steps):
            _, grad, _ = loss_and_grad(model, x_adv, y, False)
            x_adv = threat.project(x, threat.step(x_adv, grad, step_size))
    return x_adv.detach()


def _split(x, y, fraction):
    k = round(fraction * x.shape[0])
    return k, x[:k], y[:k]


def _ce_step(model, x, y, x_adv, k, extra_fwd, extra_bwd, label_smoothing):
    """Train on the batch with its first k examples replaced by ``x_adv``; report both losses."""
    inputs = torch.cat([x_adv, x[k:]]) if k < x.shape[0] else x_adv
    logits = model(inputs)
    per = F.cross_entropy(logits, y, reduction="none", label_smoothing=label_smoothing)
    adv = per[:k].mean().detach() if k else None
    clean = per[k:].mean().detach() if k < x.shape[0] else None
    n = x.shape[0]
    return StepOut(per.mean(), logits, clean, adv, extra_fwd + n, extra_bwd + n)


_FRACTION = {"fraction": (float, 1.0, None)}


@register_method("standard", {}, adversarial=False)
def standard(model, x, y, p, *, generator, step, total, label_smoothing):
    """Empirical risk minimisation: cross-entropy on clean inputs."""
    logits = model(x)
    loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
    return StepOut(loss, logits, loss.detach(), None, x.shape[0], x.shape[0])


@register_method("noise", {"sigma": (float, REQUIRED, None)}, adversarial=False)
def noise(model, x, y, p, *, generator, step, total, label_smoothing):
    """Gaussian noise augmentation x + σ·N(0, I), not clipped (Cohen et al. 2019; the reports'
    randomized network)."""
    noisy = x + p["sigma"] * randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    logits = model(noisy)
    loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
    return StepOut(loss, logits, None, loss.detach(), x.shape[0], x.shape[0])


@register_method("pgd", {"norm": (str, REQUIRED, NORMS), "eps": (float, REQUIRED, None), "steps": (int, 10, None),
                         "step_size": (float, None, None), "random_start": (bool, True, None), **_FRACTION})
def pgd(model, x, y, p, *, generator, step, total, label_smoothing):
    """PGD adversarial training (Madry et al. 2018): step size 2.5·ε/steps unless given."""
    threat = ThreatModel(p["norm"], p["eps"])
    k, xa, ya = _split(x, y, p["fraction"])
    size = p["step_size"] or 2.5 * p["eps"] / p["steps"]
    x_adv = pgd_inner(model, xa, ya, threat, p["steps"], size, p["random_start"], generator) if k else xa
    spent = p["steps"] * k if k else 0
    return _ce_step(model, x, y, x_adv, k, spent, spent, label_smoothing)


@register_method("fgsm", {"norm": (str, "linf", NORMS), "eps": (float, REQUIRED, None), **_FRACTION})
def fgsm(model, x, y, p, *, generator, step, total, label_smoothing):
    """FGSM training (Goodfellow et al. 2015): one step of length ε from the clean input."""
    threat = ThreatModel(p["norm"], p["eps"])
    k, xa, ya = _split(x, y, p["fraction"])
    x_adv = pgd_inner(model, xa, ya, threat, 1, p["eps"], False, generator) if k else xa
    return _ce_step(model, x, y, x_adv, k, k, k, label_smoothing)


@register_method("fgsm_rs", {"norm": (str, "linf", NORMS), "eps": (float, REQUIRED, None),
                             "step_size": (float, None, None), **_FRACTION})
def fgsm_rs(model, x, y, p, *, generator, step, total, label_smoothing):
    """Fast adversarial training (Wong, Rice & Kolter 2020): random start in the ball, one step of
    1.25·ε (unless given), projection."""
    threat = ThreatModel(p["norm"], p["eps"])
    k, xa, ya = _split(x, y, p["fraction"])
    size = p["step_size"] or 1.25 * p["eps"]
    x_adv = pgd_inner(model, xa, ya, threat, 1, size, True, generator) if k else xa
    return _ce_step(model, x, y, x_adv, k, k, k, label_smoothing)


@register_method("mixed", {"eps_linf": (float, REQUIRED, None), "eps_l2": (float, REQUIRED, None),
                           "steps": (int, 10, None), "strategy": (str, "max", ("max", "alternate")), **_FRACTION})
def mixed(model, x, y, p, *, generator, step, total, label_smoothing):
    """Training against the union of an L∞ and an L2 ball (Tramèr & Boneh 2019): ``max`` trains on
    the PGD example of higher loss per example (both attacks every step); ``alternate`` perturbs
    even steps in L∞ and odd steps in L2 (half the cost)."""
    threats = [ThreatModel("linf", p["eps_linf"]), ThreatModel("l2", p["eps_l2"])]
    k, xa, ya = _split(x, y, p["fraction"])
    steps = p["steps"]
    if not k:
        return _ce_step(model, x, y, xa, 0, 0, 0, label_smoothing)
    if p["strategy"] == "alternate":
        t = threats[step % 2]
        x_adv = pgd_inner(model, xa, ya, t, steps, 2.5 * t.eps / steps, True, generator)
        return _ce_step(model, x, y, x_adv, k, steps * k, steps * k, label_smoothing)
    cands = [pgd_inner(model, xa, ya, t, steps, 2.5 * t.eps / steps, True, generator) for t in threats]
    with torch.no_grad(), eval_mode(model):
        losses = [F.cross_entropy(model(c), ya, reduction="none") for c in cands]
    x_adv = torch.where((losses[0] >= losses[1]).view(-1, 1, 1, 1), cands[0], cands[1])
    return _ce_step(model, x, y, x_adv, k, 2 * steps * k + 2 * k, 2 * steps * k, label_smoothing)


@register_method("trades", {"norm": (str, "linf", NORMS), "eps": (float, REQUIRED, None), "beta": (float, 6.0, None),
                            "steps": (int, 10, None), "step_size": (float, None, None)})
def trades(model, x, y, p, *, generator, step, total, label_smoothing):
    """TRADES (Zhang et al. 2019): CE(f(x), y) + β·KL(f(x) ‖ f(x')), x' maximising the KL term by
    PGD from x + 0.001·N(0, I) (the reference code's start); step size 2.5·ε/steps unless given."""
    threat = ThreatModel(p["norm"], p["eps"])
    size = p["step_size"] or 2.5 * p["eps"] / p["steps"]
    start = x + 0.001 * randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    x_adv = threat.project(x, start)
    with eval_mode(model):
        with torch.no_grad():
            p_nat = F.softmax(model(x), 1)
        for _ in range(p["steps"]):
            x_adv = x_adv.detach().requires_grad_(True)
            with torch.enable_grad():
                kl = F.kl_div(F.log_softmax(model(x_adv), 1), p_nat, reduction="sum")
                grad, = torch.autograd.grad(kl, x_adv)
            x_adv = threat.project(x, threat.step(x_adv.detach(), grad, size))
    n = x.shape[0]
    logits = model(torch.cat([x, x_adv]))
    nat, adv = logits[:n], logits[n:]
    ce = F.cross_entropy(nat, y, label_smoothing=label_smoothing)
    robust = F.kl_div(F.log_softmax(adv, 1), F.softmax(nat, 1), reduction="batchmean")
    spent = p["steps"] * n
    with torch.no_grad():
        adv_ce = F.cross_entropy(adv, y)
    return StepOut(ce + p["beta"] * robust, nat, ce.detach(), adv_ce, spent + 3 * n, spent + 2 * n)


_BOUND_PARAMS = {"norm": (str, "linf", NORMS), "eps": (float, REQUIRED, None), "kappa": (float, 0.5, None),
                 "warmup": (float, 1 / 30, None), "ramp": (float, 1 / 6, None)}


def _ramp(p, step, total) -> float:
    """Progress t in [0, 1] of the ε ramp: 0 during the warm-up, then linear over ``ramp`` of the steps."""
    progress = step / total - p["warmup"]
    return min(1.0, max(0.0, progress / p["ramp"])) if p["ramp"] > 0 else float(progress >= 0)


def _bound_step(model, x, y, p, t, beta, label_smoothing):
    """κ·CE(f(x), y) + (1 − κ)·CE(ẑ, y) at ε_t = t·ε and κ_t = 1 − t(1 − κ), with ẑ the worst-case
    margins of β·CROWN-IBP + (1 − β)·IBP (β = 0: IBP alone)."""
    eps, kappa = t * p["eps"], 1 - t * (1 - p["kappa"])
    logits = model(x)
    ce = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
    n = x.shape[0]
    if eps == 0:
        return StepOut(ce, logits, ce.detach(), None, n, n)
    net = model.module if isinstance(model, DistributedDataParallel) else model  # bounds walk the network's layers
    threat = ThreatModel(p["norm"], eps)
    lower = margin_lower(net, x, y, threat, "ibp")
    passes = 3 * n  # the interval pass costs about two forward passes (centre and radius)
    if beta > 0:
        lower = beta * margin_lower(net, x, y, threat, "crown_ibp") + (1 - beta) * lower
        passes += 3 * n + logits.shape[1] * n  # CROWN's backward pass: one per specification row
    # the worst case of the margins z_y − z_j is the logit vector (0 for y, −lower_j for j)
    robust = F.cross_entropy(-lower, y)
    return StepOut(kappa * ce + (1 - kappa) * robust, logits, ce.detach(), robust.detach(), passes, passes)


@register_method("ibp", _BOUND_PARAMS, check_model=_bounds_apply)
def ibp(model, x, y, p, *, generator, step, total, label_smoothing):
    """IBP training (Gowal et al. 2018): κ·CE(f(x), y) + (1 − κ)·CE(ẑ, y), ẑ the worst-case margins of
    interval bound propagation at ε_t. ε_t = 0 and κ = 1 for the first ``warmup`` share of the steps,
    then ε_t ramps linearly to ε and κ to ``kappa`` over the next ``ramp`` share (defaults: Gowal et
    al.'s MNIST schedule, 2k warm-up and 10k ramp steps of 60k)."""
    return _bound_step(model, x, y, p, _ramp(p, step, total), 0.0, label_smoothing)


@register_method("crown_ibp", {**_BOUND_PARAMS, "beta_start": (float, 1.0, None), "beta_end": (float, 0.0, None)},
                 check_model=_bounds_apply)
def crown_ibp(model, x, y, p, *, generator, step, total, label_smoothing):
    """CROWN-IBP training (Zhang et al. 2020): IBP training's loss and schedule, with the margins'
    lower bound β·CROWN-IBP + (1 − β)·IBP; β moves linearly from ``beta_start`` to ``beta_end`` while
    ε ramps (the paper's MNIST setting: 1 → 0). CROWN-IBP's bound is CROWN's backward pass from IBP's
    intermediate bounds, tighter than IBP's early in training, when IBP's is loose."""
    t = _ramp(p, step, total)
    return _bound_step(model, x, y, p, t, p["beta_start"] + t * (p["beta_end"] - p["beta_start"]), label_smoothing)


@register_method("deepfool", {"steps": (int, 50, None), "overshoot": (float, 0.02, None), "scale": (float, 1.0, None),
                              **_FRACTION})
def deepfool(model, x, y, p, *, generator, step, total, label_smoothing):
    """Training on DeepFool's minimal L2 perturbations scaled by ``scale`` (the DeepFool paper's
    fine-tuning; scale > 1 is its over-sized-perturbation study), clipped to [0, 1]."""
    k, xa, ya = _split(x, y, p["fraction"])
    if not k:
        return _ce_step(model, x, y, xa, 0, 0, 0, label_smoothing)
    res = run_attack("deepfool", model, xa, ya, steps=p["steps"], overshoot=p["overshoot"])
    x_adv = (xa + p["scale"] * (res.x_adv - xa)).clamp(0, 1)
    return _ce_step(model, x, y, x_adv, k, res.forwards, res.backwards, label_smoothing)
