"""The adaptive evaluation: a cascade at least as strong as AutoAttack's standard version, and the attacks
that masked gradients call for, run automatically when the model's behaviour shows them.

An attack gives an upper bound on robust accuracy, and a gradient attack only a loose one on a model that
hides its gradient (Athalye, Carlini & Wagner 2018; Tramèr et al. 2020). So the model is first *probed*:
does it answer the same input differently from call to call (randomness), is its input gradient zero,
missing or non-finite, does the gradient reach only part of the input (a partial detach), and which of its
submodules cut the gradient (found by their local Jacobians). Then the cascade APGD-CE → APGD-T → Square
runs on it, each attack on the examples every earlier one left. When the probe flags masking, or Square
breaks examples the gradient attacks could not (a black-box attack beating white-box ones), the evaluation
*escalates* on the examples still standing: APGD-CE and APGD-T through BPDA where the cutting stages are
submodules (the identity on the backward pass), transfer from a surrogate, and Square with a larger
budget. A randomized model is attacked and judged through EOT. The reported robustness is the per-example
worst case over every attack that ran; the rows keep the cascade's own verdict beside it, so a page can
say how far the first cascade overstated.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from ..attacks.base import loss_and_grad
from ..checks import check_positive_int
from ..data import Dataset
from ..defenses import EOT, BitDepthReduction, GaussianNoise, bpda
from ..errors import InputError
from ..models import eval_mode, predict
from ..models.external import is_randomized as answers_vary
from ..progress import bar
from ..threat import ThreatModel
from .rows import worst_case

PROBE_N = 16  # inputs the behavioural probes of randomness and of cutting stages look at
PARTIAL = 0.5  # an input whose gradient reaches under half its coordinates has a partial gradient
# A probe flags masking when at least this share of the correctly classified inputs (and at least one)
# show it: decided on counts, so equal inputs give equal decisions whatever the seed.
FLAG_SHARE = 0.1
INCONSISTENT = 0.25  # share of inputs whose gradient disagrees with finite differences that flags it (kinks: a few)


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
    zero). The innermost such modules, by name (``""`` never: the model itself is not a stage; a cut
    written inside the model's own ``forward`` is reported by :func:`probe_gradients` instead)."""
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


def flag_count(n: int) -> int:
    """How many of ``n`` probed inputs must show a symptom for the probe to flag it."""
    return max(1, math.ceil(FLAG_SHARE * n - 1e-9))


def _margin(model, x, y):
    """z_y − max_{k≠y} z_k: the margin, not the cross-entropy, so a confident input still has a
    gradient well above float rounding (the cross-entropy saturates)."""
    z = model(x)
    z_y = z.gather(1, y[:, None]).squeeze(1)
    return z_y - z.scatter(1, y[:, None], -float("inf")).amax(1)


@dataclass
class GradientProbe:
    """What the input gradients of a model's correctly classified inputs show (counts of inputs)."""

    n: int = 0  # correctly classified inputs probed
    zero: int = 0  # cross-entropy gradient exactly zero everywhere (missing, cut, or saturated)
    nonfinite: int = 0  # a NaN or infinite gradient entry
    partial: int = 0  # the margin's gradient non-zero on some but fewer than PARTIAL of the coordinates
    coverage: float = 1.0  # median share of coordinates the margin's gradient reaches
    up: int = 0  # the loss rose after a steepest-ascent step of ε/4 along the gradient
    agree: int = 0  # the margin's finite difference along its gradient agrees with it (factor 2)
    n_grad: int = 0  # inputs with a finite, non-zero margin gradient (the consistency check's n)
    shares: list = field(default_factory=list, repr=False)


FD_STEP = 1e-2  # L2 length of the finite-difference step of the consistency check (pixel units)


