"""An automated gradient-masking audit: the sanity checks of an honest robustness evaluation.

Athalye, Carlini & Wagner (2018) and Carlini et al. (2019, "On Evaluating Adversarial
Robustness") list symptoms of a defense that hides gradients instead of removing adversarial
examples: single-step attacks beating iterative ones, black-box or transfer attacks beating
white-box ones, accuracy that does not reach zero when the budget covers the whole input box,
zero or non-finite gradients, a loss that does not rise along its own gradient, results that move
with the random draws of a randomized model, and non-differentiable stages that BPDA sees
through. :func:`gradient_masking_audit` runs each check on one model and returns a verdict
(``pass``, ``warn``, ``fail``, or ``n/a`` where the check does not apply) with its evidence.
"""
from __future__ import annotations

import copy
import math

import pandas as pd
import torch

from ..attacks.base import loss_and_grad
from ..checks import check_choice, check_positive, check_positive_int
from ..data import Dataset
from ..defenses import EOT, BitDepthReduction, GaussianNoise, bpda
from ..errors import InputError
from ..models import eval_mode, predict
from ..models.external import is_randomized as answers_vary
from ..threat import ThreatModel
from .rows import evaluate_attack

CHECKS = {
    "iterative": "iterative attacks beat single-step ones (PGD ≤ FGSM)",
    "convergence": "more steps and restarts change little (PGD-k ≈ PGD-5k with 3 restarts)",
    "black_box": "white-box attacks beat black-box ones (PGD ≤ Square)",
    "transfer": "white-box attacks beat transfer from a surrogate (PGD ≤ transfer)",
    "unbounded": "accuracy reaches ~0 when the ball covers the whole pixel box",
    "monotone": "accuracy falls monotonically in ε (PGD at ε/4, ε/2, ε, 2ε)",
    "gradients": "input gradients are finite and non-zero",
    "loss_ascent": "the loss rises along its own gradient (a step of ε/4)",
    "consistency": "the gradient agrees with finite differences of the loss along it",
    "draws": "randomized models: accuracy stable across the random draws",
    "eot": "randomized models: EOT changes little (plain PGD ≈ EOT-PGD)",
    "bpda": "non-differentiable stages: BPDA does not beat plain PGD",
}
PROBE_N = 16  # inputs the behavioural probes (randomness, masking stages) look at


def is_randomized(model, x: torch.Tensor) -> bool:
    """Whether ``model`` answers the same input differently from one call to the next (in eval
    mode): found by behaviour (:func:`advlab.models.external.is_randomized`), so a model that draws
    its randomness anywhere counts; advlab's :class:`~advlab.defenses.GaussianNoise` is recognised
    without calling it."""
    if isinstance(model, torch.nn.Module) and any(isinstance(m, GaussianNoise) for m in model.modules()):
        return True
    return answers_vary(model, x)


class StraightThrough(torch.nn.Module):
    """BPDA with the identity: ``stage``'s output forward, the identity backward (Athalye et al. 2018)."""

    def __init__(self, stage: torch.nn.Module):
        super().__init__()
        self.stage = stage

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + (self.stage(x) - x).detach()


def masking_stages(model, x: torch.Tensor) -> list[str]:
    """The submodules that cut the gradient, found by behaviour: their output has the shape of their
    input, the input carries a gradient, and the output's gradient with respect to it is zero,
    missing or non-finite (a rounding, a threshold on a detached input, a custom backward returning
    zero). The innermost such modules, by name (``""`` never: the model itself is not a stage)."""
    if not isinstance(model, torch.nn.Module):
        return []
    seen: dict[str, tuple] = {}

    def record(name):
        def hook(mod, inp, out):  # returns None: the module's output is left as it is
            seen.setdefault(name, (inp, out))
        return hook

    # TorchScript modules take no hooks: their stages cannot be localised (the audit says so)
    hooks = [m.register_forward_hook(record(n)) for n, m in model.named_modules()
             if n and not isinstance(m, torch.jit.ScriptModule)]
    try:
        with torch.enable_grad(), eval_mode(model):
            model(x.detach().clone().requires_grad_(True))
    finally:
        for h in hooks:
            h.remove()
    cut = []
    for name, (inp, out) in seen.items():
        if len(inp) != 1 or not torch.is_tensor(inp[0]) or not torch.is_tensor(out) or inp[0].shape != out.shape:
            continue
        if not inp[0].requires_grad:
            continue  # cut upstream already: the first cut is the stage
        g = None
        if out.requires_grad:
            g, = torch.autograd.grad(out, inp[0], torch.ones_like(out), retain_graph=True, allow_unused=True)
        if g is None or not torch.isfinite(g).all() or g.abs().amax() == 0:
            cut.append(name)
    return [n for n in cut if not any(o.startswith(n + ".") for o in cut)]


