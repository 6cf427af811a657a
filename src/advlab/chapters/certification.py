"""Certification: the chapter's parameters and profiles, the plan of its models, and its compositions.

Every model is a :class:`~advlab.training.TrainConfig` built here: for each certified L∞ budget a
standard, a PGD-trained and an IBP-trained network of two architectures (Wong & Kolter's small
ConvNet and a small MLP the MILP decides exactly), and the noise-trained base classifiers of
randomized smoothing on the MNIST-scale dataset (the book's small CNN, max pooling, also certified
by IBP and CROWN under L2) and CIFAR-10.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from scipy.spatial import HalfspaceIntersection
from torch import nn

from ..certify import bound_spec
from ..certify.bounds import ALPHA_STEPS  # noqa: F401  (the notebook states it)
from ..config import ALL, Chapter, Config, Param, Relation
from ..errors import InputError
from ..evaluate import certified_curve, nearest, rate, value_interval
from ..results import DataSpec, Evaluation, Plan, RandomNet
from ..threat import ThreatModel
from ..training import TrainConfig
from . import targets

# Published numbers the chapter sets its own beside (%).
COHEN_CIFAR = {"sigma": 0.25, "radii": [0.0, 0.25, 0.5, 0.75], "certified": [74.8, 60.0, 42.8, 26.6]}
WONG_KOLTER_ERROR = {"eps": 0.1, "robust error bound": 5.8}  # small ConvNet, MNIST, L∞
CROWN_IBP_ERROR = {"eps": 0.3, "verified error": 6.7}  # CROWN-IBP, MNIST, L∞ (Zhang et al. 2020)
TRAININGS = ("standard", "PGD", "IBP", "CROWN-IBP")
# the sandwich's bounds: label -> column (α-CROWN as published only on the architectures of `full_alpha`)
CERTIFICATES = {"IBP": "ibp", "CROWN": "crown", "α-CROWN (final layer)": "alpha_crown_final",
                "α-CROWN": "alpha_crown"}

CHAPTER = Chapter(
    name="certification",
    notebook="certification.py",
    title="Certification: bounds, exact verification, randomized smoothing",
    position=4,
    params={
        "seed": targets.PARAMS["seed"],
        "dataset": targets.PARAMS["dataset"],
        "eps_list": Param(("list", float), "L∞ budgets certified on the MNIST-scale dataset, pixel units",
                          positive=True),
        "ibp_train_eps": Param(("list", float), "ε of IBP training for each budget of eps_list (Gowal et al.: "
                               "larger than the certified ε)", positive=True),
        "epochs": Param(int, "epochs of every MNIST-scale training (standard, PGD, IBP, noise)", minimum=1),
        "train_subset": Param(int, f"their training examples ({ALL!r}: the whole split)", minimum=1, all_allowed=True),
        "lr": Param(float, "their peak learning rate (one-cycle schedule)", positive=True),
        "pgd_steps": Param(int, "PGD steps of PGD training (step 2.5 ε / steps)", minimum=1),
        "ibp_kappa": Param(float, "final weight κ of the natural loss in IBP training", minimum=0, maximum=1),
        "ibp_warmup": Param(float, "share of IBP training at ε = 0", minimum=0, maximum=1),
        "ibp_ramp": Param(float, "share of IBP training over which ε and κ ramp linearly", minimum=0, maximum=1),
        "mlp_hidden": Param(("list", int), "hidden widths of the small MLP decided exactly by MILP", minimum=1),
        "n_cert": Param(int, "test examples of the certified / attacked comparison (seeded, stratified)", minimum=1),
        "full_alpha": Param(("list", str), "architectures certified by α-CROWN as published (intermediate slopes "
                                           "optimised too, about alpha_steps CROWN passes per example) besides its "
                                           "final-layer variant: mlp, conv_small, or none",
                            choices=("mlp", "conv_small", "none")),
        "n_milp": Param(int, "of those, examples the MILP decides for each MLP (the first ones)", minimum=1),
        "milp_seconds": Param(float, "solver time per example before the MILP calls it undecided", positive=True),
        "apgd_steps": Param(int, "iterations of APGD-CE and of APGD-T (per target class)", minimum=1),
        "apgd_targets": Param(int, "target classes of APGD-T, the highest-scoring ones (AutoAttack: 9)", minimum=1),
        "square_queries": Param(int, "queries per example of the Square attack", minimum=1),
        "toy_width": Param(int, "hidden width of the two-dimensional toy network", minimum=1),
        "toy_eps": Param(float, "L∞ radius of the toy network's input box", positive=True),
        "toy_samples": Param(int, "grid points per side that trace the true image of the toy box", minimum=2),
        "mnist_sigmas": Param(("list", float), "noise σ of the smoothed MNIST-scale classifiers", positive=True),
        "cifar_sigmas": Param(("list", float), "noise σ of the smoothed CIFAR-10 classifiers", positive=True),
        "cnn_width": Param(float, "width of the small CNN (max pooling) that is the MNIST-scale base classifier of "
                                  "smoothing and is certified by IBP and CROWN beside it", positive=True),
        "bound_radii": Param(("list", float), "L2 radii at which IBP and CROWN certify the small CNN, pixel units",
                             positive=True),
        "n_bound": Param(int, "of the smoothing examples, how many IBP and CROWN certify (the first ones)",
                         minimum=1),
        "cifar_model": targets.PARAMS["cifar_model"],
        "cifar_width": targets.PARAMS["cifar_width"],
        "cifar_epochs": Param(int, "epochs of the noise-trained VGGs", minimum=1),
        "cifar_subset": Param(int, f"their training examples ({ALL!r}: all 50,000)", minimum=1, all_allowed=True),
        "n_smooth": Param(int, "test examples certified by randomized smoothing, per dataset and σ", minimum=1),
        "n0": Param(int, "selection samples of CERTIFY (Cohen et al.: 100)", minimum=1),
        "n_samples": Param(int, "estimation samples of CERTIFY (Cohen et al.: 100,000)", minimum=2),
        "alpha": Param(float, "failure probability of each certificate", positive=True, maximum=0.5),
        "radii": Param(("list", float), "L2 radii of the certified-accuracy curves, pixel units", minimum=0),
        "attack_radii": Param(("list", float), "L2 radii of the SmoothAdv attack (empirical robustness)",
                              positive=True),
        "smoothadv_steps": Param(int, "PGD steps of SmoothAdv", minimum=1),
        "smoothadv_draws": Param(int, "noise draws per SmoothAdv step", minimum=1),
        "cost_widths": Param(("list", float), "widths of the small ConvNet timed for the cost of a certificate",
                             positive=True),
        "cost_n": Param(int, "examples per timing of the cost comparison", minimum=1),
        "batch_size": Param(int, "examples per bound or attack batch", minimum=1),
    },
    base="quick",
    profiles={
        "quick": dict(seed=0, dataset="mnist", eps_list=[0.1, 0.3], ibp_train_eps=[0.15, 0.4], epochs=3,
                      train_subset=30000, lr=0.05, pgd_steps=5, ibp_kappa=0.5, ibp_warmup=0.05, ibp_ramp=0.5,
                      mlp_hidden=[32, 32], full_alpha=["mlp"], n_cert=100, n_milp=30, milp_seconds=3.0, apgd_steps=20,
                      apgd_targets=3,
                      square_queries=100, toy_width=16, toy_eps=0.15, toy_samples=201, mnist_sigmas=[0.25, 0.5, 1.0],
                      cnn_width=0.25, bound_radii=[0.05, 0.1, 0.25], n_bound=30,
                      cifar_sigmas=[0.12, 0.25, 0.5], cifar_model="vgg19", cifar_width=0.125, cifar_epochs=2,
                      cifar_subset=25000, n_smooth=60, n0=50, n_samples=500, alpha=0.001,
                      radii=[0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0], attack_radii=[0.25, 0.5, 1.0], smoothadv_steps=5,
                      smoothadv_draws=4, cost_widths=[0.25, 0.5, 1.0], cost_n=20, batch_size=100),
        "smoke": dict(eps_list=[0.1], ibp_train_eps=[0.15], epochs=1, train_subset=3000, n_cert=30, n_milp=10,
                      milp_seconds=10.0, apgd_steps=5, square_queries=20, toy_samples=51, mnist_sigmas=[0.5],
                      bound_radii=[0.05, 0.1], n_bound=10,
                      cifar_sigmas=[0.25], cifar_model="vgg11", cifar_epochs=1, cifar_subset=2000, n_smooth=20,
                      n0=20, n_samples=100, attack_radii=[0.5], smoothadv_steps=2, smoothadv_draws=2,
                      cost_widths=[0.25, 0.5], cost_n=4),
        "paper": dict(epochs=20, train_subset=ALL, pgd_steps=20, mlp_hidden=[50, 50], full_alpha=["mlp", "conv_small"],
                      n_cert=1000, n_milp=200, milp_seconds=60.0, apgd_steps=100, apgd_targets=9, square_queries=5000,
                      cifar_width=1.0, cnn_width=1.0, n_bound=100, cifar_epochs=30,
                      cifar_subset=ALL, n_smooth=500, n0=100, n_samples=100_000, smoothadv_steps=20,
                      smoothadv_draws=16, cost_widths=[0.25, 0.5, 1.0, 2.0], cost_n=100),
    },
    relations=(
        Relation(("eps_list", "ibp_train_eps"), lambda c: len(c.eps_list) == len(c.ibp_train_eps),
                 "ibp_train_eps needs one training ε per certified budget of eps_list"),
        Relation(("n_milp", "n_cert"), lambda c: c.n_milp <= c.n_cert,
                 "n_milp must not exceed n_cert: the MILP decides examples of the certified subset"),
        Relation(("full_alpha",), lambda c: "none" not in c.full_alpha or c.full_alpha == ["none"],
                 "full_alpha is either 'none' alone or a list of mlp, conv_small"),
        Relation(("n_bound", "n_smooth"), lambda c: c.n_bound <= c.n_smooth,
                 "n_bound must not exceed n_smooth: IBP and CROWN certify examples of the smoothing subset"),
        Relation(("n0", "n_samples"), lambda c: c.n0 < c.n_samples,
                 "n0 (selection samples) must be smaller than n_samples (estimation samples)"),
        Relation(("ibp_warmup", "ibp_ramp"), lambda c: c.ibp_warmup + c.ibp_ramp <= 1,
                 "ibp_warmup + ibp_ramp (shares of the training steps) must not exceed 1"),
    ),
)


def _train(cfg: Config, model: str, options: dict, method: str = "standard", params: dict | None = None):
    return TrainConfig(dataset=cfg.dataset, model=model, model_options=options, epochs=cfg.epochs,
                       train_subset=cfg.train_subset, lr=cfg.lr, seed=cfg.seed, method=method,
                       method_params=params or {})


def architectures(cfg: Config) -> dict[str, tuple[str, dict]]:
    """The certified architectures: Wong & Kolter's small ConvNet and the small MLP of the MILP."""
    return {"small ConvNet": ("conv_small", {}), "small MLP": ("mlp", {"hidden": tuple(cfg.mlp_hidden)})}


