"""Defenses: the chapter's parameters and profiles, and the plan of the models it trains.

Every model of the chapter is a :class:`~advlab.training.TrainConfig` built here from the
configuration, so the notebook holds no recipe and models shared between sections (the PGD-L∞
VGG of Table 1 is also the depth and width comparisons' VGG at the configured depth and width)
are trained once. The undefended baselines are the white-box chapter's models
(:mod:`advlab.chapters.targets`), from the same cache.
"""
from __future__ import annotations

import pandas as pd

from ..checks import check_choice
from ..config import ALL, Chapter, Config, Param, Relation
from ..data import dataset_spec
from ..evaluate import (cascade_description, clopper_pearson, interval_cells, noise_summary, overstatement,
                        rho_adv_summary, robustness_summary)
from ..results import DataSpec, DenoisedModel, Evaluation, ModelSpec, Plan
from ..threat import ThreatModel
from ..training import CO_DROP, CO_FLOOR, CO_GAP, TrainConfig
from ..training.denoiser import DenoiserConfig
from . import targets

# Published references the chapter sets its numbers beside (accuracy in %).
MADRY_MNIST = {"clean": 98.5, "autoattack": 88.5}  # Madry et al.'s public MNIST model, L∞ 0.3 (RobustBench)
WONG_MNIST_FGSM_RS = 88.8  # Wong et al. 2020, FGSM-RS, PGD-50 with 10 restarts, L∞ 0.3
NO_NOISE = 0.0  # the σ of the randomized-network study's noise-free control
OVERFITTING_RULE = {"drop": CO_DROP, "floor": CO_FLOOR, "gap": CO_GAP}  # the training monitor's, for the prose
REPORT_TABLE_2 = pd.DataFrame(  # the VGG-19 report's Table 2: its randomized network, σ = 0.06
    {"clean": [56.7], "noisy": [55.3], "FGSM": [21.1], "PGD-L2": [33.2], "PGD-L∞": [35.7]},
    index=pd.Index(["randomized network (σ = 0.06)"], name="model"))
REPORT_DENOISER = {"no denoiser": 9.96, "DnCNN, 10 hidden layers, 10 epochs": 17.27}  # FGSM ε = 0.05, small CNN
REPORT_NOISE_ATTACK = {"vanilla": 42.57, "adversarially trained": 39.2}  # Gaussian noise σ = 0.1 (the VGG report)
REPORT_TABLE_1 = pd.DataFrame(  # the VGG-19 report's Table 1 (its caption: ε = 0.06)
    {"clean": [82.12, 65.14], "FGSM": [8.11, 50.68], "PGD-L2": [6.64, 58.3], "PGD-L∞": [2.59, 49.52]},
    index=pd.Index(["base", "PGD-L∞ trained"], name="model"))

