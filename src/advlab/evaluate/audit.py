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

import math

import pandas as pd
import torch

from ..attacks.base import loss_and_grad
from ..checks import check_choice, check_positive, check_positive_int
from ..data import Dataset
from ..defenses import EOT, BitDepthReduction, GaussianNoise, bpda
from ..errors import InputError
from ..models import eval_mode, predict
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
    "draws": "randomized models: accuracy stable across the random draws",
    "eot": "randomized models: EOT changes little (plain PGD ≈ EOT-PGD)",
    "bpda": "non-differentiable stages: BPDA does not beat plain PGD",
}


def _randomized(model) -> bool:
    return isinstance(model, torch.nn.Module) and any(isinstance(m, GaussianNoise) for m in model.modules())


def _transformed(model) -> bool:
    return isinstance(model, torch.nn.Module) and any(isinstance(m, BitDepthReduction) for m in model.modules())


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
    that, and fails beyond. ``transfer`` needs ``surrogate``; ``draws`` and ``eot`` apply to
    models containing a :class:`~advlab.defenses.GaussianNoise` stage (EOT with ``draws``
    samples); ``bpda`` to models containing a :class:`~advlab.defenses.BitDepthReduction`.
    PGD runs ``steps`` iterations (step 2.5 ε / steps, random start), Square ``queries``.

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

    def probe():  # one gradient pass serves both gradient checks
        if "probe" not in cache:
            cache["probe"] = _gradient_probe(model, data, threat, batch_size)
        return cache["probe"]

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
        elif name == "draws":
            if _randomized(model):
                a1 = pgd(key="pgd")
                a2 = acc("pgd-seed2", model, "pgd", steps=steps)  # the model's generators have moved on
                verdict, evidence = _verdict(abs(a1 - a2), tolerance), f"PGD-{steps}, two runs: {pct(a1)}, {pct(a2)}"
            else:
                evidence = "deterministic model"
        elif name == "eot":
            if _randomized(model):
                ak = pgd()
                aeot = pgd(m=EOT(model, draws), key="pgd-eot")
                verdict = _verdict(ak - aeot, tolerance)
                evidence = f"PGD-{steps} {pct(ak)}, EOT-PGD ({draws} draws) {pct(aeot)}"
            else:
                evidence = "deterministic model"
        elif name == "bpda":
            if _transformed(model):
                ak, ab = pgd(), pgd(m=bpda(model), key="pgd-bpda")
                verdict, evidence = _verdict(ak - ab, tolerance), f"PGD-{steps} {pct(ak)}, PGD + BPDA {pct(ab)}"
            else:
                evidence = "no non-differentiable stage"
        rows.append({"check": name, "what": CHECKS[name], "verdict": verdict, "evidence": evidence})
    return pd.DataFrame(rows)


def _gradient_probe(model, data: Dataset, threat: ThreatModel, batch_size: int) -> dict:
    """One gradient per correctly classified input, and what the ``gradients`` and ``loss_ascent``
    checks read from it: how many gradients are all zero, how many non-finite, and on how many
    inputs the loss rises after one steepest-ascent step of ε/4 along the gradient (projected)."""
    zero = bad = up = 0
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
    return {"zero": zero, "bad": bad, "up": up, "n": len(y_all)}