def probe_gradients(model, data: Dataset, threat: ThreatModel | None = None, batch_size: int = 256) -> GradientProbe:
    """One cross-entropy and one margin gradient per correctly classified input of ``data``, and what
    the gradient checks read from them: zero or non-finite gradients, the share of the input's
    coordinates the margin's gradient reaches (a partial detach leaves most of them at exactly zero),
    whether the loss rises after one steepest-ascent step of ε/4 (with ``threat``), and whether the
    margin's central finite difference along its own gradient (L2 step :data:`FD_STEP`) is within a
    factor 2 of the gradient's norm. Deterministic for a deterministic model."""
    p = GradientProbe()
    x_all, y_all = data.images(), data.y
    ok = predict(model, x_all) == y_all
    x_all, y_all = x_all[ok], y_all[ok]
    p.n = len(y_all)
    with eval_mode(model):
        for i in range(0, len(y_all), batch_size):
            x, y = x_all[i:i + batch_size], y_all[i:i + batch_size]
            l0, g, _ = loss_and_grad(model, x, y, False)
            flat = g.flatten(1)
            finite = torch.isfinite(flat).all(1)
            p.nonfinite += int((~finite).sum())
            p.zero += int((finite & (flat.abs().amax(1) == 0)).sum())
            if threat is not None:
                x1 = threat.project(x, threat.step(x, g, threat.eps / 4))
                with torch.no_grad():
                    l1 = torch.nn.functional.cross_entropy(model(x1), y, reduction="none")
                p.up += int((l1 > l0).sum())
            xm = x.detach().clone().requires_grad_(True)
            with torch.enable_grad():
                m = _margin(model, xm, y)
                gm = torch.autograd.grad(m.sum(), xm, allow_unused=True)[0] if m.requires_grad else None
            if gm is None:
                gm = torch.zeros_like(x)
            share = (torch.nan_to_num(gm, nan=1.0).flatten(1) != 0).float().mean(1)
            p.shares += share.tolist()
            p.partial += int(((share > 0) & (share < PARTIAL)).sum())  # all-zero ones are counted as zero
            norm = gm.flatten(1).norm(dim=1)
            live = torch.isfinite(norm) & (norm > 0)
            if not live.any():
                continue
            u = gm[live] / norm[live].view(-1, *[1] * (gm.dim() - 1))
            with torch.no_grad():
                fd = (_margin(model, x[live] + FD_STEP * u, y[live])
                      - _margin(model, x[live] - FD_STEP * u, y[live])) / (2 * FD_STEP)
            ratio = fd / norm[live]
            p.agree += int(((ratio >= 0.5) & (ratio <= 2.0)).sum())
            p.n_grad += int(live.sum())
    p.coverage = float(np.median(p.shares)) if p.shares else 1.0
    return p


@dataclass
class MaskingProbe:
    """The behavioural probe of one model: randomness, the gradient's health, and where it is cut."""

    randomized: bool
    gradients: GradientProbe
    stages: list[str]  # submodules that cut the gradient (BPDA passes them); advlab's bit-depth reduction too
    scripted: bool  # TorchScript inside: its stages cannot be localised

    @property
    def flags(self) -> list[str]:
        """The symptoms found, each decided on a count of inputs (``flag_count``)."""
        g, need = self.gradients, flag_count(self.gradients.n)
        out = ["randomness"] if self.randomized else []
        if g.n and g.zero >= need:
            out.append("zero gradients")
        if g.n and g.nonfinite >= need:
            out.append("non-finite gradients")
        if g.n and g.partial >= need:
            out.append("partial gradients")
        # a random model's finite differences mix draws, so only a deterministic one is judged by them
        if not self.randomized and g.n_grad and g.n_grad - g.agree >= max(need, math.ceil(INCONSISTENT * g.n_grad)):
            out.append("inconsistent gradients")
        if self.stages:
            out.append("gradient-cutting stages")
        return out

    @property
    def masked(self) -> bool:
        """Whether any gradient symptom (not randomness alone, which EOT answers) was found."""
        return any(f != "randomness" for f in self.flags)

    @property
    def where(self) -> str:
        """Where the gradient is cut, in words."""
        if self.stages:
            return ", ".join(self.stages)
        if not self.masked:
            return "nowhere"
        if self.scripted:
            return "inside TorchScript, which cannot be inspected stage by stage"
        return "inside the model's own forward (no submodule cuts it), so BPDA cannot be placed"


