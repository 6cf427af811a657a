"""Certificate kinds: randomized smoothing (CERTIFY, and SmoothAdv scored by PREDICT), IBP / CROWN bounds,
and exact verification by MILP of what the bounds and attacks leave open."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ...certify import BOUND_METHODS, certify, exact_verification, relu_count, smoothadv, smoothed_predict, verify
from ...certify.bounds import ALPHA_LR, ALPHA_STEPS, CROWN_METHODS
from ...checks import check_choice, check_positive_int
from ...errors import InputError
from ...evaluate import clean_table
from ...timing import Stopwatch
from ..spec import block_seed, per_model, register_kind, threat_of


@register_kind("smoothing", "randomized-smoothing CERTIFY (certify.certify); params: sigma, n0, n, alpha, batch",
               precisions=("fp32",))
def _smoothing(models, data, *, seed, batch_size, sigma, n0, n, alpha, batch=1000):
    x, y = data.images(), data.y

    def rows(m):
        gen = torch.Generator(device=x.device).manual_seed(seed)
        with Stopwatch(x.device) as sw:
            pred, radius = certify(m, x, sigma=sigma, n0=n0, n=n, alpha=alpha, batch_size=batch, generator=gen)
        return pd.DataFrame({"example": data.indices.cpu().numpy(), "label": y.cpu().numpy(),
                             "prediction": pred.cpu().numpy(), "radius": radius.cpu().numpy(),
                             "correct": (pred == y).cpu().numpy(), "seconds": sw.seconds / len(y)})
    return per_model(models, rows)


@register_kind("smoothadv", "SmoothAdv on the smoothed classifier, scored by PREDICT (certify.smoothadv, "
                            "smoothed_predict); params: sigma, radii, steps, draws, n, alpha, batch")
def _smoothadv(models, data, *, seed, batch_size, sigma, radii, steps, draws, n, alpha, batch=1000):
    x, y = data.images(), data.y

    def rows(m):
        frames = []
        for r in radii:
            x_adv = smoothadv(m, x, y, sigma=sigma, eps=r, steps=steps, draws=draws, seed=seed)
            gen = torch.Generator(device=x.device).manual_seed(block_seed(seed, 0))  # PREDICT's own stream
            pred = smoothed_predict(m, x_adv, sigma=sigma, n=n, alpha=alpha, batch_size=batch, generator=gen)
            frames.append(pd.DataFrame({"radius": r, "example": data.indices.cpu().numpy(), "label": y.cpu().numpy(),
                                        "prediction": pred.cpu().numpy(), "correct": (pred == y).cpu().numpy()}))
        return pd.concat(frames, ignore_index=True)
    return per_model(models, rows)


@register_kind("bounds", "IBP / CROWN certificates (certify.verify); params: threat, methods, unsupported ('error', "
                        "or 'skip': a model with an operation bound propagation does not support gets rows without "
                        "certificates and the reason in column `unsupported`), max_relus (the CROWN methods are "
                        "left out, with the reason in column `skipped`, for a model with more ReLUs)",
               precisions=("fp32",))
def _bounds(models, data, *, seed, batch_size, threat, methods=("ibp", "crown"), unsupported="error",
            max_relus=None, alpha_steps=ALPHA_STEPS, alpha_lr=ALPHA_LR):
    t = threat_of(threat)
    check_choice(unsupported, ("error", "skip"), "unsupported")
    for m in methods:
        check_choice(m, BOUND_METHODS, "bound method")
    if max_relus is not None:
        check_positive_int(max_relus=max_relus)

    def rows(m):
        try:
            n = relu_count(m, data.images()[:1])
        except InputError as e:
            if unsupported == "error":
                raise
            return clean_table(m, data, batch_size=batch_size).rename(columns={"correct": "clean_correct"})[
                ["example", "label", "clean_correct"]].assign(unsupported=str(e), norm=t.norm, eps=t.eps)
        costly = [k for k in methods if k in CROWN_METHODS] if max_relus is not None and n > max_relus else []
        out = verify(m, data, t, methods=tuple(k for k in methods if k not in costly), batch_size=batch_size,
                     progress=False, alpha_steps=alpha_steps, alpha_lr=alpha_lr)
        if costly:  # CROWN bounds every unstable neuron with a backward pass: its cost grows with them
            out["skipped"] = (f"{', '.join(costly)}: the model has {n:,} ReLUs, more than max_relus = "
                              f"{max_relus:,}")
        return out
    return per_model(models, rows)


@register_kind("exact", "exact verification by MILP (certify.exact_verification) of the first `head` examples that "
                   "the inputs `certificates` (kind bounds) and `attacks` (kind robust) leave open; params: threat, "
                   "time_limit, head, refine ('lp': LP-tightened intermediate bounds, or 'none')", takes_inputs=True,
               precisions=("fp32",))
def _exact(models, data, *, seed, batch_size, start, inputs, threat, time_limit, head, refine="lp",
           alpha_steps=ALPHA_STEPS, alpha_lr=ALPHA_LR):
    (name, model), = models.items()
    cert, att = inputs["certificates"], inputs["attacks"]
    certified = np.logical_or.reduce([cert[m].to_numpy() for m in BOUND_METHODS if m in cert.columns])
    attacked = att["robust"].to_numpy()
    in_head = start + np.arange(len(data)) < head
    exact = np.full(len(data), None, dtype=object)
    exact[in_head & certified] = "robust"
    exact[in_head & ~attacked] = "not robust"
    extra = {c: np.full(len(data), np.nan) for c in ("milp_seconds", "binaries", "binaries_crown", "lps")}
    gap = np.flatnonzero(in_head & attacked & ~certified)
    if len(gap):
        idx = torch.as_tensor(gap, device=data.x.device)
        ex = exact_verification(model, data.images()[idx], data.y[idx], threat_of(threat), time_limit=time_limit,
                                refine=refine, progress=False, alpha_steps=alpha_steps, alpha_lr=alpha_lr)
        exact[gap] = ex["verdict"].to_numpy()
        for c, col in (("milp_seconds", "seconds"), ("binaries", "binaries"), ("binaries_crown", "binaries_crown"),
                       ("lps", "lps")):
            extra[c][gap] = ex[col].to_numpy()
    return pd.DataFrame({"model": name, "example": data.indices.cpu().numpy(), "exact": exact, **extra})


@register_kind("bound_cost", "seconds per example of IBP and CROWN (certify.verify, one batch per block) and the "
                             "ReLU count of every model; params: threat", precisions=("fp32",))
def _bound_cost(models, data, *, seed, batch_size, threat):
    x = data.images()
    return per_model(models, lambda m: verify(m, data, threat_of(threat), batch_size=batch_size, progress=False)
                     .assign(relus=relu_count(m, x)))