CHAPTER = Chapter(
    name="defenses",
    notebook="defenses.py",
    title="Defenses: adversarial training, randomness, denoisers",
    position=3,
    params={
        **targets.PARAMS,
        "mnist_model": Param(str, "architecture adversarially trained on the MNIST-scale dataset",
                             choices=targets.MNIST_MODELS),
        "mnist_adv_epochs": Param(int, "epochs of every MNIST-scale adversarial training", minimum=1),
        "mnist_adv_subset": Param(int, f"their training examples ({ALL!r}: the whole split)", minimum=1,
                                  all_allowed=True),
        "mnist_adv_lr": Param(float, "their peak learning rate (one-cycle schedule, SGD with Nesterov momentum)",
                              positive=True),
        "mnist_eps": Param(float, "L∞ budget on the MNIST-scale dataset (training and evaluation), pixel units",
                           positive=True),
        "mnist_eps_l2": Param(float, "L2 budget on the MNIST-scale dataset (training and evaluation), pixel units",
                              positive=True),
        "train_steps": Param(int, "PGD steps of PGD, TRADES and mixed training (step size 2.5 ε / steps)",
                             minimum=1),
        "trades_beta": Param(float, "TRADES trade-off β (weight of the KL term)", positive=True),
        "monitor": Param(int, "training examples held out to measure PGD-10 accuracy after every epoch",
                         minimum=1),
        "co_eps": Param(float, "L∞ ε of the FGSM training run built to overfit catastrophically", positive=True),
        "co_epochs": Param(int, "epochs of the catastrophic-overfitting runs", minimum=1),
        "cifar_adv_epochs": Param(int, "epochs of every CIFAR-10 adversarial training", minimum=1),
        "cifar_adv_subset": Param(int, f"their training examples ({ALL!r}: all 50,000)", minimum=1,
                                  all_allowed=True),
        "cifar_train_steps": Param(int, "PGD steps of CIFAR-10 adversarial training (step ε/10 · 10/steps)",
                                   minimum=1),
        "cifar_eps": Param(float, "L∞ budget on CIFAR-10 (training and evaluation), pixel units", positive=True),
        "cifar_eps_l2": Param(float, "L2 budget on CIFAR-10 (training and evaluation), pixel units", positive=True),
        "adv_fraction": Param(float, "share of each CIFAR-10 batch that is perturbed (the report: half)",
                              positive=True, maximum=1),
        "vgg_depths": Param(("list", int), "VGG depths compared under PGD-L∞ training", choices=(11, 13, 16, 19)),
        "widths": Param(("list", float), "VGG width multipliers compared under PGD-L∞ training", positive=True),
        "finetune_epochs": Param(int, "epochs of DeepFool / FGSM fine-tuning (the report: 5)", minimum=1),
        "finetune_subset": Param(int, f"fine-tuning examples ({ALL!r}: the whole split)", minimum=1,
                                 all_allowed=True),
        "finetune_scales": Param(("list", float), "factors α on DeepFool's perturbation for fine-tuning",
                                 positive=True),
        "finetune_fgsm_eps": Param(float, "L∞ ε of FGSM fine-tuning, pixel units", positive=True),
        "noise_sigmas": Param(("list", float), "σ of the noise-trained VGGs (randomized networks), pixel units",
                              positive=True),
        "table2_sigma": Param(float, "σ of the report's Table 2 randomized network (one of noise_sigmas)",
                              positive=True),
        "eot_draws": Param(int, "draws per EOT gradient and per averaged prediction", minimum=1),
        "vote_draws": Param(int, "draws of the majority-vote prediction", minimum=1),
        "attack_noise_sigma": Param(float, "σ of the Gaussian-noise attack on every model (the report: 0.1)",
                                    positive=True),
        "noise_attack_draws": Param(int, "draws of the Gaussian-noise attack (the worst of them counts)", minimum=1),
        "denoiser_depth": Param(int, "DnCNN hidden layers (the report: 10)", minimum=1),
        "denoiser_width": Param(int, "DnCNN channels per hidden layer (Zhang et al.: 64)", minimum=1),
        "denoiser_epochs": Param(int, "DnCNN training epochs (the report: 5 and 10)", minimum=1),
        "denoiser_subset": Param(int, f"training images whose FGSM examples train the DnCNN ({ALL!r}: all)",
                                 minimum=1, all_allowed=True),
        "denoiser_eps": Param(float, "L∞ ε of the FGSM examples the DnCNN learns to clean (the report: 0.05)",
                              positive=True),
        "audit_n": Param(int, "test examples per gradient-masking audit", minimum=1),
        "squeeze_bits": Param(int, "bit depth of the planted masked model the audit must fail", minimum=1),
        "audit_steps": Param(int, "PGD iterations of the audit (its long run: 5× with 3 restarts)", minimum=1),
        "n_minimal": Param(int, "test examples for ρ_adv before and after fine-tuning", minimum=1),
        "n_test": Param(int, "MNIST-scale test examples of the robust evaluation (seeded, class-stratified)",
                        minimum=1),
        "cifar_n_test": Param(int, "CIFAR-10 test examples of the robust evaluation", minimum=1),
        "apgd_steps": Param(int, "iterations of APGD-CE and of APGD-T (per target class) in the evaluation cascade",
                            minimum=1),
        "apgd_targets": Param(int, "target classes of APGD-T, the highest-scoring ones (AutoAttack: 9)", minimum=1),
        "square_queries": Param(int, "queries per example of the Square attack in the cascade, and of the audit's "
                                     "black-box check", minimum=1),
        "escalation_queries": Param(int, "queries per example of the Square attack the evaluation escalates to "
                                         "where gradients mislead", minimum=1),
        "eps_grid": Param(("list", float), "L∞ budgets of the report's Figure 4 (FGSM, PGD-L∞), pixel units",
                          minimum=0),
        "l2_grid": Param(("list", float), "L2 budgets of the report's Figure 4 (PGD-L2), pixel units", minimum=0),
        "batch_size": Param(int, "examples per attack batch", minimum=1),
    },
    base="quick",
    profiles={
        "quick": dict(**targets.PROFILES["quick"], **targets.EVALUATION_PROFILES["quick"], mnist_model="small_cnn",
                      mnist_adv_epochs=3, mnist_adv_subset=7000, mnist_adv_lr=0.1, mnist_eps=0.3, mnist_eps_l2=2.0,
                      train_steps=3, trades_beta=6.0, monitor=300, co_eps=0.3, co_epochs=3, cifar_adv_epochs=3,
                      cifar_adv_subset=25000, cifar_train_steps=2, cifar_eps=0.06, cifar_eps_l2=0.5, adv_fraction=0.5,
                      vgg_depths=[11, 19], widths=[0.0625, 0.125], finetune_epochs=2, finetune_subset=3000,
                      finetune_scales=[1.0, 3.0], finetune_fgsm_eps=0.1, n_minimal=100, cifar_n_test=120,
                      eps_grid=[0.0, 0.03, 0.06, 0.1], l2_grid=[0.0, 0.25, 0.5, 1.0], noise_sigmas=[0.06, 0.1],
                      table2_sigma=0.06, vote_draws=9, attack_noise_sigma=0.1, noise_attack_draws=10,
                      denoiser_depth=5, denoiser_width=32, denoiser_epochs=2, denoiser_subset=2000,
                      denoiser_eps=0.05, squeeze_bits=3),
        "smoke": dict(**targets.PROFILES["smoke"], **targets.EVALUATION_PROFILES["smoke"], mnist_adv_epochs=1,
                      mnist_adv_subset=2000, train_steps=2, monitor=200, co_epochs=1, cifar_adv_epochs=1,
                      cifar_adv_subset=1000, cifar_train_steps=2, vgg_depths=[11, 13], widths=[0.125],
                      finetune_epochs=1, finetune_subset=1000, finetune_scales=[1.0, 3.0], n_minimal=40,
                      cifar_n_test=40, eps_grid=[0.0, 0.06], l2_grid=[0.0, 0.5], noise_sigmas=[0.06], vote_draws=3,
                      noise_attack_draws=3, denoiser_depth=2, denoiser_width=8, denoiser_epochs=1,
                      denoiser_subset=500),
        "paper": dict(**targets.PROFILES["paper"], **targets.EVALUATION_PROFILES["paper"], mnist_adv_epochs=20,
                      mnist_adv_subset=ALL, train_steps=20, monitor=1000, co_epochs=20, cifar_adv_epochs=30,
                      cifar_adv_subset=ALL, cifar_train_steps=10, vgg_depths=[11, 13, 16, 19],
                      widths=[0.25, 0.5, 1.0, 2.0], finetune_epochs=5, finetune_subset=ALL,
                      finetune_scales=[1.0, 2.0, 3.0], n_minimal=1000, cifar_n_test=1000,
                      eps_grid=[0.0, 0.01, 0.02, 0.03, 0.04, 0.06, 0.08, 0.1], l2_grid=[0.0, 0.25, 0.5, 1.0, 1.5],
                      noise_sigmas=[0.01, 0.03, 0.06, 0.1, 0.2], vote_draws=33, noise_attack_draws=100,
                      denoiser_depth=10, denoiser_width=64, denoiser_epochs=10, denoiser_subset=ALL),
    },
    relations=(
        Relation(("n_minimal", "n_test"), lambda c: c.n_minimal <= c.n_test,
                 "n_minimal must not exceed n_test: the ρ_adv digits come from the evaluated subset"),
        Relation(("table2_sigma", "noise_sigmas"), lambda c: c.table2_sigma in c.noise_sigmas,
                 "noise_sigmas must include table2_sigma: Table 2 evaluates one of the noise-trained VGGs"),
        Relation(("audit_n", "n_test", "cifar_n_test"), lambda c: c.audit_n <= min(c.n_test, c.cifar_n_test),
                 "audit_n must not exceed n_test or cifar_n_test: the audit's examples come from the evaluated "
                 "subsets"),
        Relation(("cifar_width", "widths"), lambda c: c.cifar_width in c.widths,
                 "widths must include cifar_width: the width comparison's models include Table 1's PGD-L∞ VGG"),
        Relation(("cifar_model", "vgg_depths"), lambda c: int(c.cifar_model[3:]) in c.vgg_depths,
                 "vgg_depths must include the depth of cifar_model: the depth comparison includes Table 1's "
                 "PGD-L∞ VGG"),
    ),
)


