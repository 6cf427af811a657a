"""Your model: the book's method (attack cascade with intervals, minimal norms, gradient-masking audit,
certificates, a verdict) applied to a model the reader brings, or to one of the book's own.

The model is a file (:class:`~advlab.results.ModelFile`: weights with a registered architecture or a
``module:function``, or TorchScript), or ``book:CHAPTER/NAME``, one of the book's trained models at
this profile's recipe (the same cache key as in its chapter, so it is trained once). The robust
evaluation and the audit use the defenses chapter's parameters at every profile, so on a book model
they reproduce that chapter's numbers example for example.
"""
from __future__ import annotations

import json
import shlex
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import Chapter, Config, Param, Relation
from ..data import dataset_spec
from ..errors import InputError
from ..evaluate import (accuracy, cascade_description, certified_curve, interval_cells, overstatement,
                        robustness_summary, value_interval)
from ..evaluate.audit import CHECKS, PROBE_N, conclusive
from ..models.external import ARCHITECTURES
from ..results import DataSpec, Evaluation, ModelFile, ModelSpec, Plan, threat_of
from ..training import TrainConfig
from . import book_models as registered_book_models
from . import targets

YOURS = "your model"
BOOK = "book:"
CERTIFICATES = ("ibp", "crown", "smoothing", "none")
NORMALIZATIONS = ("none", "dataset", "custom")
CASCADE = ("APGD-CE", "APGD-T", "Square")  # the first cascade; escalation attacks follow in the order they ran


def parse_threat(text: str) -> list:
    """``"linf 0.3"`` -> ``["linf", 0.3]`` (pixel units), checked."""
    parts = str(text).split()
    try:
        t = threat_of([parts[0], float(parts[1])]) if len(parts) == 2 else None
    except (ValueError, InputError):
        t = None
    if t is None:
        raise InputError(f"a threat is written 'linf EPS' or 'l2 EPS' (EPS ≥ 0, pixel units), got {text!r}")
    return [t.norm, t.eps]


def _threats_ok(cfg) -> bool:
    try:
        return all(parse_threat(t) for t in cfg.threats)
    except InputError:
        return False


