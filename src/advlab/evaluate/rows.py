"""Per-example rows: one row per (attack, example), from which every table and curve is aggregated."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from .. import seeded_generator
from ..attacks import QueryOracle, get_attack, run_attack
from ..attacks.base import loss_and_grad
from ..checks import check_images, check_positive_int
from ..data import Dataset, to_float
from ..errors import BudgetError, InputError
from ..models import predict
from ..progress import bar
from ..threat import ATOL, L2, ThreatModel, in_pixel_box, perturbation_norms
from ..timing import Stopwatch
from .stats import transfer_table


ORACLE_ARGS = ("budget", "output")  # evaluate_attack's arguments for a black-box attack's oracle
# Examples per attack batch when none is given. A GPU runs small models launch-bound: a batch of
# 1024 costs about what 256 does there, so it fills the device; a CPU is compute-bound already.
ATTACK_BATCH = {"cpu": 256, "cuda": 1024}


def attack_batch_size(device) -> int:
    """The default attack batch on ``device`` (:data:`ATTACK_BATCH`; 256 for any other device type)."""
    return ATTACK_BATCH.get(torch.device(device).type, 256)


def check_adversarial(x: torch.Tensor, x_adv: torch.Tensor, threat: ThreatModel | None = None,
                      atol: float = ATOL) -> None:
    """Refuse adversarial inputs with NaNs, outside the pixel box, or outside the threat's ball."""
    if x_adv.shape != x.shape:
        raise BudgetError(f"x_adv has shape {tuple(x_adv.shape)}, x has {tuple(x.shape)}")
    finite = torch.isfinite(x_adv).flatten(1).all(1)
    if not finite.all():
        raise BudgetError(f"x_adv holds NaN or infinite values in {int((~finite).sum())} examples")
    if not in_pixel_box(x_adv, atol).all():
        raise BudgetError(f"x_adv leaves the pixel box [0, 1]: values in [{x_adv.min().item():.6g}, "
                          f"{x_adv.max().item():.6g}]")
    if threat is not None and not threat.contains(x, x_adv, atol).all():
        raise BudgetError(f"x_adv leaves the {threat}: largest distance {threat.distance(x, x_adv).max().item():.6g}")


def _generator(seed, generator, device):
    if seed is not None and generator is not None:
        raise InputError("pass seed or generator, not both")
    return seeded_generator(seed, device) if seed is not None else generator


def clean_table(model, data: Dataset, batch_size: int = 1024) -> pd.DataFrame:
    """One row per example: dataset index, label, prediction, correct."""
    x, y = data.images(), data.y
    pred = predict(model, x, batch_size)
    return pd.DataFrame({
        "example": data.indices.cpu().numpy(), "label": y.cpu().numpy(),
        "pred": pred.cpu().numpy(), "correct": (pred == y).cpu().numpy(),
    })