def _mnist(cfg: Config, method: str, params: dict, epochs: int | None = None) -> TrainConfig:
    return TrainConfig(dataset=cfg.dataset, model=cfg.mnist_model, epochs=epochs or cfg.mnist_adv_epochs,
                       train_subset=cfg.mnist_adv_subset, lr=cfg.mnist_adv_lr, seed=cfg.seed, method=method,
                       method_params=params, monitor=cfg.monitor)


def mnist_configs(cfg: Config) -> dict[str, TrainConfig]:
    """The MNIST-scale models of Madry's setting: standard (the white-box chapter's), FGSM, FGSM-RS,
    PGD-L∞, TRADES, PGD-L2 and the two mixed L2 + L∞ strategies, all at the same budget and scale."""
    e, e2, k = cfg.mnist_eps, cfg.mnist_eps_l2, cfg.train_steps
    return {
        "standard": targets.mnist_configs(cfg)[cfg.mnist_model],
        "FGSM": _mnist(cfg, "fgsm", {"eps": e}),
        "FGSM-RS": _mnist(cfg, "fgsm_rs", {"eps": e}),
        "PGD-L∞": _mnist(cfg, "pgd", {"norm": "linf", "eps": e, "steps": k}),
        "TRADES": _mnist(cfg, "trades", {"eps": e, "steps": k, "beta": cfg.trades_beta}),
        "PGD-L2": _mnist(cfg, "pgd", {"norm": "l2", "eps": e2, "steps": k}),
        "mixed (max)": _mnist(cfg, "mixed", {"eps_linf": e, "eps_l2": e2, "steps": k, "strategy": "max"}),
        "mixed (alternate)": _mnist(cfg, "mixed", {"eps_linf": e, "eps_l2": e2, "steps": k,
                                                   "strategy": "alternate"}),
    }


def reader_models(cfg: Config) -> dict[str, TrainConfig]:
    """The models a reader may name ``book:defenses/NAME``: the MNIST-scale models of Madry's setting
    and the VGG-19 report's four."""
    return {**mnist_configs(cfg), **cifar_configs(cfg)}


def overfitting_configs(cfg: Config) -> dict[str, TrainConfig]:
    """The catastrophic-overfitting study: FGSM from the clean point against FGSM-RS and PGD at
    ``co_eps``, ``co_epochs`` epochs, each watched by the held-out PGD monitor."""
    e = cfg.co_eps
    return {"FGSM": _mnist(cfg, "fgsm", {"eps": e}, epochs=cfg.co_epochs),
            "FGSM-RS": _mnist(cfg, "fgsm_rs", {"eps": e}, epochs=cfg.co_epochs),
            "PGD-L∞": _mnist(cfg, "pgd", {"norm": "linf", "eps": e, "steps": cfg.train_steps}, epochs=cfg.co_epochs)}