def bound_configs(cfg: Config) -> dict[tuple[str, str, float], TrainConfig]:
    """(architecture, training, certified ε) -> config: the standard model (shared by every ε), PGD
    training at ε, IBP and CROWN-IBP training at its training ε with Gowal et al.'s ramp."""
    out = {}
    for arch, (name, opts) in architectures(cfg).items():
        for eps, train_eps in zip(cfg.eps_list, cfg.ibp_train_eps):
            out[(arch, "standard", eps)] = _train(cfg, name, opts)
            out[(arch, "PGD", eps)] = _train(cfg, name, opts, "pgd", {"norm": "linf", "eps": eps,
                                                                     "steps": cfg.pgd_steps})
            schedule = {"eps": train_eps, "kappa": cfg.ibp_kappa, "warmup": cfg.ibp_warmup, "ramp": cfg.ibp_ramp}
            out[(arch, "IBP", eps)] = _train(cfg, name, opts, "ibp", schedule)
            # Zhang et al.'s MNIST setting: β from 1 (CROWN-IBP's bound) to 0 (IBP's) over the ε ramp
            out[(arch, "CROWN-IBP", eps)] = _train(cfg, name, opts, "crown_ibp",
                                                   {**schedule, "beta_start": 1.0, "beta_end": 0.0})
    return out