def evaluate_attack(model, data: Dataset, *, attack: str, threat: ThreatModel | None = None,
                    batch_size: int | None = None, seed: int | None = None, generator: torch.Generator | None = None,
                    budget: int | None = None, output: str | None = None, keep_inputs: int = 0,
                    progress: bool = True, **params) -> pd.DataFrame:
    """Attack every example of ``data`` and return one row per example.

    Columns: ``example`` (index in the split), ``label``, ``clean_pred``, ``clean_correct``,
    ``adv_pred``, ``adv_correct``, ``success`` (the attack fooled the model), ``robust``
    (correct clean *and* under the attack: the robust-accuracy column), ``linf`` and ``l2``
    (perturbation norms in pixel units), ``forwards`` / ``backwards`` (passes spent, per example),
    ``seconds`` (wall time per example, device synchronised), plus ``attack``, ``norm``, ``eps`` and
    ``units`` (``"pixel"`` or the per-channel scale), so several runs concatenate into one long table.

    ``threat`` is required by bounded attacks and optional for minimum-norm ones (a projection;
    ``norm`` then records the norm the attack minimised). Random draws come from ``generator``,
    or from a fresh generator seeded with ``seed`` on the data's device. ``batch_size`` defaults
    to ``attack_batch_size`` of the data's device (256 on a CPU, 1024 on a GPU).

    Black-box attacks see ``model`` only through a :class:`~advlab.attacks.blackbox.QueryOracle` answering
    ``output`` (default: the first the attack accepts) with ``budget`` queries per example; their
    rows gain ``queries`` (per example; NaN for white-box attacks).
    ``keep_inputs`` = k > 0 adds a column ``changed``: for the first k examples the model classifies
    correctly, the adversarial input as the pixels it changed (:func:`changed_pixels`; None for
    the others), from which :func:`adversarial_inputs` rebuilds the images a figure shows.
    Budgets are asserted before returning (:func:`check_adversarial`); a violation is an error,
    never a silently reported number.
    """
    spec = get_attack(attack)  # an unknown name fails before any work
    if threat is None and spec.needs_threat:
        raise InputError(f"{attack} is a {spec.kind} attack: evaluate it with threat=ThreatModel(norm, eps)")
    spec.check_params(params)
    if spec.black_box:
        oracle_args = {"output": output or spec.outputs[0], "budget": budget}
        QueryOracle(model, **oracle_args)  # bad arguments fail before any work
    elif budget is not None or output is not None:
        raise InputError(f"budget and output describe a black-box oracle; {attack} is a {spec.kind} attack")
    generator = _generator(seed, generator, data.x.device)
    if batch_size is None:
        batch_size = attack_batch_size(data.x.device)
    check_positive_int(batch_size=batch_size)
    if not isinstance(keep_inputs, int) or isinstance(keep_inputs, bool) or keep_inputs < 0:
        raise InputError(f"keep_inputs must be a non-negative int, got {keep_inputs!r}")
    norm = spec.norm_for(threat, params)
    rows = []
    kept = 0
    it = range(0, len(data), batch_size)
    label = f"{attack} {threat.norm} ε={threat.eps:.4g}" if threat else attack
    for i in bar(it, desc=label, enabled=progress, leave=False):
        x = to_float(data.x[i:i + batch_size])
        y = data.y[i:i + batch_size]
        check_images(x)
        clean = predict(model, x)
        kwargs = dict(params, generator=generator)
        if threat is not None:
            kwargs["threat"] = threat
        with Stopwatch(x.device) as sw:
            res = spec.fn(QueryOracle(model, **oracle_args) if spec.black_box else model, x, y, **kwargs)
        check_adversarial(x, res.x_adv, threat)
        sizes = perturbation_norms(x, res.x_adv)
        n = x.shape[0]
        clean_ok, adv_ok = clean == y, res.pred == y
        rows.append(pd.DataFrame({
            "example": data.indices[i:i + batch_size].cpu().numpy(),
            "label": y.cpu().numpy(),
            "clean_pred": clean.cpu().numpy(), "clean_correct": clean_ok.cpu().numpy(),
            "adv_pred": res.pred.cpu().numpy(), "adv_correct": adv_ok.cpu().numpy(),
            "success": res.success.cpu().numpy(), "robust": (clean_ok & adv_ok).cpu().numpy(),
            "linf": sizes["linf"].cpu().numpy(), "l2": sizes["l2"].cpu().numpy(),
            "forwards": res.forwards / n, "backwards": res.backwards / n, "seconds": sw.seconds / n,
            "queries": res.queries.cpu().numpy() if res.queries is not None else np.full(n, np.nan),
        }))
        if keep_inputs:
            changed = [None] * n
            for j in clean_ok.nonzero().squeeze(1).tolist()[:keep_inputs - kept]:
                changed[j] = changed_pixels(x[j], res.x_adv[j])
            kept += sum(c is not None for c in changed)
            rows[-1]["changed"] = pd.Series(changed, dtype=object)
    df = pd.concat(rows, ignore_index=True)
    df.insert(0, "attack", attack)
    df.insert(1, "norm", norm)
    df.insert(2, "eps", threat.eps if threat else np.nan)
    df.insert(3, "units", threat.units if threat else "pixel")  # a ×std table and a pixel one stay apart
    return df


def changed_pixels(x: torch.Tensor, x_adv: torch.Tensor) -> list:
    """One adversarial input stored as the entries it changed: ``[[flat index, value], ...]`` (plain
    numbers, so a result table keeps it; a few-pixel attack's input is a handful of pairs)."""
    idx = (x_adv != x).flatten().nonzero().squeeze(1)
    return [[i, v] for i, v in zip(idx.tolist(), x_adv.flatten()[idx].float().tolist())]


def adversarial_inputs(rows: pd.DataFrame, data: Dataset) -> tuple[torch.Tensor, pd.DataFrame]:
    """The adversarial inputs ``rows`` kept (:func:`evaluate_attack` with ``keep_inputs``), rebuilt
    from the clean images of ``data``, and those rows, in the rows' order."""
    if "changed" not in rows.columns:
        raise InputError("these rows kept no adversarial inputs (evaluate with keep_inputs=k)")
    kept = rows[rows.changed.notna()]
    x = data.examples(kept.example).images()
    flat = x.view(len(kept), -1)
    for j, pairs in enumerate(kept.changed):
        if pairs:
            idx, val = zip(*pairs)
            flat[j, torch.as_tensor(idx)] = torch.as_tensor(val, dtype=flat.dtype)
    return x, kept.reset_index(drop=True)