def _vgg(cfg: Config, method: str, params: dict, depth: int | None = None, width: float | None = None):
    return TrainConfig(dataset="cifar10", model=f"vgg{depth}" if depth else cfg.cifar_model,
                       model_options={"width": width or cfg.cifar_width}, epochs=cfg.cifar_adv_epochs,
                       train_subset=cfg.cifar_adv_subset, augment=True, seed=cfg.seed, method=method,
                       method_params=params)


def _pgd_linf(cfg: Config) -> dict:
    # the report's attack: step ε/10 with 10 steps, i.e. a total path of ε, whatever the step count
    return {"norm": "linf", "eps": cfg.cifar_eps, "steps": cfg.cifar_train_steps,
            "step_size": cfg.cifar_eps / cfg.cifar_train_steps, "fraction": cfg.adv_fraction}


def cifar_configs(cfg: Config) -> dict[str, TrainConfig]:
    """The VGG-19 report's four models: the base VGG (the white-box chapter's) and VGGs trained on
    half-perturbed batches with FGSM, PGD-L2 and PGD-L∞."""
    f, k = cfg.adv_fraction, cfg.cifar_train_steps
    return {
        "base": targets.cifar_configs(cfg)[cfg.cifar_model],
        "FGSM trained": _vgg(cfg, "fgsm", {"eps": cfg.cifar_eps, "fraction": f}),
        "PGD-L2 trained": _vgg(cfg, "pgd", {"norm": "l2", "eps": cfg.cifar_eps_l2, "steps": k,
                                            "step_size": cfg.cifar_eps_l2 / k, "fraction": f}),
        "PGD-L∞ trained": _vgg(cfg, "pgd", _pgd_linf(cfg)),
    }


def capacity_configs(cfg: Config) -> dict[tuple[str, float], TrainConfig]:
    """PGD-L∞-trained VGGs of every depth (at the configured width) and of every width (at the
    configured depth), keyed by (architecture, width)."""
    out = {(f"vgg{d}", cfg.cifar_width): _vgg(cfg, "pgd", _pgd_linf(cfg), depth=d) for d in cfg.vgg_depths}
    out.update({(cfg.cifar_model, w): _vgg(cfg, "pgd", _pgd_linf(cfg), width=w) for w in cfg.widths})
    return out


def finetune_configs(cfg: Config) -> dict[str, TrainConfig]:
    """The DeepFool paper's fine-tuning on the MNIST report's MLP: the white-box chapter's MLP
    trained ``finetune_epochs`` more at half its learning rate on perturbed training examples only
    (DeepFool scaled by each α, and FGSM)."""
    base = targets.mnist_configs(cfg)["mlp"]

    def tuned(method, params):
        return TrainConfig(dataset=base.dataset, model=base.model, epochs=cfg.finetune_epochs,
                           train_subset=cfg.finetune_subset, lr=base.lr / 2, schedule="constant", seed=cfg.seed,
                           method=method, method_params=params, init=base)

    out = {"base": base}
    out.update({f"DeepFool α={a:g}": tuned("deepfool", {"scale": a}) for a in cfg.finetune_scales})
    out["FGSM"] = tuned("fgsm", {"eps": cfg.finetune_fgsm_eps})
    return out


def training_cost(infos: dict) -> pd.DataFrame:
    """Wall time and passes of every trained model, from its checkpoint's metrics; ``relative
    cost`` is (forward + backward passes) / (2 · examples · epochs): 1 for standard training."""
    rows = []
    for name, info in infos.items():
        c, m = info["config"], info["metrics"]
        work = m["train_examples"] * c["epochs"]
        rows.append({"model": name, "method": c["method"], "epochs": c["epochs"], "examples": m["train_examples"],
                     "seconds": m["train_seconds"], "forwards": m["forwards"], "backwards": m["backwards"],
                     "relative cost": (m["forwards"] + m["backwards"]) / (2 * work)})
    return pd.DataFrame(rows).set_index("model")


def report_runs(linf_grid, l2_grid) -> list[tuple[str, str, str, float, dict]]:
    """The VGG-19 report's evaluation as (label, attack, norm, ε, parameters): FGSM and PGD-L∞ over
    ``linf_grid``, PGD-L2 over ``l2_grid``, PGD with step ε/10 for 10 iterations (random start)."""
    runs = [("FGSM", "fgsm", "linf", e, {}) for e in linf_grid]
    runs += [("PGD-L∞", "pgd", "linf", e, {"steps": 10, "step_size": e / 10}) for e in linf_grid]
    runs += [("PGD-L2", "pgd", "l2", e, {"steps": 10, "step_size": e / 10}) for e in l2_grid]
    return runs


READINGS = ("pixel", "normalised")  # the VGG-19 report's ε: in pixel units, or after (x − mean) / std