CHAPTER = Chapter(
    name="your-model",
    notebook="your_model.py",
    title="Your model: the whole method on a model you bring",
    position=5,
    params={
        "model": Param(str, f"the model: a weights or TorchScript file, or {BOOK}CHAPTER/NAME for one of the book's "
                            "trained models (e.g. book:defenses/PGD-L∞)", path=True),
        "architecture": Param(str, f"how to build a weights file: {ARCHITECTURES}; 'book' for a book model"),
        "model_options": Param(str, "keyword options of the architecture, a JSON or YAML mapping "
                                    "(e.g. {\"width\": 0.5})",
                               mapping=True),
        "normalization": Param(str, "what the model expects: 'none' (pixels in [0, 1]), 'dataset' (normalised with "
                                    "the dataset's mean and std) or 'custom' (norm_mean, norm_std)",
                               choices=NORMALIZATIONS),
        "norm_mean": Param(("list", float), "per-channel mean subtracted when normalization is 'custom'"),
        "norm_std": Param(("list", float), "per-channel std divided by when normalization is 'custom'",
                          positive=True),
        "dataset": Param(str, "the dataset the model classifies", choices=("mnist", "fashion-mnist", "cifar10")),
        **{k: targets.PARAMS[k] for k in ("seed", "mnist_epochs", "mnist_train_subset", "cifar_model", "cifar_width",
                                          "cifar_epochs", "cifar_train_subset")},
        "references": Param(("list", str), f"book models whose minimal norms the model's are set beside "
                                           f"({BOOK}NAME without the prefix, e.g. white-box/small_cnn), or 'none'"),
        "threats": Param(("list", str), "threat models, each 'linf EPS' or 'l2 EPS' in pixel units of [0, 1]"),
        "n_clean": Param(int, "test examples of the clean accuracy per class", minimum=1),
        "n_test": Param(int, "test examples of the robust evaluation (seeded, class-stratified)", minimum=1),
        "apgd_steps": Param(int, "iterations of APGD-CE and of APGD-T (per target class) in the cascade", minimum=1),
        "apgd_targets": Param(int, "target classes of APGD-T, the highest-scoring ones (AutoAttack: 9)", minimum=1),
        "square_queries": Param(int, "queries per example of the Square attack in the cascade and in the audit",
                                minimum=1),
        "escalation_queries": Param(int, "queries per example of the Square attack the evaluation escalates to "
                                         "where the model's gradients mislead", minimum=1),
        "batch_size": Param(int, "examples per attack batch and per block of an evaluation", minimum=1),
        "n_minimal": Param(int, "test examples of the minimum-norm attacks (DeepFool, CW-L2)", minimum=1),
        "deepfool_steps": Param(int, "DeepFool maximum iterations (overshoot 0.02)", minimum=1),
        "cw_steps": Param(int, "Carlini-Wagner Adam steps per binary-search step", minimum=1),
        "cw_search_steps": Param(int, "Carlini-Wagner binary-search steps over c", minimum=1),
        "audit_n": Param(int, "test examples of the gradient-masking audit", minimum=1),
        "audit_steps": Param(int, "PGD iterations of the audit (its long run: 5× with 3 restarts)", minimum=1),
        "eot_draws": Param(int, "draws per EOT gradient and prediction, for a model that is random in eval mode",
                           minimum=1),
        "certificates": Param(("list", str), "certificates to try: ibp, crown (every L∞ and L2 threat), smoothing "
                                             "(randomized smoothing, L2), or none", choices=CERTIFICATES),
        "crown_max_relus": Param(int, "CROWN runs on a model with at most this many ReLUs (its cost grows with the "
                                      "unstable ones, each bounded by a backward pass); IBP runs on every model",
                                 minimum=1),
        "smoothing_sigma": Param(float, "σ of randomized smoothing's Gaussian noise, pixel units", positive=True),
        "smoothing_n0": Param(int, "CERTIFY's selection samples", minimum=1),
        "smoothing_n": Param(int, "CERTIFY's estimation samples", minimum=1),
        "smoothing_alpha": Param(float, "CERTIFY's failure probability α", positive=True, maximum=0.5),
        "n_smooth": Param(int, "test examples certified by randomized smoothing", minimum=1),
    },
    base="quick",
    profiles={
        "quick": dict(model="book:defenses/PGD-L∞", architecture="book", model_options="{}", normalization="none",
                      norm_mean=[0.0], norm_std=[1.0], dataset="mnist",
                      **{k: v for k, v in targets.PROFILES["quick"].items() if k != "dataset"},
                      **targets.EVALUATION_PROFILES["quick"],
                      references=["white-box/small_cnn", "defenses/TRADES"], threats=["linf 0.3", "l2 2"],
                      n_clean=2000, n_minimal=100, deepfool_steps=50, cw_steps=100, cw_search_steps=5,
                      certificates=["ibp", "crown", "smoothing"], crown_max_relus=20000,
                      smoothing_sigma=0.25, smoothing_n0=100, smoothing_n=1000, smoothing_alpha=0.001, n_smooth=100),
        "smoke": dict(**targets.PROFILES["smoke"], **targets.EVALUATION_PROFILES["smoke"], n_clean=500,
                      n_minimal=30, cw_steps=20, cw_search_steps=2, smoothing_n=200, n_smooth=20),
        "paper": dict(**targets.PROFILES["paper"], **targets.EVALUATION_PROFILES["paper"], n_clean=10000,
                      n_minimal=1000, cw_steps=1000, cw_search_steps=9, smoothing_n=100000, n_smooth=500,
                      crown_max_relus=200000),
    },
    relations=(
        Relation(("threats",), _threats_ok, "every threat must be written 'linf EPS' or 'l2 EPS' with EPS ≥ 0 in "
                                            "pixel units"),
        Relation(("model", "architecture"), lambda c: c.model.startswith(BOOK) == (c.architecture == "book"),
                 f"a {BOOK}CHAPTER/NAME model takes architecture 'book', and a file names how it is built"),
        Relation(("norm_mean", "norm_std"), lambda c: len(c.norm_mean) == len(c.norm_std),
                 "norm_mean and norm_std need one value per channel each"),
        Relation(("certificates",), lambda c: "none" not in c.certificates or c.certificates == ["none"],
                 "certificates is either 'none' alone or a list of ibp, crown, smoothing"),
        Relation(("smoothing_n0", "smoothing_n"), lambda c: c.smoothing_n0 < c.smoothing_n,
                 "smoothing_n0 must be smaller than smoothing_n: CERTIFY selects with fewer samples than it counts"),
        Relation(("n_minimal", "audit_n", "n_smooth", "n_test"),
                 lambda c: max(c.n_minimal, c.audit_n, c.n_smooth) <= c.n_test,
                 "n_minimal, audit_n and n_smooth must not exceed n_test: their examples come from the evaluated "
                 "subset"),
    ),
    check=lambda cfg: check(cfg),  # defined below, with the model
)