def smoothing_configs(cfg: Config) -> dict[tuple[str, float], TrainConfig]:
    """(dataset, σ) -> the base classifier trained with Gaussian noise σ (Cohen et al.'s recipe: the
    noise level of training is the noise level of smoothing): the small CNN on the MNIST-scale
    dataset, a VGG on CIFAR-10."""
    out = {(cfg.dataset, s): _train(cfg, "small_cnn", {"width": cfg.cnn_width}, "noise", {"sigma": s})
           for s in cfg.mnist_sigmas}
    out.update({("cifar10", s): TrainConfig(dataset="cifar10", model=cfg.cifar_model,
                                            model_options={"width": cfg.cifar_width}, epochs=cfg.cifar_epochs,
                                            train_subset=cfg.cifar_subset, augment=True, seed=cfg.seed,
                                            method="noise", method_params={"sigma": s})
                for s in cfg.cifar_sigmas})
    return out


# -- the sandwich ---------------------------------------------------------------------------------
def sandwich_evaluations(cfg: Config) -> dict[tuple[str, str, float], dict[str, Evaluation]]:
    """(architecture, training, ε) -> its IBP / CROWN certificates (``"bounds"``), the adaptive evaluation's
    verdict (``"attacks"``: APGD-CE, APGD-T, Square) on the same ``n_cert`` test examples and, for the MLP,
    the MILP's exact verdict on the first ``n_milp`` examples those two leave open (``"exact"``)."""
    data = DataSpec(cfg.dataset, n=cfg.n_cert, seed=cfg.seed)
    ensemble = {"steps": cfg.apgd_steps, "targets": cfg.apgd_targets, "queries": cfg.square_queries}
    out = {}
    for key, c in bound_configs(cfg).items():
        threat = ["linf", key[2]]
        methods = [m for m in CERTIFICATES.values() if m != "alpha_crown" or c.model in cfg.full_alpha]
        evs = {"bounds": Evaluation("bounds", {"model": c}, data, {"threat": threat, "methods": methods},
                                    seed=cfg.seed, block=cfg.batch_size),
               "attacks": Evaluation("robust", {"model": c}, data, {"threats": [threat], **ensemble}, seed=cfg.seed,
                                     block=cfg.batch_size)}
        if key[0] == "small MLP":
            evs["exact"] = Evaluation("exact", {"model": c}, data,
                                      {"threat": threat, "time_limit": cfg.milp_seconds, "head": cfg.n_milp},
                                      seed=cfg.seed, block=cfg.batch_size,
                                      inputs={"certificates": evs["bounds"], "attacks": evs["attacks"]})
        out[key] = evs
    return out