def report_evaluations(cfg: Config, models_: dict | None = None, grids=None,
                       reading: str = "pixel") -> dict[tuple[str, str, float], Evaluation]:
    """(label, norm, ε) -> the report's attack on ``models_`` (default: the CIFAR-10 models of
    Table 1; wrapped ones too, as :class:`~advlab.results.ModelSpec`), over ``grids`` = (L∞ grid,
    L2 grid); by default the Figure 4 grids and the headline budgets of Table 1 (``cifar_eps``,
    ``cifar_eps_l2``) whatever the grids hold. ``reading`` "normalised" reads every ε in the units
    of the model's normalisation (ε × CIFAR-10's per-channel std in pixels; ThreatModel.scale)."""
    check_choice(reading, READINGS, "reading of ε")
    ctest = DataSpec("cifar10", n=cfg.cifar_n_test, seed=cfg.seed)
    linf, l2 = grids or (sorted({*cfg.eps_grid, cfg.cifar_eps}), sorted({*cfg.l2_grid, cfg.cifar_eps_l2}))
    units = [list(dataset_spec("cifar10").std)] if reading == "normalised" else []
    return {(label, norm, eps): Evaluation("attack", models_ or cifar_configs(cfg), ctest,
                                           {"attack": attack, "threat": [norm, eps, *units], **params},
                                           seed=cfg.seed, block=cfg.batch_size)
            for label, attack, norm, eps, params in report_runs(linf, l2)}


def report_table(cfg: Config, cifar_acc: pd.DataFrame, report_acc: pd.DataFrame, units: str = "") -> pd.DataFrame:
    """Table 1: clean accuracy and the report's three attacks at its budgets per model (and the
    ensemble's accuracy when ``cifar_acc`` is the ensemble's :func:`summary` and ``units`` is empty:
    the ensemble runs in pixel units only)."""
    out = pd.DataFrame({
        "clean (%)": interval_cells(cifar_acc, "clean"),
        f"FGSM, L∞ {cfg.cifar_eps:g}{units} (%)": interval_cells(report_acc.loc["FGSM"], "robust"),
        f"PGD-L2 {cfg.cifar_eps_l2:g}{units} (%)": interval_cells(report_acc.loc["PGD-L2"], "robust"),
        f"PGD-L∞ {cfg.cifar_eps:g}{units} (%)": interval_cells(report_acc.loc["PGD-L∞"], "robust")})
    if not units:
        out[f"ensemble, L∞ {cfg.cifar_eps:g} (%)"] = interval_cells(cifar_acc, "robust")
    return out.rename_axis("model")


def reading_evidence(clean: pd.Series, pixel: pd.DataFrame, normalised: pd.DataFrame) -> pd.DataFrame:
    """Table 1 read both ways beside the report, as *retention* (robust ÷ clean accuracy, %): a
    smaller or less trained model than the report's loses clean accuracy, but what share of it an
    attack takes is the ε's signature. ``clean``: clean accuracy per model; ``pixel`` and
    ``normalised``: :func:`summary` by (attack label, model) at Table 1's budgets. The L∞ attacks
    only: their ε = 0.06 is the report's, while the L2 radius is this chapter's choice."""
    rows = []
    for model, ours in (("base", "base"), ("PGD-L∞ trained", "PGD-L∞ trained")):
        for attack in ("FGSM", "PGD-L∞"):
            report = REPORT_TABLE_1.loc[model]
            rows.append({"model": model, "attack": attack,
                         "report": 100 * report[attack] / report["clean"],
                         "pixel ε": 100 * pixel.loc[(attack, ours), "robust"] / clean[ours],
                         "normalised ε": 100 * normalised.loc[(attack, ours), "robust"] / clean[ours]})
    return pd.DataFrame(rows).set_index(["model", "attack"])


def favoured_reading(evidence: pd.DataFrame) -> dict:
    """Mean absolute distance (retention points) of each reading to the report's, and the closer one."""
    gaps = {r: float((evidence[f"{r} ε"] - evidence["report"]).abs().mean()) for r in READINGS}
    best = min(gaps, key=gaps.get)
    return {"gaps": gaps, "favoured": best, "margin": max(gaps.values()) - gaps[best]}


def table2_models(cfg: Config) -> dict:
    """Table 2's models: the noise-free control of the same recipe, and the VGG trained with noise
    ``table2_sigma`` behind that noise at test time, attacked on single draws and with EOT."""
    noise = noise_configs(cfg)
    draw, eot = ["noise", {"sigma": cfg.table2_sigma}], ["eot", {"draws": cfg.eot_draws}]
    return {"σ = 0, same recipe (no noise)": noise[NO_NOISE],
            "one draw, plain attacks": ModelSpec(noise[cfg.table2_sigma], [draw]),
            f"EOT, {cfg.eot_draws} draws": ModelSpec(noise[cfg.table2_sigma], [draw, eot])}


def denoiser_models(cfg: Config) -> dict:
    """The denoiser section's models: the base VGG alone and behind the DnCNN."""
    base = cifar_configs(cfg)["base"]
    return {"no denoiser": base, "denoiser": DenoisedModel(denoiser_config(cfg))}


def audit_models(cfg: Config) -> tuple[dict, dict]:
    """The audited models, (MNIST-scale, CIFAR-10), by display name: every trained model, the
    randomized network, the denoised pipeline and a planted masked model (bit-depth reduction)."""
    name = dataset_spec(cfg.dataset).title
    cifar = cifar_configs(cfg)
    mnist = {f"{name}: {k}": c for k, c in mnist_configs(cfg).items()}
    cifar10 = {**{f"CIFAR-10: {k}": c for k, c in cifar.items()},
               **{f"CIFAR-10: noise σ = {s:g}": c for s, c in noise_configs(cfg).items() if s},
               randomized_name(cfg): table2_models(cfg)["one draw, plain attacks"],
               "CIFAR-10: DnCNN + base": denoiser_models(cfg)["denoiser"],
               f"planted: {cfg.squeeze_bits}-bit squeezing + base VGG": ModelSpec(
                   cifar["base"], [["bits", {"bits": cfg.squeeze_bits}]])}
    return mnist, cifar10