# -- the model ----------------------------------------------------------------------------------------
SHARED = ("seed", "mnist_epochs", "mnist_train_subset", "cifar_model", "cifar_width", "cifar_epochs",
          "cifar_train_subset")  # the book's recipes at this page's values


def book_models(cfg: Config) -> dict[str, TrainConfig]:
    """The book's trained models a reader can name ``book:CHAPTER/NAME`` on ``cfg.dataset``, at this
    profile's recipes (each chapter's ``reader_models``, found through the chapter registry)."""
    shared = {k: cfg[k] for k in SHARED} | ({"dataset": cfg.dataset} if cfg.dataset != "cifar10" else {})
    return registered_book_models(cfg.profile, shared, cfg.dataset)


def book_model(cfg: Config, name: str) -> TrainConfig:
    models = book_models(cfg)
    if name not in models:
        raise InputError(f"no book model {name!r} on {cfg.dataset}; valid: {', '.join(models)}")
    return models[name]


def normalization(cfg: Config):
    if cfg.normalization == "none":
        return None
    if cfg.normalization == "dataset":
        spec = dataset_spec(cfg.dataset)
        return spec.mean, spec.std
    return cfg.norm_mean, cfg.norm_std


def your_model(cfg: Config) -> TrainConfig | ModelFile | ModelSpec:
    """The model under study: a book model's recipe, or the file (loaded and probed now), behind the
    ``eot`` wrapper with ``eot_draws`` draws if it answers an input differently from call to call."""
    if cfg.model.startswith(BOOK):
        return book_model(cfg, cfg.model[len(BOOK):])
    file = ModelFile(cfg.model, cfg.dataset, cfg.architecture, options=json.loads(cfg.model_options),
                     normalization=normalization(cfg))
    if not file.randomized:  # loads and probes it: a file that cannot be used fails here
        return file
    warnings.warn(f"{Path(file.path).name} answers the same input differently from call to call in eval mode: it "
                  f"is evaluated with EOT over {cfg.eot_draws} draws", stacklevel=2)
    return ModelSpec(file, [["eot", {"draws": cfg.eot_draws}]])


def check(cfg: Config) -> None:
    """The model before any kernel: the file exists and loads, its weights fit the architecture, it
    classifies the dataset's inputs (what :class:`~advlab.results.ModelFile` checks when declared), or a
    book model of that name exists. ``advlab run`` calls this before papermill starts."""
    your_model(cfg)


def surrogate(cfg: Config) -> TrainConfig:
    """The attacker's surrogate the evaluation transfers from: the book's standard model of the dataset."""
    return targets.surrogate_config(cfg, cfg.dataset)


def references(cfg: Config) -> dict[str, TrainConfig]:
    return {} if cfg.references == ["none"] else {k: book_model(cfg, k) for k in cfg.references}


def threats(cfg: Config) -> list[list]:
    return [parse_threat(t) for t in cfg.threats]