def sweep(models, data: Dataset, *, attacks: dict, norm: str, eps_grid, batch_size: int | None = None,
          seed: int = 0, progress: bool = True) -> pd.DataFrame:
    """Per-example rows for every (model, attack, ε); ``attacks`` maps a name to its parameters.

    ``models`` is one model, or a mapping of names to models (the rows then carry a ``model``
    column). Each (model, attack, ε) run draws its random starts from a generator seeded with
    ``seed`` on the data's device, so adding a budget to the grid does not change the others'
    numbers. ε = 0 is evaluated too (the attack then cannot move; its accuracy is the clean one).
    """
    named = models if isinstance(models, Mapping) else {None: models}
    frames = []
    for mname, model in named.items():
        for name, params in attacks.items():
            for eps in bar(list(eps_grid), desc=name if mname is None else f"{mname} {name}", enabled=progress):
                rows = evaluate_attack(model, data, attack=name, threat=ThreatModel(norm, eps), batch_size=batch_size,
                                       seed=seed, progress=False, **params)
                frames.append(rows if mname is None else rows.assign(model=mname))
    return pd.concat(frames, ignore_index=True)


def worst_case(model, data: Dataset, *, attacks: Mapping[str, tuple[str, dict]] | Sequence[tuple[str, dict]],
               threat: ThreatModel, batch_size: int | None = None, seed: int = 0,
               progress: bool = True, start: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per-example worst case over an ensemble of attacks, run as a cascade (as AutoAttack does).

    ``attacks`` maps a label to ``(attack name, parameters)`` (a sequence of pairs uses the names as
    labels). The first attack runs on the correctly classified examples; each later one only on
    the examples every earlier attack failed to fool, so the ensemble costs little more than its
    first member on a non-robust model. Every attack draws from a generator seeded with ``seed``.

    Returns one row per example: ``example``, ``label``, ``clean_correct``, ``robust`` (correct
    clean and under every attack), ``fooled_by`` (label of the first attack that succeeded, or
    None), ``linf`` / ``l2`` of that attack's perturbation, and ``forwards`` / ``backwards`` /
    ``seconds`` summed over the attacks that ran on the example; plus ``norm``, ``eps`` and ``units``
    (``"pixel"`` or the per-channel scale).
    ``start``, the rows of an earlier call on the same data and threat, continues that cascade: the
    attacks run on the examples still robust there, and its columns are updated (a copy).
    """
    pairs = list(attacks.items()) if isinstance(attacks, Mapping) else [(name, (name, p)) for name, p in attacks]
    if not isinstance(threat, ThreatModel):
        raise InputError(f"worst_case needs a threat model, got {type(threat).__name__}")
    for _, (name, params) in pairs:  # every name checked before the first attack runs
        get_attack(name).check_params({k: v for k, v in params.items() if k not in ORACLE_ARGS})
    if start is None:
        clean = clean_table(model, data)
        n = len(data)
        out = pd.DataFrame({"example": clean["example"], "label": clean["label"], "clean_correct": clean["correct"],
                            "robust": clean["correct"], "fooled_by": pd.Series([None] * n, dtype=object),
                            "linf": 0.0, "l2": 0.0, "forwards": 0.0, "backwards": 0.0, "seconds": 0.0})
    else:
        if len(start) != len(data) or (start["example"].to_numpy() != data.indices.cpu().numpy()).any():
            raise InputError("start must be the rows of an earlier worst_case on the same data")
        out = start.drop(columns=["norm", "eps", "units"], errors="ignore").copy()
    robust = out["robust"].to_numpy().copy()
    for label, (name, params) in bar(pairs, desc="worst case", enabled=progress):
        pos = robust.nonzero()[0]
        if len(pos) == 0:
            break
        rows = evaluate_attack(model, data.take(torch.as_tensor(pos, device=data.x.device)), attack=name,
                               threat=threat, batch_size=batch_size, seed=seed, progress=False, **params)
        for col in ("forwards", "backwards", "seconds"):
            out.loc[pos, col] += rows[col].to_numpy()
        fooled = ~rows["robust"].to_numpy()
        hit = pos[fooled]
        out.loc[hit, "fooled_by"] = label
        out.loc[hit, "linf"] = rows["linf"].to_numpy()[fooled]
        out.loc[hit, "l2"] = rows["l2"].to_numpy()[fooled]
        out.loc[hit, "robust"] = False
        robust[hit] = False
    out.insert(0, "norm", threat.norm)
    out.insert(1, "eps", threat.eps)
    out.insert(2, "units", threat.units)
    return out


def transfer_rows(models: Mapping, data: Dataset, *, attack: str, threat: ThreatModel, batch_size: int = 500,
                  seed: int = 0, progress: bool = True, **params) -> pd.DataFrame:
    """Per-example transfer: one row per (source, target, example) with ``correct``, whether the
    target classifies the adversarial input crafted on the source correctly (the diagonal is the
    white-box case). Aggregate with :func:`~advlab.evaluate.transfer_table`."""
    x, y = data.images(), data.y
    frames = []
    for src, m_src in bar(models.items(), desc="transfer", enabled=progress):
        gen = seeded_generator(seed, x.device)
        adv = torch.cat([run_attack(attack, m_src, x[i:i + batch_size], y[i:i + batch_size], threat=threat,
                                    generator=gen, **params).x_adv for i in range(0, len(x), batch_size)])
        check_adversarial(x, adv, threat)
        for tgt, m_tgt in models.items():
            frames.append(pd.DataFrame({"source": src, "target": tgt, "example": data.indices.cpu().numpy(),
                                        "correct": (predict(m_tgt, adv) == y).cpu().numpy()}))
    return pd.concat(frames, ignore_index=True)


def transfer_matrix(models: Mapping, data: Dataset, *, attack: str, threat: ThreatModel, batch_size: int = 500,
                    seed: int = 0, progress: bool = True, **params) -> pd.DataFrame:
    """Accuracy of every target model on adversarial inputs crafted on every source model.

    One row per (source, target) with ``n``, ``correct``, ``accuracy``, ``ci_low``, ``ci_high``;
    the diagonal is the white-box accuracy (:func:`transfer_rows`, aggregated).
    """
    return transfer_table(transfer_rows(models, data, attack=attack, threat=threat, batch_size=batch_size,
                                        seed=seed, progress=progress, **params))


def minimal_norms(models: Mapping, data: Dataset, attacks: Mapping[str, tuple[str, dict]],
                  progress: bool = True) -> pd.DataFrame:
    """Per-example minimal perturbations: one row per (model, attack, example).

    ``attacks`` maps a label to ``(attack name, parameters)``; columns ``l2`` and ``linf`` hold
    the perturbation norms, ``success`` whether the returned input fools the model, and
    ``clean_correct`` whether the clean input was classified correctly (summaries use the
    examples with both, :func:`advlab.evaluate.norm_summary`); ``gradient`` whether the model's
    input gradient at the clean input is finite and non-zero: where it is not, a gradient-based
    minimum-norm attack cannot move, and its failure says nothing about the boundary.
    """
    x, y = data.images(), data.y
    frames = []
    for mname, model in bar(models.items(), desc="minimal norms", enabled=progress):
        clean_ok = predict(model, x) == y
        g = loss_and_grad(model, x, y, False)[1].flatten(1)
        has_gradient = (torch.isfinite(g).all(1) & (g.abs().amax(1) > 0)).cpu().numpy()
        for label, (attack, params) in attacks.items():
            with Stopwatch(x.device) as sw:
                res = run_attack(attack, model, x, y, **params)
            check_adversarial(x, res.x_adv, params.get("threat"))
            sizes = perturbation_norms(x, res.x_adv)
            frames.append(pd.DataFrame({
                "model": mname, "attack": label, "example": data.indices.cpu().numpy(),
                "clean_correct": clean_ok.cpu().numpy(), "success": res.success.cpu().numpy(),
                "gradient": has_gradient,
                "l2": sizes["l2"].cpu().numpy(), "linf": sizes["linf"].cpu().numpy(),
                "seconds": sw.seconds / len(x),
            }))
    return pd.concat(frames, ignore_index=True)


def fgsm_eps_for_rate(model, x, y, rate: float = 0.9, norm: str = "linf", hi: float = 1.0,
                      iterations: int = 14) -> float:
    """Smallest FGSM budget (bisection) that fools at least ``rate`` of the batch.

    This is how the DeepFool paper makes FGSM comparable to a minimum-norm attack: the budget is
    set so that FGSM fools 90% of the data. Returns ``hi`` if even that budget falls short.
    FGSM's fooling rate need not grow with ε; the result is the upper end of the final bisection
    bracket, whose lower end (2^-iterations below) fools fewer than ``rate``.
    """
    needed = math.ceil(rate * len(y) - 1e-9)  # count, not a float32 mean: 54/60 must reach 0.9

    def enough(eps):
        return int(run_attack("fgsm", model, x, y, threat=ThreatModel(norm, eps)).success.sum()) >= needed

    if not enough(hi):
        return hi
    lo = 0.0
    for _ in range(iterations):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if enough(mid) else (mid, hi)
    return hi


def rho_adv_rows(models: Mapping, data: Dataset, *, deepfool_params: dict | None = None,
                 fgsm_rate: float = 0.9) -> pd.DataFrame:
    """The DeepFool paper's Table 1 per example: ‖r‖₂/‖x‖₂ of DeepFool and of FGSM, and their time.

    Both attacks run on the examples each model classifies correctly. FGSM's budget is the smallest
    L∞ ε that fools ``fgsm_rate`` of *them* (bisection over all of ``data``, its cost not timed):
    a statistic of the whole set, so an evaluation of this kind must be one block. One row per
    (model, example): ``correct``, and for the correct ones ``deepfool_rho``, ``deepfool_success``,
    ``fgsm_rho``, ``fgsm_success``, ``fgsm_eps`` and the per-example seconds of each attack
    (NaN / False for the others). :func:`~advlab.evaluate.rho_adv_summary` makes the table.
    """
    x, y = data.images(), data.y
    frames = []
    for name, model in models.items():
        correct = predict(model, x) == y
        xc, yc = x[correct], y[correct]
        xnorm = L2.norm(xc)
        with Stopwatch(x.device) as t_df:
            df = run_attack("deepfool", model, xc, yc, **(deepfool_params or {}))
        check_adversarial(xc, df.x_adv)
        eps = fgsm_eps_for_rate(model, xc, yc, fgsm_rate)
        with Stopwatch(x.device) as t_fg:
            fg = run_attack("fgsm", model, xc, yc, threat=ThreatModel("linf", eps))
        n, k = len(y), len(yc)
        cols = {c: np.full(n, np.nan) for c in ("deepfool_rho", "fgsm_rho", "deepfool_seconds", "fgsm_seconds")}
        flags = {c: np.zeros(n, dtype=bool) for c in ("deepfool_success", "fgsm_success")}
        at = correct.cpu().numpy()
        cols["deepfool_rho"][at] = (L2.norm(df.x_adv - xc) / xnorm).cpu().numpy()
        cols["fgsm_rho"][at] = (L2.norm(fg.x_adv - xc) / xnorm).cpu().numpy()
        cols["deepfool_seconds"][at] = t_df.seconds / max(k, 1)
        cols["fgsm_seconds"][at] = t_fg.seconds / max(k, 1)
        flags["deepfool_success"][at] = df.success.cpu().numpy()
        flags["fgsm_success"][at] = fg.success.cpu().numpy()
        frames.append(pd.DataFrame({"model": name, "example": data.indices.cpu().numpy(), "correct": at,
                                    **cols, **flags, "fgsm_eps": eps}))
    return pd.concat(frames, ignore_index=True)


def noise_injection(model, data: Dataset, *, sigmas, draws: int, batch_size: int = 256, seed: int = 0,
                    progress: bool = True) -> pd.DataFrame:
    """Accuracy under Gaussian noise x + σ·N(0, I) (clipped to [0, 1]): one row per (σ, example).

    For every σ, ``draws`` single draws (each one query of the ``noise`` attack) give the mean
    over draws, and the ``noise`` attack with ``draws`` queries gives the worst of them. Columns:
    ``sigma``, ``example``, ``clean_correct``, ``mean_correct`` (fraction of single draws
    classified correctly, 0 for a misclassified clean input), ``robust`` (correct clean and under
    every one of the worst-of-K attack's draws), ``queries`` (of that attack), and ``l2`` /
    ``linf``, the norms of the first single draw's noise (pixel units).
    """
    check_positive_int(draws=draws)
    frames = []
    for sigma in bar(list(sigmas), desc="noise σ", enabled=progress):
        gen = seeded_generator(seed, data.x.device)
        single = [evaluate_attack(model, data, attack="noise", sigma=sigma, draws=1, output="label",
                                  batch_size=batch_size, generator=gen, progress=False) for _ in range(draws)]
        worst = evaluate_attack(model, data, attack="noise", sigma=sigma, draws=draws, output="label",
                                batch_size=batch_size, generator=gen, progress=False)
        frames.append(pd.DataFrame({
            "sigma": sigma, "example": worst.example, "clean_correct": worst.clean_correct,
            "mean_correct": np.mean([r.robust.to_numpy() for r in single], axis=0),
            "robust": worst.robust, "queries": worst.queries, "l2": single[0].l2, "linf": single[0].linf,
        }))
    return pd.concat(frames, ignore_index=True)