def randomized_name(cfg: Config) -> str:
    """The audit's name of Table 2's randomized network."""
    return f"CIFAR-10: randomized, σ = {cfg.table2_sigma:g}"


def report_rows(tables: dict) -> pd.DataFrame:
    """The tables of :func:`report_evaluations` (the plan's groups ``report``, ``report ×std``,
    ``table2``, by (label, norm, ε)) as one, ``label`` naming the attack."""
    return pd.concat([t.assign(label=label) for (label, _, _), t in tables.items()], ignore_index=True)


def at_budget(report: pd.DataFrame, cfg: Config) -> pd.DataFrame:
    """The rows of the report's attacks at Table 1's budgets (L∞ ``cifar_eps``, L2 ``cifar_eps_l2``), out of
    Figure 4's grids."""
    return report[((report.norm == "linf") & (report.eps == cfg.cifar_eps))
                  | ((report.norm == "l2") & (report.eps == cfg.cifar_eps_l2))]


def madry_gap(linf_acc: pd.DataFrame) -> float:
    """Points by which Madry's public model under AutoAttack is above this run's PGD-trained model
    (:func:`~advlab.evaluate.robustness_summary` at L∞, by model); negative when this run is above."""
    return MADRY_MNIST["autoattack"] - 100 * linf_acc.loc["PGD-L∞", "robust"]


def overfitting_table(records: dict) -> pd.DataFrame:
    """The catastrophic-overfitting runs from their training records' held-out histories: best and last
    held-out accuracies (%), the monitor's verdict and the epoch the checkpoint kept."""
    co = {name: info["metrics"] for name, info in records.items()}
    return pd.DataFrame({
        "best held-out PGD-10 (%)": [100 * max(h["holdout_pgd"] for h in m["history"]) for m in co.values()],
        "last epoch's held-out PGD-10 (%)": [100 * m["history"][-1]["holdout_pgd"] for m in co.values()],
        "last epoch's held-out FGSM (%)": [100 * m["history"][-1]["holdout_fgsm"] for m in co.values()],
        "last epoch's held-out clean (%)": [100 * m["history"][-1]["holdout_clean"] for m in co.values()],
        "catastrophic overfitting": ["yes, epoch " + str(m["overfitting_epoch"]) if m["catastrophic_overfitting"]
                                     else "no" for m in co.values()],
        "kept epoch": [m["best_epoch"] for m in co.values()],
    }, index=pd.Index(list(co), name="training")).round(1)


def finetune_rho(rows: pd.DataFrame) -> pd.DataFrame:
    """ρ_adv per fine-tuned model (:func:`~advlab.evaluate.rho_adv_summary`) with ``rho_change``, DeepFool's
    ρ_adv relative to the model before fine-tuning."""
    rho = rho_adv_summary(rows)
    return rho.assign(rho_change=rho["rho_deepfool"] / rho.loc["base", "rho_deepfool"] - 1)


def eot_gap(t2_acc: pd.DataFrame, cfg: Config) -> float:
    """Points of PGD-L∞ accuracy the plain attack on single draws leaves above EOT on Table 2's randomized
    network (``t2_acc``: :func:`~advlab.evaluate.robustness_summary` by (label, model))."""
    _, plain, eot = list(table2_models(cfg))
    return 100 * (t2_acc.loc[("PGD-L∞", plain), "robust"] - t2_acc.loc[("PGD-L∞", eot), "robust"])


def denoiser_runs(plan: Plan, cfg: Config, device=None) -> dict[str, pd.DataFrame]:
    """The denoiser section's rows by setting: no denoiser, (a) FGSM crafted on the classifier then denoised,
    (b) the adaptive FGSM and APGD-CE through denoiser and classifier."""
    fgsm = plan.result("denoiser fgsm", device)
    return {"no denoiser, FGSM": fgsm[fgsm.model == "no denoiser"],
            "(a) denoiser, FGSM crafted on the classifier": plan.result("denoiser transfer", device),
            "(b) denoiser, adaptive FGSM": fgsm[fgsm.model == "denoiser"],
            f"(b) denoiser, adaptive APGD-CE ({cfg.apgd_steps} steps)": plan.result("denoiser apgd", device)}


def noise_attack_table(rows: pd.DataFrame) -> pd.DataFrame:
    """The Gaussian-noise attack per model: mean accuracy over draws and the worst draw, with intervals."""
    return pd.concat({name: noise_summary(g) for name, g in rows.groupby("model", sort=False)},
                     names=["model"]).reset_index(level=1, drop=True)