def minimal_attacks(cfg: Config) -> dict:
    cw = {"steps": cfg.cw_steps, "binary_search_steps": cfg.cw_search_steps, "lr": 0.1, "initial_const": 0.1}
    return {"DeepFool-L2": ["deepfool", {"norm": "l2", "steps": cfg.deepfool_steps}], "CW-L2": ["cw", cw]}


def plan(cfg: Config) -> Plan:
    """The model card, clean accuracy per class, the cascade per threat, minimal norms beside the
    references, the audit at the first threat, and the certificates asked for."""
    model = {YOURS: your_model(cfg)}
    refs = references(cfg)
    test = DataSpec(cfg.dataset, n=cfg.n_test, seed=cfg.seed)
    ts = threats(cfg)

    def ev(kind, models_, data, block=cfg.batch_size, **params):
        return Evaluation(kind, models_, data, params, seed=cfg.seed, block=block)

    attacker = {**model, targets.SURROGATE: surrogate(cfg)}  # rides along, never evaluated
    evaluations = {
        "card": ev("model_card", model, test.within(min(PROBE_N, cfg.n_test))),
        "clean": ev("clean", model, DataSpec(cfg.dataset, n=cfg.n_clean, seed=cfg.seed)),
        "robust": ev("robust", attacker, test, threats=ts, steps=cfg.apgd_steps, targets=cfg.apgd_targets,
                     queries=cfg.square_queries, escalation_queries=cfg.escalation_queries, eot_draws=cfg.eot_draws,
                     surrogate=targets.SURROGATE),
        "minimal_norms": ev("minimal_norms", model, test.within(cfg.n_minimal), attacks=minimal_attacks(cfg)),
        "audit": ev("audit", attacker, test.within(cfg.audit_n), block=cfg.audit_n, threat=ts[0],
                    steps=cfg.audit_steps, queries=cfg.square_queries, draws=cfg.eot_draws,
                    surrogate=targets.SURROGATE),
    }
    if refs:  # a table of their own: cached whatever model the reader brings
        evaluations["reference minimal_norms"] = ev("minimal_norms", refs, test.within(cfg.n_minimal),
                                                    attacks=minimal_attacks(cfg))
    methods = [m for m in ("ibp", "crown") if m in cfg.certificates]
    if methods:
        evaluations.update({("bounds", n, e): ev("bounds", model, test, threat=[n, e], methods=methods,
                                                    unsupported="skip", max_relus=cfg.crown_max_relus)
                            for n, e in ts})
    if "smoothing" in cfg.certificates:
        evaluations["smoothing"] = ev("smoothing", model, test.within(cfg.n_smooth), sigma=cfg.smoothing_sigma,
                                      n0=cfg.smoothing_n0, n=cfg.smoothing_n, alpha=cfg.smoothing_alpha)
    trained = {f"reference {k}": c for k, c in refs.items()} | {"surrogate": attacker[targets.SURROGATE]}
    if isinstance(model[YOURS], TrainConfig):
        trained[YOURS] = model[YOURS]
    return Plan(trainings=trained, evaluations=evaluations)


# -- the page's tables ----------------------------------------------------------------------------------
def minimal_norm_rows(plan: Plan, device=None) -> pd.DataFrame:
    """The minimal-norm rows of the model and of the references, one table."""
    names = [n for n in ("minimal_norms", "reference minimal_norms") if n in plan.evaluations]
    return pd.concat([plan.result(n, device) for n in names], ignore_index=True)


def gradient_text(rows: pd.DataFrame) -> str:
    """What the minimal-norm table cannot say for a model without input gradients ('' for the others)."""
    ok = rows[rows.clean_correct].drop_duplicates(["model", "example"])
    parts = [f"{m} has no input gradient (zero or non-finite) on {int((~g.gradient).sum())} of {len(g)} correctly "
             "classified examples" for m, g in ok.groupby("model", sort=False) if (~g.gradient).any()]
    if not parts:
        return ""
    return ("**No gradient**: " + "; ".join(parts) + ". DeepFool and Carlini-Wagner follow the gradient, so where "
            "there is none they cannot move: their failures there say nothing about how far the boundary is, "
            "and the adaptive evaluation above is the number to read.")