def sandwich_rows(tables: dict) -> pd.DataFrame:
    """Per-example rows of every (architecture, training, ε) from the tables of
    :func:`sandwich_evaluations` (``tables[key][part]``).

    Columns: ``architecture``, ``training``, ``eps``, ``example``, ``clean_correct``, ``ibp``,
    ``crown``, ``alpha_crown_final``, ``alpha_crown`` (NaN where not run), ``certified`` (any of
    them), ``attacked`` (robust under the ensemble), ``exact`` (robust / not robust / undecided, or
    None beyond the MILP's examples), the MILP's ``binaries`` (after LP tightening), ``binaries_crown``
    (before) and ``lps``, ``*_seconds``.
    """
    frames = []
    for (arch, training, eps), parts in tables.items():
        rows = parts["bounds"].drop(columns=["model", "block"])
        att = parts["attacks"]
        if not (rows["example"].to_numpy() == att["example"].to_numpy()).all():
            raise InputError("the certificates and the attacks cover different examples")
        rows["attacked"] = att["robust"].to_numpy()
        rows["attack_seconds"] = att["seconds"].to_numpy()
        rows["certified"] = np.logical_or.reduce([rows[c].to_numpy() for c in CERTIFICATES.values() if c in rows])
        rows["exact"] = parts["exact"]["exact"].to_numpy() if "exact" in parts else None
        for col in ("milp_seconds", "binaries", "binaries_crown", "lps"):
            rows[col] = parts["exact"][col].to_numpy() if "exact" in parts else np.nan
        frames.append(rows.assign(architecture=arch, training=training))
    return pd.concat(frames, ignore_index=True)


