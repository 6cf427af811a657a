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

from ..checks import check_choice, check_positive, check_positive_int
from ..data import Dataset
from ..defenses import EOT
from ..errors import InputError
from ..threat import ThreatModel
from .adaptive import (FD_STEP, PARTIAL, PROBE_N, StraightThrough, bpda_model, eot_view, flag_count,
                       is_randomized, masking_stages, probe_gradients, with_straight_through)
from .rows import evaluate_attack

#: The checks of :func:`gradient_masking_audit`, by name, each with what it expects of an honest evaluation.
CHECKS = {
    "randomness": "the model answers the same input the same way at every call (else: attacked through EOT)",
    "iterative": "iterative attacks beat single-step ones (PGD ≤ FGSM)",
    "convergence": "more steps and restarts change little (PGD-k ≈ PGD-5k with 3 restarts)",
    "black_box": "white-box attacks beat black-box ones (PGD ≤ Square)",
    "transfer": "white-box attacks beat transfer from a surrogate (PGD ≤ transfer)",
    "unbounded": "accuracy reaches ~0 when the ball covers the whole pixel box",
    "monotone": "accuracy falls monotonically in ε (PGD at ε/4, ε/2, ε, 2ε)",
    "gradients": "input gradients are finite and non-zero",
    "coverage": "the input gradient reaches the whole input (no part of it detached)",
    "loss_ascent": "the loss rises along its own gradient (a step of ε/4)",
    "consistency": "the gradient agrees with finite differences of the loss along it",
    "draws": "randomized models: accuracy stable across the random draws",
    "eot": "randomized models: EOT changes little (plain PGD ≈ EOT-PGD)",
    "bpda": "non-differentiable stages: BPDA does not beat plain PGD",
}
# Checks without which the audit cannot say that nothing suggests masked gradients, and the Square
# budget below which its black-box check cannot see a weak gradient attack (Square-1000 leaves 2.5% of
# an undefended MNIST small CNN standing at L∞ 0.3; Square-300, 40%).
SEVERITY = ("n/a", "pass", "warn", "fail")
REQUIRED = ("gradients", "coverage", "black_box", "transfer", "unbounded")
MIN_BLACK_BOX_QUERIES = 1000

__all__ = ["CHECKS", "MIN_BLACK_BOX_QUERIES", "PROBE_N", "REQUIRED", "StraightThrough", "conclusive",
           "gradient_masking_audit", "is_randomized", "masking_stages", "with_straight_through"]


def allowed(n: int, share: float) -> int:
    """Examples of ``n`` a comparison may differ by and still pass: at least 2 (one example either way
    is noise at any n), else ``share`` of them."""
    return max(2, math.ceil(share * n - 1e-9))


def _verdict(excess: int, n: int, tolerance: float) -> str:
    """On counts of examples: pass up to ``allowed``, fail from twice that, warn between."""
    ok = allowed(n, tolerance)
    return "pass" if excess <= ok else "fail" if excess >= 2 * ok else "warn"


def conclusive(audit: pd.DataFrame, queries: int | None = None) -> list[str]:
    """Why an audit with no warning still cannot say that nothing suggests masked gradients: the required
    checks it did not run (n/a), and a black-box check below ``MIN_BLACK_BOX_QUERIES`` queries."""
    verdicts = dict(zip(audit.check, audit.verdict))
    missing = [c for c in REQUIRED if verdicts.get(c, "n/a") == "n/a"]
    if queries is not None and queries < MIN_BLACK_BOX_QUERIES:
        missing.append(f"black_box at {queries:,} queries (< {MIN_BLACK_BOX_QUERIES:,})")
    return missing