def pct(v: float, lo: float, hi: float) -> str:
    return value_interval(v, lo, hi)


def model_of(plan: Plan):
    """The model under study as the plan declares it (a recipe, or the file, maybe behind EOT)."""
    return plan.evaluations["robust"].models[YOURS]


def smoothing_rows(plan: Plan, device=None) -> pd.DataFrame | None:
    """Randomized smoothing's table, or None when not asked for."""
    return plan.result("smoothing", device) if "smoothing" in plan.evaluations else None


def card_table(card: pd.DataFrame, cfg: Config, model) -> pd.DataFrame:
    """The model card: where the model comes from and what it is."""
    row = card.iloc[0]
    model = model.source if isinstance(model, ModelSpec) else model
    where = (f"{cfg.model} (trained by the book, recipe key {model.key})" if isinstance(model, TrainConfig)
             else f"{model.path} (sha256 {model.sha256[:16]}…)")
    how = {"book": f"{model.method} training of {model.model}" if isinstance(model, TrainConfig) else "",
           "torchscript": "TorchScript (the file is the model)"}.get(cfg.architecture, cfg.architecture)
    draws = row.eot_draws
    random = (f"yes: evaluated with EOT over {int(draws)} draws" if row.randomized and pd.notna(draws)
              else "yes" if row.randomized else "no")
    title = dataset_spec(cfg.dataset).title
    inputs = {"none": "pixels in [0, 1]", "dataset": f"normalised with {title}'s mean and std",
              "custom": f"normalised with mean {cfg.norm_mean}, std {cfg.norm_std}"}[cfg.normalization]
    return pd.DataFrame({"": [where, how, title, inputs, f"{int(row.parameters):,}",
                              row.layers, random,
                              "supported" if row.bounds == "supported" else f"not supported: {row.bounds}"]},
                        index=pd.Index(["source", "architecture", "dataset", "inputs", "parameters", "layers",
                                        "random in eval mode", "IBP / CROWN"], name="model card"))


def per_class(rows: pd.DataFrame, column: str, classes, by=()) -> pd.DataFrame:
    """Accuracy of ``column`` per class (and per ``by``), as 'value [low, high]' in percent."""
    acc = accuracy(rows, column, by=[*by, "label"])
    acc["class"] = [classes[k] for k in acc.label]
    acc["cell"] = [pct(a, lo, hi) for a, lo, hi in zip(acc.accuracy, acc.ci_low, acc.ci_high)]
    if not by:
        return acc.set_index("class")[["n", "cell"]].rename(columns={"cell": "accuracy (%)"})
    order = list(dict.fromkeys(rows[by[0]])) if len(by) == 1 else None  # the rows' order (threats as given)
    table = acc.pivot(index="class", columns=list(by), values="cell").loc[list(dict.fromkeys(acc["class"]))]
    return table[order] if order else table


def robust_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Clean and robust accuracy per threat (the union last), with 95% intervals."""
    s = robustness_summary(rows, by="threat").loc[list(dict.fromkeys(rows.threat))]
    return s.assign(**{"clean (%)": interval_cells(s, "clean"), "robust (%)": interval_cells(s, "robust")})


def broken_by(rows: pd.DataFrame) -> pd.DataFrame:
    """Per threat, how many examples each attack broke first (the cascade's, then those of the escalation
    where it ran), how many were misclassified already, and how many survived every attack."""
    rows = rows[rows.threat != "union"]
    what = np.where(~rows.clean_correct, "misclassified clean",
                    np.where(rows.robust, "survived every attack", rows.fooled_by.astype(str)))
    escalated = [a for a in dict.fromkeys(rows.fooled_by.dropna()) if a not in CASCADE]
    out = pd.crosstab(rows.threat, what).reindex(
        columns=["misclassified clean", *CASCADE, *escalated, "survived every attack"], fill_value=0)
    return out.loc[list(dict.fromkeys(rows.threat))].rename_axis(index="threat", columns=None)


def audit_findings(audit: pd.DataFrame) -> pd.DataFrame:
    """Every check with its verdict, what it tests and its evidence."""
    return pd.DataFrame({"verdict": audit.verdict.to_numpy(), "what it tests": [CHECKS[c] for c in audit.check],
                         "evidence": audit.evidence.to_numpy()}, index=pd.Index(audit.check, name="check"))


def bound_tables(plan: Plan, device=None) -> dict:
    """The certificates' tables by (norm, ε), none if not asked for."""
    return plan.tables("bounds", device) if any(isinstance(n, tuple) and n[0] == "bounds" for n in plan.evaluations) \
        else {}