def sandwich_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Certified (IBP, CROWN, both α-CROWNs where run, any of them) ≤ exact ≤ attacked accuracy with 95% intervals, per
    architecture, training and ε (long format: one row per bound). The exact accuracy counts only the
    MILP's examples; undecided ones are reported, never counted as robust."""
    out = []
    for (arch, training, eps), g in rows.groupby(["architecture", "training", "eps"], sort=False):
        for bound, col in (*CERTIFICATES.items(), ("any certificate", "certified"),
                           ("attacked (ensemble)", "attacked")):
            if col not in g or g[col].isna().all():  # a method not run on this architecture
                continue
            out.append({"architecture": arch, "training": training, "eps": eps, "bound": bound,
                        **rate(int(g[col].sum()), len(g))})
        decided = g[g["exact"].notna()]
        if len(decided):
            out.append({"architecture": arch, "training": training, "eps": eps, "bound": "exact (MILP)",
                        **rate(int((decided["exact"] == "robust").sum()), len(decided)),
                        "undecided": int((decided["exact"] == "undecided").sum())})
    return pd.DataFrame(out)


def sandwich_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The sandwich as a table: one row per (architecture, ε, training), one column per bound,
    cells '61.0 [50.7, 70.6]' (%, 95% CI); the exact column says how many examples stayed undecided."""
    cells = []
    for _, r in summary.iterrows():
        c = value_interval(r["accuracy"], r["ci_low"], r["ci_high"])
        if r["bound"] == "exact (MILP)":
            c += f" of {r['n']}, {int(r['undecided'])} undecided"
        cells.append(c)
    t = summary.assign(cell=cells).pivot_table(index=["architecture", "eps", "training"], columns="bound",
                                               values="cell", aggfunc="first", sort=False)
    order = [*CERTIFICATES, "any certificate", "exact (MILP)", "attacked (ensemble)"]
    return t[[c for c in order if c in t.columns]].fillna("not run").rename_axis(columns="accuracy (%)")


def published_comparison(summary: pd.DataFrame) -> pd.DataFrame:
    """The small ConvNet trained by IBP and by CROWN-IBP, each ε: its best certified accuracy beside
    Wong & Kolter's (ε = 0.1) and CROWN-IBP's (ε = 0.3) published certified accuracy."""
    published = {WONG_KOLTER_ERROR["eps"]: f"{100 - WONG_KOLTER_ERROR['robust error bound']:.1f} (Wong & Kolter)",
                 CROWN_IBP_ERROR["eps"]: f"{100 - CROWN_IBP_ERROR['verified error']:.1f} (CROWN-IBP)"}
    g = summary[(summary["bound"] == "any certificate") & (summary["architecture"] == "small ConvNet")
                & summary["training"].isin(["IBP", "CROWN-IBP"])]
    t = g.assign(cell=[value_interval(a, lo, hi) for a, lo, hi in zip(g["accuracy"], g["ci_low"], g["ci_high"])])
    out = t.pivot(index="eps", columns="training", values="cell")[["IBP", "CROWN-IBP"]]
    out.columns = [f"{c} training, certified (%)" for c in out.columns]
    out["published certified (%)"] = [published.get(e, "none at this ε") for e in out.index]
    return out.rename_axis("L∞ ε")


def milp_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per MLP and ε: the examples the MILP was given (those no certificate and no attack decided),
    how many it decided, its binaries per example before and after LP tightening, and its time."""
    sent = rows[rows["binaries"].notna()]
    out = []
    for (training, eps), g in sent.groupby(["training", "eps"], sort=False):
        out.append({"training": training, "ε": eps, "given to the MILP": len(g),
                    "decided": int((g["exact"] != "undecided").sum()),
                    "robust": int((g["exact"] == "robust").sum()),
                    "not robust": int((g["exact"] == "not robust").sum()),
                    "binaries (CROWN bounds)": g["binaries_crown"].mean(), "binaries (after LP)": g["binaries"].mean(),
                    "LPs": g["lps"].mean(), "seconds": g["milp_seconds"].mean()})
    cols = ["given to the MILP", "decided", "robust", "not robust", "binaries (CROWN bounds)", "binaries (after LP)",
            "LPs", "seconds"]
    if not out:
        return pd.DataFrame(columns=["training", "ε", *cols]).set_index(["training", "ε"])
    return pd.DataFrame(out).set_index(["training", "ε"]).round(1)