def with_straight_through(model: torch.nn.Module, stages) -> torch.nn.Module:
    """A copy of ``model`` with each named submodule behind :class:`StraightThrough` (the weights are
    shared, not copied; the model itself is untouched)."""
    def swap(m, path):
        out = copy.copy(m)
        out._modules = dict(m._modules)
        for name, child in m.named_children():
            full = f"{path}.{name}" if path else name
            if full in stages:
                out._modules[name] = StraightThrough(child)
            elif any(s.startswith(full + ".") for s in stages):
                out._modules[name] = swap(child, full)
        return out
    return swap(model, "")


def _verdict(excess: float, tolerance: float) -> str:
    """pass within the tolerance, warn within twice it, fail beyond."""
    return "pass" if excess <= tolerance else "warn" if excess <= 2 * tolerance else "fail"


def gradient_masking_audit(model, data: Dataset, threat: ThreatModel, *, checks=None, surrogate=None,
                           steps: int = 20, queries: int = 1000, draws: int = 10, tolerance: float = 0.05,
                           batch_size: int = 256, seed: int = 0) -> pd.DataFrame:
    """Run the gradient-masking checks on ``model`` in ``threat``; one row per check.

    ``checks`` names a subset of :data:`CHECKS` (all by default). Accuracies are robust
    accuracies on ``data`` (correct clean and under the attack). A check comparing two attacks
    passes when the stronger one is weaker by at most ``tolerance`` (absolute), warns up to twice
    that, and fails beyond. ``transfer`` needs ``surrogate``. The checks that apply to some models
    find them by behaviour, not by class: ``draws`` and ``eot`` apply to a model that answers the
    same input differently from one call to the next (:func:`is_randomized`; EOT with ``draws``
    samples); ``bpda`` to a model with a stage that cuts the gradient (:func:`masking_stages`:
    a rounding, a threshold on a detached input, a custom backward returning zero), attacked with
    that stage behind the identity on the backward pass (advlab's bit-depth reduction by its own
    switch); ``consistency`` compares the gradient with finite differences, so a gradient that
    is corrupted rather than zero fails more than the black-box check. PGD runs ``steps``
    iterations (step 2.5 ε / steps, random start), Square ``queries``.

    Returns columns ``check``, ``what``, ``verdict`` and ``evidence`` (the numbers behind it).
    """
    names = list(CHECKS) if checks is None else list(checks)
    for name in names:
        check_choice(name, CHECKS, "audit check")
    if not isinstance(threat, ThreatModel):
        raise InputError(f"the audit needs a threat model, got {type(threat).__name__}")
    check_positive_int(steps=steps, queries=queries, draws=draws)
    check_positive(tolerance, "tolerance", allow_zero=True)
    if "transfer" in names and checks is not None and surrogate is None:
        raise InputError("the transfer check needs surrogate=<a model trained by the attacker>")
    cache: dict = {}

    def acc(key, m, attack, t=threat, **params):
        if key not in cache:
            rows = evaluate_attack(m, data, attack=attack, threat=t, batch_size=batch_size, seed=seed,
                                   progress=False, **params)
            cache[key] = float(rows["robust"].mean())
        return cache[key]

    def pgd(t=threat, m=model, key="pgd", **extra):
        return acc((key, t.norm, t.eps), m, "pgd", t=t, steps=steps, **extra)

    def probe():  # one gradient pass serves the three gradient checks
        if "probe" not in cache:
            cache["probe"] = _gradient_probe(model, data, threat, batch_size)
        return cache["probe"]

    x_probe = data.images()[:PROBE_N]

    def randomized():
        if "random" not in cache:
            cache["random"] = is_randomized(model, x_probe)
        return cache["random"]

    def bpda_model():
        """BPDA's model: advlab's transforms by their own switch, any other stage that cuts the
        gradient (found by behaviour) behind the identity; None when there is no such stage."""
        if "bpda" not in cache:
            if isinstance(model, torch.nn.Module) and any(isinstance(m, BitDepthReduction) for m in model.modules()):
                cache["bpda"] = (bpda(model), "bit-depth reduction")
            else:
                stages = masking_stages(model, x_probe)
                cache["bpda"] = (with_straight_through(model, stages), ", ".join(stages)) if stages else (None, "")
        return cache["bpda"]

    def pct(v):
        return f"{100 * v:.1f}%"

    rows = []
    for name in names:
        verdict, evidence = "n/a", ""
        if name == "iterative":
            a1, ak = acc("fgsm", model, "fgsm"), pgd()
            verdict, evidence = _verdict(ak - a1, tolerance), f"FGSM {pct(a1)}, PGD-{steps} {pct(ak)}"
        elif name == "convergence":
            ak = pgd()
            along = acc("pgd-long", model, "pgd", steps=5 * steps, restarts=3)
            verdict = _verdict(ak - along, tolerance)
            evidence = f"PGD-{steps} {pct(ak)}, PGD-{5 * steps} × 3 restarts {pct(along)}"
        elif name == "black_box":
            ak, asq = pgd(), acc("square", model, "square", budget=queries)
            verdict = _verdict(ak - asq, tolerance)
            evidence = f"PGD-{steps} {pct(ak)}, Square ({queries:,} queries) {pct(asq)}"
        elif name == "transfer":
            if surrogate is not None:
                ak = pgd()
                atr = acc("transfer", model, "transfer", surrogate=surrogate, source_attack="pgd",
                          source_params={"steps": steps})
                verdict, evidence = _verdict(ak - atr, tolerance), f"PGD-{steps} {pct(ak)}, transfer {pct(atr)}"
            else:
                evidence = "no surrogate given"
        elif name == "unbounded":
            d = math.prod(data.x.shape[1:])
            big = ThreatModel("linf", 1.0) if threat.norm == "linf" else ThreatModel("l2", math.sqrt(d))
            a = pgd(t=big, key="pgd-unbounded")
            verdict = "pass" if a <= tolerance else "warn" if a <= 2 * tolerance else "fail"
            evidence = f"PGD-{steps} at {big}: {pct(a)}"
        elif name == "monotone":
            factors = (0.25, 0.5, 1.0, 2.0)
            accs = [pgd(t=ThreatModel(threat.norm, f * threat.eps), key=f"pgd×{f}") for f in factors]
            rise = max([b - a for a, b in zip(accs, accs[1:])] + [0.0])
            verdict = _verdict(rise, tolerance)
            evidence = ", ".join(f"{f:g}ε: {pct(a)}" for f, a in zip(factors, accs))
        elif name == "gradients":
            zero, bad, n = (probe()[k] for k in ("zero", "bad", "n"))
            frac = zero / max(n, 1)
            verdict = "fail" if bad or frac > 0.5 else "warn" if frac > tolerance else "pass"
            evidence = f"{zero} of {n} correctly classified inputs have a zero gradient, {bad} a non-finite one"
        elif name == "loss_ascent":
            up, n = probe()["up"], probe()["n"]
            frac = up / max(n, 1)
            verdict = "pass" if frac >= 1 - tolerance else "warn" if frac >= 0.5 else "fail"
            evidence = f"loss rose on {up} of {n} correctly classified inputs after a step of ε/4"
        elif name == "consistency":
            agree, n = probe()["agree"], probe()["n_grad"]
            if n:
                frac = 1 - agree / n
                verdict = "pass" if frac <= tolerance else "warn" if frac <= 0.5 else "fail"
                evidence = (f"on {agree} of {n} inputs the margin's finite difference along its gradient "
                            f"(L2 step {FD_STEP:g}) is within 2× of what the gradient predicts")
            else:
                evidence = "no finite non-zero gradient to test"
        elif name == "draws":
            if randomized():
                a1 = pgd(key="pgd")
                a2 = acc("pgd-seed2", model, "pgd", steps=steps)  # the model's generators have moved on
                verdict, evidence = _verdict(abs(a1 - a2), tolerance), f"PGD-{steps}, two runs: {pct(a1)}, {pct(a2)}"
            else:
                evidence = "deterministic model"
        elif name == "eot":
            if randomized():
                ak = pgd()
                aeot = pgd(m=EOT(model, draws), key="pgd-eot")
                verdict = _verdict(ak - aeot, tolerance)
                evidence = f"PGD-{steps} {pct(ak)}, EOT-PGD ({draws} draws) {pct(aeot)}"
            else:
                evidence = "deterministic model"
        elif name == "bpda":
            through, where = bpda_model()
            if through is not None:
                ak, ab = pgd(), pgd(m=through, key="pgd-bpda")
                verdict = _verdict(ak - ab, tolerance)
                evidence = f"PGD-{steps} {pct(ak)}, PGD + BPDA through {where} {pct(ab)}"
            else:
                scripted = isinstance(model, torch.nn.Module) and any(isinstance(m, torch.jit.ScriptModule)
                                                                       for m in model.modules())
                evidence = ("no stage found: TorchScript modules cannot be inspected stage by stage" if scripted
                            else "no stage cuts the gradient")
        rows.append({"check": name, "what": CHECKS[name], "verdict": verdict, "evidence": evidence})
    return pd.DataFrame(rows)