def bound_summary(tables: dict, cfg: Config) -> pd.DataFrame | str:
    """Certified accuracy per threat and method with 95% intervals (a table), or why there is none
    (a string): not asked for, or an operation bound propagation does not support. A method left out
    for the model's size is a row that says so."""
    if not tables:
        return "not asked for (add ibp or crown to `certificates`)"
    first = next(iter(tables.values()))
    if "unsupported" in first.columns:
        return str(first.unsupported.iat[0])
    out = {}
    for (norm, eps), t in tables.items():
        for m in ("ibp", "crown"):
            row = (f"{norm} {eps:g}", m.upper())
            if m in t.columns:
                a = accuracy(t, m).iloc[0]
                out[row] = {"n": int(a.n), "certified (%)": pct(a.accuracy, a.ci_low, a.ci_high),
                            "certified": a.accuracy}
            elif m in cfg.certificates and "skipped" in t.columns:
                out[row] = {"n": len(t), "certified (%)": "not run (crown_max_relus)", "certified": np.nan}
    return pd.DataFrame(out).T.rename_axis(["threat", "method"])


def bounds_text(bounds, tables: dict | None = None) -> str:
    if isinstance(bounds, str):
        return f"**IBP and CROWN** give no certificate here: {bounds}."
    skipped = next((t.skipped.iat[0] for t in (tables or {}).values() if "skipped" in t.columns), None)
    return ("**IBP and CROWN**: the share of the examples whose every margin is proved positive over the whole "
            "ball, a lower bound on the robust accuracy of the same examples as the attacks (95% intervals)"
            + (f". Not run: {skipped} (raise `crown_max_relus` to run it, at a cost that grows with the unstable "
               "ReLUs)" if skipped else "") + ":")


SMOOTHING_RADII = (0.0, 0.5, 1.0)  # L2 radii of the smoothing table, in units of σ


def smoothing_text(cfg: Config, rows: pd.DataFrame | None) -> str:
    if rows is None:
        return "**Randomized smoothing**: not asked for (add `smoothing` to `certificates`)."
    return (f"**Randomized smoothing** (Cohen et al. 2019) certifies the *smoothed* model, the majority vote of "
            f"this one under Gaussian noise of σ = {cfg.smoothing_sigma:g}, not the model itself: CERTIFY with "
            f"{cfg.smoothing_n0:,} selection and {cfg.smoothing_n:,} estimation samples, α = "
            f"{cfg.smoothing_alpha:g}, on {len(rows)} examples; an example counts at radius r if the smoothed model "
            "classifies it correctly with a certified radius of at least r.")


def smoothing_summary(rows: pd.DataFrame | None, cfg: Config) -> pd.DataFrame | None:
    """Certified accuracy of the smoothed classifier at L2 radii 0, σ/2 and σ (correct, radius ≥ r)."""
    if rows is None:
        return None
    c = certified_curve(rows, [f * cfg.smoothing_sigma for f in SMOOTHING_RADII])
    return pd.DataFrame({"L2 radius": c.radius, "n": c.n,
                         "certified (%)": [pct(a, lo, hi) for a, lo, hi in zip(c.accuracy, c.ci_low, c.ci_high)]}
                        ).set_index("L2 radius")