def soundness(rows: pd.DataFrame) -> dict:
    """Counts that must be zero: certified yet attacked successfully, certified yet not robust by the
    MILP, robust by the MILP yet attacked successfully."""
    exact = rows["exact"].fillna("")
    return {"certified but fooled by an attack": int((rows["certified"] & ~rows["attacked"]).sum()),
            "certified but not robust (MILP)": int((rows["certified"] & (exact == "not robust")).sum()),
            "robust (MILP) but fooled by an attack": int(((exact == "robust") & ~rows["attacked"]).sum())}


# -- the toy network ------------------------------------------------------------------------------
def toy_network(width: int, seed: int) -> nn.Sequential:
    """A random 2 → width → width → 2 ReLU network: small enough to draw its reachable set."""
    g = torch.Generator().manual_seed(seed)
    net = nn.Sequential(nn.Linear(2, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 2))
    with torch.no_grad():
        for m in net:
            if isinstance(m, nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) / m.in_features ** 0.5)
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
    return net.eval()


def toy_sets(net: nn.Sequential, eps: float, samples: int, directions: int = 72) -> dict:
    """The toy network's output set over the box [0.5 ± eps]²: the dense image (``points``), and the
    outer bounds of IBP and CROWN as polygons (bounds on c·f for ``directions`` unit vectors c,
    intersected; for IBP the intersection of its four axis bounds is its box)."""
    centre = torch.full((1, 2), 0.5)
    threat = ThreatModel("linf", eps)
    t = torch.linspace(-eps, eps, samples)
    grid = centre + torch.stack(torch.meshgrid(t, t, indexing="ij"), -1).view(-1, 2)
    with torch.no_grad():
        points = net(grid).numpy()
    angles = np.linspace(0, 2 * np.pi, directions, endpoint=False)
    c = torch.tensor(np.stack([np.cos(angles), np.sin(angles)], 1), dtype=torch.float32)
    out = {"points": points}
    for method in ("ibp", "crown"):
        cc = torch.cat([torch.eye(2), -torch.eye(2)]) if method == "ibp" else c
        up = bound_spec(net, centre, threat, cc, method=method, upper=True).upper[0].numpy()
        halfspaces = np.concatenate([cc.numpy(), -up[:, None]], 1)
        inner = points.mean(0)
        out[method] = _polygon(HalfspaceIntersection(halfspaces, inner).intersections)
    return out


def _polygon(vertices: np.ndarray) -> np.ndarray:
    centre = vertices.mean(0)
    order = np.argsort(np.arctan2(vertices[:, 1] - centre[1], vertices[:, 0] - centre[0]))
    return vertices[order]


# -- randomized smoothing ---------------------------------------------------------------------------
SMOOTHING_BLOCK = 10  # examples per block of CERTIFY: at n = 100,000 samples each, enough to share out


def smoothing_evaluations(cfg: Config) -> dict[tuple[str, float], Evaluation]:
    """(dataset, σ) -> CERTIFY on ``n_smooth`` test examples with the model trained at that σ."""
    return {(ds, s): Evaluation("smoothing", {"base": c}, DataSpec(ds, n=cfg.n_smooth, seed=cfg.seed),
                                {"sigma": s, "n0": cfg.n0, "n": cfg.n_samples, "alpha": cfg.alpha,
                                 "batch": cfg.batch_size * 10}, seed=cfg.seed, block=SMOOTHING_BLOCK)
            for (ds, s), c in smoothing_configs(cfg).items()}


def smoothadv_evaluations(cfg: Config) -> dict[tuple[str, float], Evaluation]:
    """(dataset, σ) -> SmoothAdv at every attack radius on the CERTIFY examples, scored by PREDICT."""
    return {key: Evaluation("smoothadv", ev.models, ev.data,
                            {"sigma": key[1], "radii": cfg.attack_radii, "steps": cfg.smoothadv_steps,
                             "draws": cfg.smoothadv_draws, "n": cfg.n_samples, "alpha": cfg.alpha,
                             "batch": cfg.batch_size * 10}, seed=cfg.seed, block=SMOOTHING_BLOCK)
            for key, ev in smoothing_evaluations(cfg).items()}