def bpda_model(model, stages) -> torch.nn.Module | None:
    """BPDA's stand-in: advlab's bit-depth reduction by its own switch, any other stage that cuts the
    gradient behind the identity; None when there is no such stage."""
    if not isinstance(model, torch.nn.Module):
        return None
    if any(isinstance(m, BitDepthReduction) for m in model.modules()):
        return bpda(model)
    return with_straight_through(model, stages) if stages else None


def probe(model, data: Dataset, threat: ThreatModel | None = None, batch_size: int = 256) -> MaskingProbe:
    """Probe ``model`` on ``data`` (:class:`MaskingProbe`)."""
    x = data.images()[:PROBE_N]
    scripted = isinstance(model, torch.nn.Module) and any(isinstance(m, torch.jit.ScriptModule)
                                                           for m in model.modules())
    stages = masking_stages(model, x)
    if isinstance(model, torch.nn.Module) and any(isinstance(m, BitDepthReduction) for m in model.modules()):
        stages = stages or ["bit-depth reduction"]
    return MaskingProbe(is_randomized(model, x), probe_gradients(model, data, threat, batch_size), stages, scripted)


def eot_view(model, draws: int):
    """``model`` behind EOT over ``draws`` calls, unless it is EOT already."""
    return model if isinstance(model, EOT) or draws == 1 else EOT(model, draws)


def cascade(threat: ThreatModel, *, steps: int = 100, restarts: int = 1, targets: int = 9,
            queries: int = 5000) -> dict:
    """The cascade every model is judged by, in AutoAttack's order (Croce & Hein 2020, standard version
    without FAB-T): APGD on the cross-entropy, APGD-T on the targeted DLR loss towards the ``targets``
    highest other classes (``steps`` iterations and ``restarts`` restarts each), and the score-based Square
    attack with ``queries`` queries per example (Andriushchenko et al. 2020), which needs no gradient.
    A mapping of labels to ``(attack, parameters)`` for :func:`~advlab.evaluate.worst_case`."""
    if not isinstance(threat, ThreatModel):
        raise InputError(f"the cascade needs a threat model, got {type(threat).__name__}")
    check_positive_int(steps=steps, restarts=restarts, targets=targets, queries=queries)
    return {"APGD-CE": ("apgd", {"steps": steps, "restarts": restarts}),
            "APGD-T": ("apgd-t", {"steps": steps, "restarts": restarts, "targets": targets}),
            "Square": ("square", {"budget": queries, "output": "logits"})}


def cascade_description(steps: int, targets: int, queries: int, escalation_queries: int | None = None) -> str:
    """The cascade and its budgets in words, for a page (and its escalation, given ``escalation_queries``)."""
    text = (f"APGD-CE with {steps} iterations, APGD-T towards the {targets} highest other classes with {steps} "
            f"each, then Square with {queries:,} queries per example")
    if escalation_queries is not None:
        text += (f", escalated where gradients mislead to BPDA, transfer and Square with {escalation_queries:,} "
                 "queries")
    return text


def escalation(threat: ThreatModel, found: MaskingProbe, model, *, steps: int, targets: int, queries: int,
               surrogate=None, eot_draws: int = 1) -> dict:
    """The attacks masked gradients call for, each crafted on a differentiable stand-in and judged on the
    model itself: APGD-CE and APGD-T through BPDA where the cutting stages are submodules (and EOT over
    ``eot_draws`` calls for a randomized model), transfer of APGD-CE from ``surrogate``, and Square with
    ``queries`` queries."""
    out = {}
    through = bpda_model(model, found.stages)
    if through is not None and found.randomized:
        through = eot_view(through, eot_draws)
    if through is not None:
        for label, (name, params) in list(cascade(threat, steps=steps, targets=targets).items())[:2]:
            out[f"BPDA {label}"] = ("transfer", {"surrogate": through, "source_attack": name,
                                                 "source_params": params, "output": "logits"})
    if surrogate is not None:
        out["transfer"] = ("transfer", {"surrogate": surrogate, "source_attack": "apgd",
                                        "source_params": {"steps": steps}, "output": "logits"})
    out[f"Square-{queries}"] = ("square", {"budget": queries, "output": "logits"})
    return out