def training_records(plan: Plan, cfg: Config) -> dict[str, dict]:
    """Every trained model's record by display name, in the chapter's order (the cost table's rows)."""
    name = dataset_spec(cfg.dataset).title
    out = {f"{name}: {k}": info for k, info in plan.records("MNIST").items()}
    out.update({f"CIFAR-10: {k}": info for k, info in plan.records("CIFAR-10").items()})
    out.update({f"CIFAR-10: {k} PGD-L∞": info for k, info in plan.records("capacity").items()})
    out.update({f"{name}: MLP fine-tuned, {k}": info for k, info in plan.records("fine-tuning").items() if k != "base"})
    out.update({f"CIFAR-10: noise {s}": info for s, info in plan.records("noise").items()})
    return out


def closing_entries(cfg: Config, cifar_rows: pd.DataFrame, t2_rows: pd.DataFrame, dn_runs: dict,
                    records: dict, denoiser_seconds: float) -> dict:
    """The closing comparison's entries (:func:`comparison`): each trained VGG under the ensemble, the
    randomized VGG under EOT-PGD, the denoised pipeline under the adaptive APGD-CE."""
    cifar_linf, d_threat = ThreatModel("linf", cfg.cifar_eps), ThreatModel("linf", cfg.denoiser_eps)
    eot_name = list(table2_models(cfg))[-1]
    seconds = {k: info["metrics"]["train_seconds"] for k, info in records.items()}
    return {**{f"VGG {k}": (cifar_rows[cifar_rows.model == k], f"ensemble, {cifar_linf}", seconds[f"CIFAR-10: {k}"])
               for k in cifar_configs(cfg)},
            f"randomized VGG, σ = {cfg.table2_sigma:g}": (
                t2_rows[(t2_rows.model == eot_name) & (t2_rows.label == "PGD-L∞")],
                f"EOT-PGD ({cfg.eot_draws} draws), {cifar_linf}", seconds[f"CIFAR-10: noise σ = {cfg.table2_sigma:g}"]),
            "DnCNN + base VGG": (dn_runs[list(dn_runs)[-1]], f"adaptive APGD-CE, {d_threat}",
                                 denoiser_seconds + seconds["CIFAR-10: base"])}


def tradeoff_points(runs) -> pd.DataFrame:
    """One :func:`summary` row per model for the trade-off scatter. ``runs`` is a sequence of
    ``(dataset label, rows, prefix)``; the prefix tells the models of one run from another's, and
    a model that appears twice keeps its first row."""
    out = pd.concat([robustness_summary(rows).assign(dataset=label).rename(index=lambda m, p=prefix: f"{p}{m}")
                     for label, rows, prefix in runs])
    return out[~out.index.duplicated()]


def noise_configs(cfg: Config) -> dict[float, TrainConfig]:
    """The randomized networks: VGGs trained with Gaussian noise σ on their inputs, with Table 1's
    adversarial recipe (data, epochs, seed), and σ = 0 (standard training at that scale) as control."""
    out = {NO_NOISE: _vgg(cfg, "standard", {})}
    out.update({s: _vgg(cfg, "noise", {"sigma": s}) for s in cfg.noise_sigmas})
    return out


def denoiser_config(cfg: Config):
    """The small-CNN report's DnCNN, trained on FGSM examples of the base VGG."""
    return DenoiserConfig(classifier=cifar_configs(cfg)["base"], attack="fgsm", norm="linf", eps=cfg.denoiser_eps,
                          depth=cfg.denoiser_depth, width=cfg.denoiser_width, epochs=cfg.denoiser_epochs,
                          train_subset=cfg.denoiser_subset, seed=cfg.seed)