def cnn_bound_evaluations(cfg: Config) -> dict[tuple[float, float], Evaluation]:
    """(σ, L2 radius) -> IBP and CROWN on the small CNN trained at σ (the MNIST-scale base classifier
    of smoothing), on ``n_bound`` of smoothing's examples: the network itself certified,
    beside its smoothed version."""
    out = {}
    for (ds, s), c in smoothing_configs(cfg).items():
        if ds != cfg.dataset:
            continue
        data = DataSpec(ds, n=cfg.n_smooth, seed=cfg.seed).within(cfg.n_bound)
        out.update({(s, r): Evaluation("bounds", {"base": c}, data, {"threat": ["l2", r], "methods": ["ibp", "crown"]},
                                       seed=cfg.seed, block=cfg.batch_size) for r in cfg.bound_radii})
    return out


def cnn_comparison(smooth_rows: dict, bound_rows: dict, dataset: str) -> pd.DataFrame:
    """Per σ and L2 radius, on the same examples: the small CNN certified by IBP and by CROWN (the
    network itself, deterministic) and its smoothed classifier certified by CERTIFY (with probability
    1 − α), as '%' cells with 95% intervals."""
    out = []
    for (s, r), b in bound_rows.items():
        smooth = smooth_rows[(dataset, s)].set_index("example").loc[b["example"].to_numpy()]
        row = {"σ": s, "L2 radius": r}
        for label, hits in (("IBP", b["ibp"]), ("CROWN", b["crown"]),
                            ("smoothing (CERTIFY)", smooth["correct"] & (smooth["radius"] >= r))):
            k = rate(int(hits.sum()), len(b))
            row[f"{label} (%)"] = value_interval(k["accuracy"], k["ci_low"], k["ci_high"])
        row["n"] = len(b)
        out.append(row)
    return pd.DataFrame(out).set_index(["σ", "L2 radius"])


def plan(cfg: Config) -> Plan:
    """The chapter's trainings, its certificates, attacks and exact verification, its CERTIFY and
    SmoothAdv runs and the cost of a certificate (what ``advlab precompute`` fills). The toy figure
    (a random 2-D network's output set, milliseconds, no number) is drawn in the notebook."""
    trainings = {f"{arch} {training} ε={eps:g}": c for (arch, training, eps), c in bound_configs(cfg).items()}
    trainings.update({f"{ds} noise σ={s:g}": c for (ds, s), c in smoothing_configs(cfg).items()})
    evaluations = {f"{part} {arch} {training} ε={eps:g}": ev
                   for (arch, training, eps), evs in sandwich_evaluations(cfg).items() for part, ev in evs.items()}
    evaluations.update({f"smoothing {ds} σ={s:g}": ev for (ds, s), ev in smoothing_evaluations(cfg).items()})
    evaluations.update({f"SmoothAdv {ds} σ={s:g}": ev for (ds, s), ev in smoothadv_evaluations(cfg).items()})
    evaluations.update({("small CNN bounds", s, r): ev for (s, r), ev in cnn_bound_evaluations(cfg).items()})
    evaluations["bound cost"] = bound_cost_evaluation(cfg)
    return Plan(trainings=trainings, evaluations=evaluations)


def empirical_curve(rows: pd.DataFrame) -> pd.DataFrame:
    """The smoothed classifier's accuracy under SmoothAdv at every attack radius, from the rows of
    :func:`smoothadv_evaluations` (its prediction by PREDICT equal to the label; abstentions count
    as errors), with 95% intervals."""
    return pd.DataFrame([{"radius": r, **rate(int(g["correct"].sum()), len(g))}
                         for r, g in rows.groupby("radius", sort=True)])


def smoothing_table(smooth_rows: dict, radii) -> pd.DataFrame:
    """Per (dataset, σ): certified accuracy (%) at every radius, abstention rate (%), and the median
    certified radius of the correctly certified examples."""
    out = {}
    for (ds, s), r in smooth_rows.items():
        row = {f"r = {x:g}": 100 * float((r["correct"] & (r["radius"] >= x)).mean()) for x in radii}
        row["abstain (%)"] = 100 * float((r["prediction"] < 0).mean())
        row["median radius"] = float(r.loc[r["correct"], "radius"].median()) if r["correct"].any() else 0.0
        out[(ds, s)] = row
    return pd.DataFrame(out).T.rename_axis(["dataset", "σ"]).round(2)