def square_beat_gradients(rows: pd.DataFrame) -> bool:
    """Whether the cascade's Square broke enough examples the gradient attacks left standing to count as
    a black-box attack beating white-box ones (:func:`flag_count` of the examples it attacked)."""
    left = int((rows.clean_correct & ~rows.fooled_by.isin(["APGD-CE", "APGD-T"])).sum())
    return left > 0 and int((rows.fooled_by == "Square").sum()) >= flag_count(left)


def adaptive_worst_case(model, data: Dataset, threat: ThreatModel, *, steps: int = 100, restarts: int = 1,
                        targets: int = 9, queries: int = 5000, escalation_queries: int | None = None,
                        surrogate=None, eot_draws: int = 8, batch_size: int | None = None, seed: int = 0,
                        found: MaskingProbe | None = None) -> pd.DataFrame:
    """Per-example worst case of the adaptive evaluation of one model in one threat model.

    The model is probed (``found``, or :func:`probe` on ``data``); a randomized model is attacked and
    judged through EOT over ``eot_draws`` calls. The :func:`cascade` runs first. It escalates
    (:func:`escalation`, with ``escalation_queries`` Square queries, default 10 × ``queries``) on the
    examples still robust when the probe flags masked gradients or ``square_beat_gradients``.

    Returns :func:`~advlab.evaluate.worst_case`'s columns plus ``cascade_robust`` (robust after the cascade
    alone), ``escalated`` (whether the escalation ran) and ``masking`` (the probe's symptoms, with
    "Square beat gradients" when that triggered it).
    """
    escalation_queries = 10 * queries if escalation_queries is None else escalation_queries
    check_positive_int(escalation_queries=escalation_queries, eot_draws=eot_draws)
    if found is None:
        found = probe(model, data, threat, batch_size or 256)
    target = eot_view(model, eot_draws) if found.randomized else model
    rows = worst_case(target, data, attacks=cascade(threat, steps=steps, restarts=restarts, targets=targets,
                                                    queries=queries),
                      threat=threat, batch_size=batch_size, seed=seed, progress=False)
    flags = list(found.flags)
    if square_beat_gradients(rows):
        flags.append("Square beat gradients")
    rows["cascade_robust"] = rows["robust"].to_numpy().copy()
    escalate = found.masked or "Square beat gradients" in flags
    if escalate and rows["robust"].any():
        more = escalation(threat, found, model, steps=steps, targets=targets, queries=escalation_queries,
                          surrogate=surrogate, eot_draws=eot_draws)
        rows = worst_case(target, data, attacks=more, threat=threat, batch_size=batch_size, seed=seed,
                          progress=False, start=rows)
    rows["escalated"] = escalate
    rows["masking"] = ", ".join(flags) if flags else "none"
    return rows


def overstatement(rows: pd.DataFrame, by=("threat",)) -> pd.DataFrame:
    """How far the cascade alone overstated: per group, the cascade's robust count and share, the final
    one, and the examples each escalation attack broke."""
    out = []
    for key, g in rows.groupby(list(by), sort=False):
        first, final = int(g.cascade_robust.sum()), int(g.robust.sum())
        out.append({**dict(zip(by, key if isinstance(key, tuple) else (key,))), "n": len(g),
                    "cascade robust": first, "robust": final, "overstated by (points)": 100 * (first - final) / len(g),
                    "escalated": bool(g.escalated.any()), "masking": g.masking.iat[0]})
    return pd.DataFrame(out)


def surrogate_of(models: Mapping, surrogate):
    """The surrogate model named by ``surrogate`` among ``models`` (a name), or the model itself."""
    if surrogate is None or not isinstance(surrogate, str):
        return surrogate
    if surrogate not in models:
        raise InputError(f"surrogate {surrogate!r} is not one of the models {sorted(models)}")
    return models[surrogate]