def verdict(cfg: Config, card: pd.DataFrame, robust: pd.DataFrame, audit: pd.DataFrame, bounds,
            smooth: pd.DataFrame | None = None) -> str:
    """One paragraph computed from the numbers: robustness per threat as an upper bound, the
    certificates' lower bound where there is one, and what the audit says about trusting it."""
    s = robust_summary(robust)
    parts = []
    for threat in s.index:
        if threat == "union":
            continue
        norm, eps = threat.split()
        r = s.loc[threat]
        parts.append(f"{100 * r.robust:.1f}% (95% CI {100 * r.robust_low:.1f}–{100 * r.robust_high:.1f}) under "
                     f"{'L∞' if norm == 'linf' else 'L2'} ε = {eps}")
    text = (f"Of {int(s.n.iloc[0])} test examples, the model keeps {'; '.join(parts)}"
            f" (pixels in [0, 1]; {cascade_text(cfg)}). These are upper bounds on its true robust accuracy: "
            "a stronger attack can only lower them.")
    text += escalation_text(robust)
    if isinstance(bounds, pd.DataFrame) and len(bounds):
        best = bounds.groupby(level="threat").certified.max()
        text += " Certificates prove lower bounds: " + "; ".join(
            f"{100 * v:.1f}% at {t}" for t, v in best.items()) + "."
    if smooth is not None:
        at = smoothing_summary(smooth, cfg).iloc[-1]
        text += (f" Smoothed with σ = {cfg.smoothing_sigma:g}, a different classifier, it is certified on "
                 f"{at['certified (%)']}% of {int(at.n)} examples at L2 radius {cfg.smoothing_sigma:g}.")
    fails = list(audit.check[audit.verdict == "fail"])
    warns = list(audit.check[audit.verdict == "warn"])
    if card.randomized.iat[0]:
        text += (f" The model answers the same input differently from call to call, so it was attacked through "
                 f"EOT over {cfg.eot_draws} draws.")
    if fails:
        text += (f" **The gradient-masking audit fails {', '.join(fails)}**: gradient attacks do not see this "
                 "model's real decision boundary, and the robust accuracy above may overstate its robustness by "
                 "far. Trust the black-box (Square) and BPDA numbers of the audit more than the gradient ones, "
                 "and look for an adaptive attack before any claim.")
    elif warns:
        text += f" The audit warns on {', '.join(warns)}; the evidence above says how far to trust the numbers."
    elif conclusive(audit, cfg.square_queries):
        text += (" The audit found no warning, but it is not conclusive: it could not run "
                 f"{', '.join(conclusive(audit, cfg.square_queries))}.")
    else:
        text += " The audit passes every check that applies: nothing suggests masked gradients."
    return text


def cascade_text(cfg: Config) -> str:
    """The first cascade and its budgets, in words."""
    return cascade_description(cfg.apgd_steps, cfg.apgd_targets, cfg.square_queries)


def overstatement_table(robust: pd.DataFrame) -> pd.DataFrame:
    """Per threat: robust examples under the cascade alone and after the escalation, what flagged it."""
    return overstatement(robust[robust.threat != "union"]).set_index("threat")


def escalation_text(robust: pd.DataFrame) -> str:
    """What the evaluation escalated to and why, and how far the first cascade overstated; '' when it did not."""
    robust = robust[robust.threat != "union"]
    o = overstatement(robust)
    if not o.escalated.any():
        return ""
    parts = [f"{r['overstated by (points)']:.1f} points at {r.threat}" for _, r in o[o.escalated].iterrows()]
    attacks = [a for a in dict.fromkeys(robust.fooled_by.dropna()) if a not in CASCADE]
    return (f" The model's behaviour called for more ({o.masking.iat[0]}), so the evaluation escalated on the "
            f"examples the cascade left ({', '.join(attacks) or 'nothing more broke'}); the cascade alone "
            f"overstated robust accuracy by {'; '.join(parts)}.")


def command(cfg: Config) -> str:
    """The command that reproduces this page: the parameters that differ from the profile's values."""
    base = CHAPTER.profile_values(cfg.profile)
    args = []
    for k, v in cfg.items():
        if v != base[k]:
            value = json.dumps(v, ensure_ascii=False) if isinstance(v, list) else str(v)
            args += ["-p", k, value]
    return shlex.join(["advlab", "run", CHAPTER.name, "--profile", cfg.profile, *args])