def cohen_comparison(smooth_rows: dict) -> pd.DataFrame:
    """This run's CIFAR-10 certified accuracy at Cohen et al.'s radii, for the σ closest to theirs,
    beside their numbers (%), with 95% intervals."""
    cifar = {s: r for (ds, s), r in smooth_rows.items() if ds == "cifar10"}
    if not cifar:
        return pd.DataFrame()
    s = nearest(cifar, COHEN_CIFAR["sigma"])
    curve = certified_curve(cifar[s], COHEN_CIFAR["radii"])
    return pd.DataFrame({
        "radius": COHEN_CIFAR["radii"],
        f"this run, σ = {s:g} (%)": [value_interval(a, lo, hi)
                                     for a, lo, hi in zip(curve["accuracy"], curve["ci_low"], curve["ci_high"])],
        f"Cohen et al., σ = {COHEN_CIFAR['sigma']:g} (%)": COHEN_CIFAR["certified"]}).set_index("radius")


def _ms(seconds: float) -> str:  # durations carry their unit (the nbval sanitizer masks them)
    return f"{1e3 * seconds:.3g} ms"


def cost_table(rows: pd.DataFrame, smooth_rows: dict) -> pd.DataFrame:
    """Mean wall time per example of every certificate and of the attack ensemble."""
    out = []
    for arch, g in rows.groupby("architecture", sort=False):
        out += [{"what": f"{label}, {arch}", "s/example": g[f"{col}_seconds"].mean()}
                for label, col in CERTIFICATES.items() if f"{col}_seconds" in g and g[f"{col}_seconds"].notna().any()]
        out.append({"what": f"attack ensemble, {arch}", "s/example": g["attack_seconds"].mean()})
        if g["milp_seconds"].notna().any():
            out.append({"what": f"MILP, {arch} (undecided by bounds and attacks)",
                        "s/example": g["milp_seconds"].mean()})
    for (ds, s), r in smooth_rows.items():
        out.append({"what": f"randomized smoothing CERTIFY, {ds}, σ = {s:g}", "s/example": r["seconds"].mean()})
    df = pd.DataFrame(out).set_index("what")
    df["s/example"] = df["s/example"].map(_ms)
    return df.rename(columns={"s/example": "time per example"})


def cifar_scale(cfg: Config) -> str:
    subset = f"{cfg.cifar_subset:,}" if cfg.cifar_subset else "all 50,000"
    return f"{cfg.cifar_epochs} epochs on {subset} training images (width {cfg.cifar_width:g})"




# -- cost -----------------------------------------------------------------------------------------
def bound_cost_evaluation(cfg: Config) -> Evaluation:
    """IBP and CROWN timed on the small ConvNet at every width of ``cost_widths``, seeded random
    weights (most ReLUs unstable: CROWN's worst case), on ``cost_n`` certification examples in one
    batch."""
    data = DataSpec(cfg.dataset, n=cfg.n_cert, seed=cfg.seed).within(cfg.cost_n)
    nets = {f"{w:g}": RandomNet("conv_small", cfg.dataset, {"width": w}, seed=cfg.seed) for w in cfg.cost_widths}
    return Evaluation("bound_cost", nets, data, {"threat": ["linf", cfg.eps_list[0]]}, seed=cfg.seed,
                      block=cfg.cost_n)


def bound_cost(rows: pd.DataFrame) -> pd.DataFrame:
    """The cost table from the ``bound_cost`` rows: per width, the ReLU count and the time per
    example of IBP and CROWN."""
    out = rows.groupby("model", sort=False).agg(ReLUs=("relus", "first"), ibp=("ibp_seconds", "mean"),
                                                crown=("crown_seconds", "mean"))
    out.index = out.index.astype(float).rename("width")
    return pd.DataFrame({"ReLUs": out.ReLUs, "IBP per example": out.ibp.map(_ms),
                         "CROWN per example": out.crown.map(_ms)})