def gradient_masking_audit(model, data: Dataset, threat: ThreatModel, *, checks=None, surrogate=None,
                           steps: int = 20, queries: int = 1000, draws: int = 10, tolerance: float = 0.1,
                           batch_size: int = 256, seed: int = 0) -> pd.DataFrame:
    """Run the gradient-masking checks on ``model`` in ``threat``; one row per check.

    ``checks`` names a subset of ``CHECKS`` (all by default). Every decision is made on counts of
    examples, so the same model and data give the same verdicts whatever the seed, short of the attacks'
    own random starts moving a count across a threshold. A check comparing two attacks counts the examples
    the weaker-by-design attack leaves fewer standing than the stronger (robust counts' difference): it
    passes up to ``allowed`` (``tolerance`` of the examples, at least 2), fails from twice that, and
    warns between. A randomized model is audited as the evaluation judges it, through EOT over ``draws``
    calls (its single draws would move every count with the model's own noise); ``draws`` and ``eot``
    compare it with its single draws, and warn at most: randomness is answered by EOT, not a failure.
    ``transfer`` needs ``surrogate`` (without one it is n/a, and the audit is not conclusive:
    ``conclusive``). The checks that apply to some models find them by behaviour, not
    by class: ``randomness``, ``draws`` and ``eot`` apply to a model that answers the same input
    differently from one call to the next (``is_randomized``; EOT with ``draws`` samples);
    ``gradients`` and ``coverage`` count the correctly classified inputs whose gradient is zero or
    non-finite, or reaches under half the input's coordinates (``probe_gradients``),
    flagged from ``flag_count`` of them; ``bpda`` applies to a model with a
    submodule that cuts the gradient (``masking_stages``), attacked with that stage behind the identity
    on the backward pass (advlab's bit-depth reduction by its own switch); a cut inside the model's own
    ``forward`` cannot be bypassed so and is said in the evidence. PGD runs ``steps`` iterations (step
    2.5 ε / steps, random start), Square ``queries`` (at least ``MIN_BLACK_BOX_QUERIES`` for a
    conclusive audit).

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
    n = len(data)

    x_probe = data.images()[:PROBE_N]

    def randomized():
        if "random" not in cache:
            cache["random"] = is_randomized(model, x_probe)
        return cache["random"]

    # what the evaluation judges: a randomized model through EOT (adaptive.eot_view)
    subject = eot_view(model, draws) if randomized() else model

    def robust(key, m, attack, t=threat, **params):
        """Examples correct clean and under the attack (a count)."""
        if key not in cache:
            rows = evaluate_attack(m, data, attack=attack, threat=t, batch_size=batch_size, seed=seed,
                                   progress=False, **params)
            cache[key] = int(rows["robust"].sum())
        return cache[key]

    def pgd(t=threat, m=subject, key="pgd", **extra):
        return robust((key, t.norm, t.eps), m, "pgd", t=t, steps=steps, **extra)

    def grads():  # one gradient pass serves the gradient checks
        if "probe" not in cache:
            cache["probe"] = probe_gradients(subject, data, threat, batch_size)
        return cache["probe"]

    def through():
        """BPDA's model and where it passes the identity; (None, "") when no submodule cuts the gradient."""
        if "bpda" not in cache:
            stages = masking_stages(subject, x_probe)
            m = bpda_model(subject, stages)
            where = ", ".join(stages) if stages else "bit-depth reduction"
            cache["bpda"] = (m, where) if m is not None else (None, "")
        return cache["bpda"]

    def of(k):
        return f"{k} of {n}"

    def verdict(excess):
        return _verdict(excess, n, tolerance)

    rows = []
    for name in names:
        verdict_, evidence = "n/a", ""
        if name == "randomness":
            if randomized():
                verdict_ = "warn"
                evidence = (f"answers the same input differently from call to call: attacked through EOT over "
                            f"{draws} draws (see draws, eot)")
            else:
                verdict_, evidence = "pass", f"the same answers over repeated calls on {min(PROBE_N, n)} inputs"
        elif name == "iterative":
            a1, ak = robust("fgsm", subject, "fgsm"), pgd()
            verdict_, evidence = verdict(ak - a1), f"robust: FGSM {of(a1)}, PGD-{steps} {of(ak)}"
        elif name == "convergence":
            ak = pgd()
            along = robust("pgd-long", subject, "pgd", steps=5 * steps, restarts=3)
            verdict_ = verdict(ak - along)
            evidence = f"robust: PGD-{steps} {of(ak)}, PGD-{5 * steps} × 3 restarts {of(along)}"
        elif name == "black_box":
            ak, asq = pgd(), robust("square", subject, "square", budget=queries, output="logits")
            verdict_ = verdict(ak - asq)
            evidence = f"robust: PGD-{steps} {of(ak)}, Square ({queries:,} queries) {of(asq)}"
        elif name == "transfer":
            if surrogate is not None:
                ak = pgd()
                atr = robust("transfer", subject, "transfer", surrogate=surrogate, source_attack="pgd",
                             source_params={"steps": steps}, output="logits")
                verdict_, evidence = verdict(ak - atr), f"robust: PGD-{steps} {of(ak)}, transfer {of(atr)}"
            else:
                evidence = "no surrogate given"
        elif name == "unbounded":
            d = math.prod(data.x.shape[1:])
            big = ThreatModel("linf", 1.0) if threat.norm == "linf" else ThreatModel("l2", math.sqrt(d))
            a = pgd(t=big, key="pgd-unbounded")
            verdict_ = verdict(a)
            evidence = f"PGD-{steps} at {big}: {of(a)} robust"
        elif name == "monotone":
            factors = (0.25, 0.5, 1.0, 2.0)
            counts = [pgd(t=ThreatModel(threat.norm, f * threat.eps), key=f"pgd×{f}") for f in factors]
            rise = max([b - a for a, b in zip(counts, counts[1:])] + [0])
            verdict_ = verdict(rise)
            evidence = "robust: " + ", ".join(f"{f:g}ε {k}" for f, k in zip(factors, counts)) + f" of {n}"
        elif name == "gradients":
            g = grads()
            bad = g.zero + g.nonfinite
            verdict_ = "pass" if bad < flag_count(g.n) else "fail"
            evidence = (f"{g.zero} of {g.n} correctly classified inputs have a zero cross-entropy gradient, "
                        f"{g.nonfinite} a non-finite one")
        elif name == "coverage":
            g = grads()
            verdict_ = "pass" if g.partial < flag_count(g.n) else "fail"
            evidence = (f"on {g.partial} of {g.n} correctly classified inputs the margin's gradient reaches under "
                        f"{PARTIAL:.0%} of the input's coordinates (median share reached: {g.coverage:.0%})")
        elif name == "loss_ascent":
            g = grads()
            verdict_ = verdict(g.n - g.up)
            evidence = f"loss rose on {g.up} of {g.n} correctly classified inputs after a step of ε/4"
        elif name == "consistency":
            g = grads()
            if randomized():
                evidence = "randomized model: finite differences mix the model's draws (see eot)"
            elif g.n_grad:
                verdict_ = verdict(g.n_grad - g.agree)
                evidence = (f"on {g.agree} of {g.n_grad} inputs the margin's finite difference along its gradient "
                            f"(L2 step {FD_STEP:g}) is within 2× of what the gradient predicts")
            else:
                evidence = "no finite non-zero gradient to test"
        elif name == "draws":
            if randomized():
                a1 = pgd(m=model, key="pgd-draw")
                a2 = robust("pgd-seed2", model, "pgd", steps=steps)  # the model's generators have moved on
                verdict_ = min(verdict(abs(a1 - a2)), "warn", key=SEVERITY.index)
                evidence = f"robust under PGD-{steps} on single draws, two runs: {a1}, {a2} of {n}"
            else:
                evidence = "deterministic model"
        elif name == "eot":
            if randomized():
                ak = pgd(m=model, key="pgd-draw")
                aeot = pgd(m=EOT(model, draws), key="pgd-eot")
                verdict_ = min(verdict(ak - aeot), "warn", key=SEVERITY.index)
                evidence = f"robust: PGD-{steps} {of(ak)}, EOT-PGD ({draws} draws) {of(aeot)}"
            else:
                evidence = "deterministic model"
        elif name == "bpda":
            m, where = through()
            if m is not None:
                ak, ab = pgd(), pgd(m=m, key="pgd-bpda")
                verdict_ = verdict(ak - ab)
                evidence = f"robust: PGD-{steps} {of(ak)}, PGD + BPDA through {where} {of(ab)}"
            else:
                scripted = isinstance(subject, torch.nn.Module) and any(isinstance(x, torch.jit.ScriptModule)
                                                                         for x in subject.modules())
                g = grads()
                cut = g.zero + g.nonfinite + g.partial >= flag_count(g.n)
                if scripted and cut:
                    evidence = "the gradient is cut inside TorchScript, which cannot be inspected stage by stage"
                elif scripted:
                    evidence = "no stage found: TorchScript modules cannot be inspected stage by stage"
                elif cut:
                    evidence = ("the gradient is cut inside the model's own forward, not by a submodule: BPDA "
                                "cannot be placed (the evaluation escalates to transfer and Square instead)")
                else:
                    evidence = "no stage cuts the gradient"
        rows.append({"check": name, "what": CHECKS[name], "verdict": verdict_, "evidence": evidence})
    return pd.DataFrame(rows)