FD_STEP = 1e-2  # L2 length of the finite-difference step of the consistency check (pixel units)


def _margin(model, x, y):
    """z_y − max_{k≠y} z_k: the margin, not the cross-entropy, so a confident input still has a
    gradient well above float rounding (the cross-entropy saturates)."""
    z = model(x)
    z_y = z.gather(1, y[:, None]).squeeze(1)
    return z_y - z.scatter(1, y[:, None], -float("inf")).amax(1)


def _gradient_probe(model, data: Dataset, threat: ThreatModel, batch_size: int) -> dict:
    """One gradient per correctly classified input, and what the gradient checks read from it: how
    many gradients are all zero, how many non-finite, on how many inputs the loss rises after one
    steepest-ascent step of ε/4 along the gradient (projected), and on how many of those with a
    non-zero gradient the margin's central finite difference along its own gradient, over an L2
    step of ``FD_STEP``, is within a factor 2 of the gradient's norm (what the gradient predicts)."""
    zero = bad = up = agree = n_grad = 0
    x_all, y_all = data.images(), data.y
    ok = predict(model, x_all) == y_all
    x_all, y_all = x_all[ok], y_all[ok]
    with eval_mode(model):
        for i in range(0, len(y_all), batch_size):
            x, y = x_all[i:i + batch_size], y_all[i:i + batch_size]
            l0, g, _ = loss_and_grad(model, x, y, False)
            flat = g.flatten(1)
            finite = torch.isfinite(flat).all(1)
            bad += int((~finite).sum())
            zero += int((finite & (flat.abs().amax(1) == 0)).sum())
            x1 = threat.project(x, threat.step(x, g, threat.eps / 4))
            with torch.no_grad():
                l1 = torch.nn.functional.cross_entropy(model(x1), y, reduction="none")
            up += int((l1 > l0).sum())
            xm = x.detach().clone().requires_grad_(True)
            with torch.enable_grad():
                m = _margin(model, xm, y)
                gm = torch.autograd.grad(m.sum(), xm, allow_unused=True)[0] if m.requires_grad else None
            if gm is None:
                continue
            norm = gm.flatten(1).norm(dim=1)
            live = torch.isfinite(norm) & (norm > 0)
            if not live.any():
                continue
            u = gm[live] / norm[live].view(-1, *[1] * (gm.dim() - 1))
            with torch.no_grad():
                fd = (_margin(model, x[live] + FD_STEP * u, y[live])
                      - _margin(model, x[live] - FD_STEP * u, y[live])) / (2 * FD_STEP)
            ratio = fd / norm[live]
            agree += int(((ratio >= 0.5) & (ratio <= 2.0)).sum())
            n_grad += int(live.sum())
    return {"zero": zero, "bad": bad, "up": up, "n": len(y_all), "agree": agree, "n_grad": n_grad}