def ensemble(threat: ThreatModel, *, steps: int = 100, restarts: int = 1, targets: int = 9,
             queries: int = 5000) -> dict:
    """The cascade of :func:`robust_evaluation` (:func:`cascade`; its ``threat`` is only checked)."""
    return cascade(threat, steps=steps, restarts=restarts, targets=targets, queries=queries)


def robust_evaluation(models, data: Dataset, threats: ThreatModel | Sequence[ThreatModel], *, steps: int = 100,
                      restarts: int = 1, targets: int = 9, queries: int = 5000, escalation_queries: int | None = None,
                      surrogate=None, eot_draws: int = 8, batch_size: int | None = None, seed: int = 0,
                      progress: bool = True) -> pd.DataFrame:
    """Per-example worst case of the adaptive evaluation (:func:`adaptive_worst_case`) for every model and
    threat, and their union.

    ``models`` is one model or a mapping of names to models; each is probed once (:func:`probe`).
    ``surrogate`` (a model, or the name of one of ``models``, which is then not evaluated) is what the
    escalation transfers from. For each threat model the cascade APGD-CE → APGD-T → Square runs, then the
    escalation where the probe or the cascade calls for it; with several threat models one more set of
    rows, ``threat == "union"``, counts an example as robust only if it is robust under every one of them
    (the union of the balls, as in Tramèr & Boneh 2019; ``fooled_by`` names the threat and the attack,
    e.g. ``"l2 1: APGD-CE"``). Columns: ``model``, ``threat`` (e.g. ``"linf 0.3"``), ``norm``, ``eps``,
    ``example``, ``label``, ``clean_correct``, ``robust``, ``cascade_robust``, ``escalated``, ``masking``,
    ``fooled_by``, ``linf``, ``l2``, ``forwards``, ``backwards``, ``seconds``. Aggregate with
    :func:`advlab.evaluate.accuracy` grouped by ``["model", "threat"]``.
    """
    threats = [threats] if isinstance(threats, ThreatModel) else list(threats)
    if not threats:
        raise InputError("robust_evaluation needs at least one threat model")
    for t in threats:
        cascade(t, steps=steps, restarts=restarts, targets=targets, queries=queries)  # checked before any work
    named = dict(models) if isinstance(models, Mapping) else {None: models}
    source = surrogate_of(named, surrogate)
    if isinstance(surrogate, str):
        named.pop(surrogate)
    frames = []
    for mname, model in bar(named.items(), desc="robust evaluation", enabled=progress):
        found = probe(model, data, threats[0], batch_size or 256)
        per = []
        for t in threats:
            rows = adaptive_worst_case(model, data, t, steps=steps, restarts=restarts, targets=targets,
                                       queries=queries, escalation_queries=escalation_queries,
                                       surrogate=source, eot_draws=eot_draws, batch_size=batch_size, seed=seed,
                                       found=found)
            per.append(rows.assign(threat=t.label))
        if len(per) > 1:
            union = per[0].copy()
            for col in ("robust", "cascade_robust"):
                union[col] = np.logical_and.reduce([r[col].to_numpy() for r in per])
            union["escalated"] = np.logical_or.reduce([r["escalated"].to_numpy() for r in per])
            first = [next((f"{r['threat'].iat[i]}: {r['fooled_by'].iat[i]}" for r in per
                           if r["fooled_by"].iat[i] is not None), None) for i in range(len(union))]
            union["fooled_by"] = pd.Series(first, dtype=object)
            for col in ("forwards", "backwards", "seconds"):
                union[col] = sum(r[col].to_numpy() for r in per)
            union[["linf", "l2"]] = np.nan
            per.append(union.assign(threat="union", norm="union", eps=np.nan))
        frames += [r.assign(model=mname) for r in per]
    out = pd.concat(frames, ignore_index=True)
    return out[["model", "threat", *[c for c in out.columns if c not in ("model", "threat")]]]