def noise_accuracy(rows: pd.DataFrame, vote_draws: int) -> pd.DataFrame:
    """Clean accuracy, one noisy draw and the majority vote of every randomized network, with
    intervals, from the rows of the ``noise_vote`` evaluation."""
    out = []
    for sigma, g in rows.groupby("sigma", sort=True):
        for what, col in (("clean", "clean_correct"), ("one noisy draw", "draw_correct"),
                          (f"vote of {vote_draws} draws", "vote_correct")):
            k = int(g[col].sum())
            lo, hi = clopper_pearson(k, len(g))
            out.append({"sigma": sigma, "prediction": what, "accuracy": k / len(g), "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(out)


def cascade_text(cfg: Config) -> str:
    """The evaluation's cascade, budgets and escalation in words."""
    return cascade_description(cfg.apgd_steps, cfg.apgd_targets, cfg.square_queries, cfg.escalation_queries)


def escalations(tables: dict) -> pd.DataFrame:
    """Per robust evaluation, model and threat where the evaluation escalated: robust examples under the
    cascade and after it, the overstatement in points and what flagged it (one row saying none otherwise)."""
    out = [overstatement(rows[rows.threat != "union"], by=("model", "threat")).assign(evaluation=name)
           for name, rows in tables.items()]
    table = pd.concat(out, ignore_index=True)
    table = table[table.escalated]
    if table.empty:
        return pd.DataFrame({"escalated": ["no model: no probe flagged masked gradients"]})
    return table.set_index(["evaluation", "model", "threat"]).drop(columns="escalated")


def audit_table(audits: pd.DataFrame) -> pd.DataFrame:
    """One row per model, one column per check: the verdicts of the audit evaluations' rows."""
    return audits.pivot(index="model", columns="check", values="verdict").loc[
        audits.model.unique(), audits.check.unique()].rename_axis(index="model", columns=None)


def comparison(entries: dict) -> pd.DataFrame:
    """The closing table: ``entries`` maps a defense to ``(rows, attack, seconds)``, per-example rows
    with ``clean_correct`` and ``robust``, the attack that produced them, and the training time."""
    out = []
    for name, (rows, attack, seconds) in entries.items():
        s = robustness_summary(rows.assign(model=name))
        out.append({"defense": name, "clean (%)": interval_cells(s, "clean").iloc[0],
                    "robust (%)": interval_cells(s, "robust").iloc[0],
                    "strongest honest attack": attack, "training time": f"{seconds:.0f} s"})
    return pd.DataFrame(out).set_index("defense")


def capacity_label(arch: str, width: float) -> str:
    return f"{arch.upper()} ×{width:g}"


def plan(cfg: Config) -> Plan:
    """Every number of the chapter: its trainings (classifiers and, through the evaluations, the
    denoiser), the ensemble evaluations, the report's attacks on the CIFAR-10 models and on the
    randomized networks (Table 2), noise as an attack, the denoiser's evaluations, the fine-tuned
    models' ρ_adv and the gradient-masking audit (what ``advlab precompute`` fills)."""
    mnist, cifar = mnist_configs(cfg), cifar_configs(cfg)
    capacity = {capacity_label(a, w): c for (a, w), c in capacity_configs(cfg).items()}
    noise = noise_configs(cfg)
    trainings = {**{f"MNIST {k}": c for k, c in mnist.items()},
                 **{f"overfitting {k}": c for k, c in overfitting_configs(cfg).items()},
                 **{f"CIFAR-10 {k}": c for k, c in cifar.items()},
                 **{f"capacity {k}": c for k, c in capacity.items()},
                 **{f"fine-tuning {k}": c for k, c in finetune_configs(cfg).items()},
                 **{f"noise σ = {s:g}": c for s, c in noise.items()}}
    test = DataSpec(cfg.dataset, n=cfg.n_test, seed=cfg.seed)
    ctest = DataSpec("cifar10", n=cfg.cifar_n_test, seed=cfg.seed)
    ensemble = {"steps": cfg.apgd_steps, "targets": cfg.apgd_targets, "queries": cfg.square_queries,
                "escalation_queries": cfg.escalation_queries, "eot_draws": cfg.eot_draws,
                "surrogate": targets.SURROGATE}
    cifar_linf = [["linf", cfg.cifar_eps]]
    d_threat = ["linf", cfg.denoiser_eps]
    denoised = denoiser_models(cfg)
    audit_mnist, audit_cifar = audit_models(cfg)

    def ev(kind, models_, data, block=cfg.batch_size, **params):
        return Evaluation(kind, models_, data, params, seed=cfg.seed, block=block)

    def attacker(models_, data):  # the surrogate the evaluation transfers from rides along, never evaluated
        return {**models_, targets.SURROGATE: targets.surrogate_config(cfg, data.dataset)}

    def robust(models_, data, threats):
        return ev("robust", attacker(models_, data), data, threats=threats, **ensemble)

    def audit(models_, data, threat):
        return ev("audit", attacker(models_, data), data.within(cfg.audit_n), block=cfg.audit_n, threat=threat,
                  steps=cfg.audit_steps, queries=cfg.square_queries, draws=cfg.eot_draws,
                  surrogate=targets.SURROGATE)

    noise_attack = {"sigmas": [cfg.attack_noise_sigma], "draws": cfg.noise_attack_draws}
    return Plan(trainings=trainings, evaluations={
        "mnist_robust": robust(mnist, test, [["linf", cfg.mnist_eps], ["l2", cfg.mnist_eps_l2]]),
        "cifar_robust": robust(cifar, ctest, cifar_linf),
        "capacity_robust": robust(capacity, ctest, cifar_linf),
        **{("report", *k): e for k, e in report_evaluations(cfg).items()},
        **{("report ×std", *k): e for k, e in report_evaluations(cfg, reading="normalised").items()},
        "finetune rho_adv": ev("rho_adv", finetune_configs(cfg), test.within(cfg.n_minimal), block=cfg.n_minimal,
                               deepfool={}, fgsm_rate=0.9),
        "noise vote": ev("noise_vote", {f"σ = {s:g}": c for s, c in noise.items()}, ctest,
                         sigmas={f"σ = {s:g}": s for s in noise}, draws=cfg.vote_draws),
        **{("table2", *k): e for k, e in report_evaluations(cfg, table2_models(cfg),
                                                             ([cfg.cifar_eps], [cfg.cifar_eps_l2])).items()},
        "noise attack mnist": ev("noise", audit_mnist, test, **noise_attack),
        "noise attack cifar": ev("noise", {k: c for k, c in audit_cifar.items() if isinstance(c, TrainConfig)},
                                 ctest, **noise_attack),
        "denoiser fgsm": ev("attack", denoised, ctest, attack="fgsm", threat=d_threat),
        "denoiser transfer": ev("transferred", denoised, ctest, source="no denoiser", source_attack="fgsm",
                                threat=d_threat, output="logits"),
        "denoiser apgd": ev("attack", {"denoiser": denoised["denoiser"]}, ctest, attack="apgd", threat=d_threat,
                            steps=cfg.apgd_steps),
        "audit mnist": audit(audit_mnist, test, ["linf", cfg.mnist_eps]),
        "audit cifar": audit(audit_cifar, ctest, cifar_linf[0]),
    })
