"""Evaluation results cached like checkpoints, computed in fixed-size blocks that shard across ranks.

An :class:`Evaluation` declares a per-example table: a registered ``kind`` (an attack, a sweep,
the robust ensemble, a certificate, ...) with its parameters, the models it runs on (named
:class:`~advlab.training.TrainConfig`\\ s), a data subset and a seed. Its key hashes all of that, the
block size, the precision, the library version and the source of the kernels, so a change in any
of them is a different result, never a mixed one. :func:`load_or_evaluate` returns the table from
``<cache>/results/`` or computes and stores it, as :func:`~advlab.training.load_or_train` does for
models.

Sharding: the subset is cut into blocks of ``block`` examples; block ``b`` draws all its random
numbers from a generator seeded with :func:`block_seed` ``(seed, b)``, so the table does not depend
on which process computed which block (bit for bit on CPU). Under ``torchrun`` rank r computes
blocks r, r + K, ... and rank 0 gathers them. Every finished block is saved (atomically) under
``results/.parts/<name>/``; a killed run resumes with the missing blocks only, and the table in
``results/`` appears, atomically, once every block is done.

A chapter's :class:`Plan` lists the trainings and evaluations it needs for a configuration; the
notebook reads its results through the plan and ``advlab precompute`` fills the cache from it.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import shutil
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import __version__, source
from .cache import atomic_save, cache_root, cached_only, config_key
from .checks import check_choice
from .data import Dataset, dataset_spec, load_dataset
from .distributed import barrier, broadcast_from_main, context, gather_to_main, shard
from .errors import AdvlabError, CacheMiss, CheckpointError, InputError
from .models import Autocast
from .precision import PRECISIONS, computing_in
from .progress import bar
from .threat import ThreatModel
from .timing import Stopwatch
from .training import TrainConfig, load_or_train
from .training.denoiser import DenoiserConfig, load_or_train_denoiser

RESULT_FORMAT = 1
TIMING = ("seconds",)  # columns that measure wall time: they vary between runs, all else must not


def timing_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if c in TIMING or c.endswith("_seconds")]


def block_seed(seed: int, block: int) -> int:
    """The seed of block ``block``'s random stream: a hash of (seed, block), so neighbouring seeds and
    blocks give unrelated streams."""
    digest = hashlib.sha256(f"advlab-block:{seed}:{block}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


# -- what the kernels are ----------------------------------------------------------------------------
@functools.cache
def kernel_hash() -> str:
    """Hash of the source of every advlab module this one imports, directly or not (syntax trees,
    so comments do not count): a result is recomputed when the code that produced it changes."""
    return source.code_hash(source.dependencies([__name__]))


# -- declarations ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DataSpec:
    """A seeded subset of one split: ``n`` examples (None: all), class-stratified or not."""

    dataset: str
    split: str = "test"
    n: int | None = None
    seed: int = 0
    stratified: bool = True
    sub: int | None = None

    def __post_init__(self):
        dataset_spec(self.dataset)
        check_choice(self.split, ("train", "test"), "split")
        for name in ("n", "sub"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise InputError(f"DataSpec.{name} must be a positive int or None (all), got {v!r}")
        if self.sub is not None and self.n is not None and self.sub > self.n:
            raise InputError(f"DataSpec.sub ({self.sub}) cannot exceed n ({self.n}): it is a subset of the subset")

    def load(self, device=None) -> Dataset:
        data = load_dataset(self.dataset, self.split, device=device)
        data = data.subset(self.n, seed=self.seed, stratified=self.stratified)
        if self.sub is not None:  # a study on part of the chapter's subset (drawn the same way)
            data = data.subset(self.sub, seed=self.seed, stratified=self.stratified)
        return data

    def within(self, sub: int) -> "DataSpec":
        """``sub`` examples of this subset (the few-pixel and HopSkipJump studies' examples)."""
        return dataclasses.replace(self, sub=sub)


# -- models: a trained network and the wrappers in front of it ----------------------------------------
def _wrapper_fns() -> dict:
    from .defenses import EOT, BitDepthReduction, GaussianNoise, bpda
    return {"bits": lambda m, bits: BitDepthReduction(m, bits=bits),
            "bpda": lambda m: bpda(m),
            "noise": lambda m, sigma, clip=False: GaussianNoise(m, sigma, clip=clip),
            "eot": lambda m, draws: EOT(m, draws)}


WRAPPERS = {"bits": "input bit-depth reduction (feature squeezing) to `bits` bits",
            "bpda": "BPDA: the wrapped model's input transforms differentiated as the identity",
            "noise": "Gaussian noise of std `sigma` added to the input on every forward pass (reseeded per block)",
            "eot": "Expectation over Transformation: mean class probabilities over `draws` forward passes"}


@dataclass(frozen=True)
class ModelSpec:
    """A trained model with declared wrappers in front of it: ``wrappers`` is a sequence of
    ``[name, {params}]`` applied innermost first (e.g. ``[["noise", {"sigma": 0.1}], ["eot", {"draws": 8}]]``).

    It is what an :class:`Evaluation` runs when the model is not the bare network: its key is the
    checkpoint's key and the wrappers, so the table is cached like any other.
    """

    config: TrainConfig
    wrappers: tuple = ()
    front: DenoiserConfig | None = None  # a denoiser in front of the model (Denoised), before the wrappers

    def __post_init__(self):
        if not isinstance(self.config, TrainConfig):
            raise InputError(f"ModelSpec.config must be a TrainConfig, got {type(self.config).__name__}")
        if self.front is not None and not isinstance(self.front, DenoiserConfig):
            raise InputError(f"ModelSpec.front must be a DenoiserConfig, got {type(self.front).__name__}")
        norm = []
        for w in self.wrappers:
            name, params = (w, {}) if isinstance(w, str) else (w[0], dict(w[1]) if len(w) > 1 else {})
            check_choice(name, WRAPPERS, "model wrapper")
            try:
                json.dumps(params, allow_nan=False)
            except (TypeError, ValueError) as e:
                raise InputError(f"wrapper {name!r} parameters must be JSON values: {e}") from None
            norm.append((name, params))
        object.__setattr__(self, "wrappers", tuple(norm))
        self.build(None, check_only=True)

    @property
    def dataset(self) -> str:
        return self.config.dataset

    @property
    def key(self) -> str:
        return config_key({"model": self.config.key, "wrappers": [[n, p] for n, p in self.wrappers],
                           **({"front": self.front.key} if self.front else {})})

    def build(self, model, check_only: bool = False, front=None):
        """``model`` (the trained network) behind the trained denoiser ``front`` if declared, with the
        wrappers applied; ``check_only`` validates the wrappers' parameters on a stand-in."""
        fns = _wrapper_fns()
        m = torch.nn.Identity() if check_only else model
        if front is not None:
            from .defenses import Denoised
            m = Denoised(front, m)
        for name, params in self.wrappers:
            try:
                m = fns[name](m, **params)
            except TypeError as e:
                raise InputError(f"wrapper {name!r}: {e}") from None
        return None if check_only else m


def threat_of(spec) -> ThreatModel | None:
    """A threat model from its JSON form ``[norm, eps]`` (None stays None)."""
    if spec is None or isinstance(spec, ThreatModel):
        return spec
    if not (isinstance(spec, (list, tuple)) and len(spec) == 2):
        raise InputError(f"a threat model is written [norm, eps], got {spec!r}")
    return ThreatModel(spec[0], spec[1])


@dataclass(frozen=True)
class Kind:
    """A registered evaluation: ``fn(models, data, seed=, batch_size=, **params)`` returns per-example
    rows for one block of examples. A kind with inputs also receives ``inputs`` (each input's rows
    for the block's examples) and ``start`` (the block's first position in the subset)."""

    name: str
    fn: Callable
    doc: str
    takes_inputs: bool = False
    whole_inputs: bool = False  # the inputs' whole tables (a statistic over all examples), not the block's rows


KINDS: dict[str, Kind] = {}


def register(name: str, doc: str, takes_inputs: bool = False, whole_inputs: bool = False):
    def deco(fn):
        KINDS[name] = Kind(name, fn, doc, takes_inputs or whole_inputs, whole_inputs)
        return fn
    return deco


@dataclass(frozen=True)
class Evaluation:
    """A per-example table, declared: ``kind`` with ``params`` on ``models`` over ``data``.

    ``params`` must be JSON-able (threat models as ``[norm, eps]``). ``block`` is the unit of
    sharding and of the random streams, and the attack batch size; ``precision`` "bf16" runs the
    models under bf16 autocast and "tf32" lets GPU products round to TF32 (speed options); "fp32",
    the default, is IEEE float32 on every device (:mod:`advlab.precision`). ``inputs`` names
    other evaluations on the same examples whose tables this one reads (e.g. the MILP decides only
    what the certificates and attacks left open); they are computed first.
    """

    kind: str
    models: Mapping[str, TrainConfig | ModelSpec]
    data: DataSpec
    params: Mapping = field(default_factory=dict)
    seed: int = 0
    block: int = 256
    precision: str = "fp32"
    inputs: Mapping[str, "Evaluation"] = field(default_factory=dict)

    def __post_init__(self):
        check_choice(self.kind, KINDS, "evaluation kind")
        check_choice(self.precision, PRECISIONS, "precision")
        if not self.models or not all(isinstance(c, (TrainConfig, ModelSpec)) for c in self.models.values()):
            raise InputError("an evaluation needs a mapping of names to TrainConfigs or ModelSpecs")
        if len({c.dataset for c in self.models.values()} | {self.data.dataset}) > 1:
            raise InputError(f"an evaluation's models must be trained on its dataset {self.data.dataset!r}")
        if not isinstance(self.block, int) or self.block < 1:
            raise InputError(f"block must be a positive int, got {self.block!r}")
        try:
            json.dumps(dict(self.params), allow_nan=False)
        except (TypeError, ValueError) as e:
            raise InputError(f"evaluation parameters must be JSON values (threats as [norm, eps]): {e}") from None
        takes = KINDS[self.kind].takes_inputs
        if bool(self.inputs) != takes:
            raise InputError(f"evaluation kind {self.kind!r} takes {'inputs' if takes else 'no inputs'}")
        for name, dep in self.inputs.items():
            if not isinstance(dep, Evaluation) or dep.data != self.data:
                raise InputError(f"input {name!r} must be an Evaluation of the same examples ({self.data})")
        object.__setattr__(self, "models", dict(self.models))
        object.__setattr__(self, "params", dict(self.params))
        object.__setattr__(self, "inputs", dict(self.inputs))

    def __hash__(self):
        return hash(self.key)

    def describe(self) -> dict:
        """The full configuration the key hashes (self-description stored with the table)."""
        return {"format": RESULT_FORMAT, "kind": self.kind, "models": {k: c.key for k, c in self.models.items()},
                "data": dataclasses.asdict(self.data), "params": self.params, "seed": self.seed,
                "block": self.block, "precision": self.precision, "inputs": {k: e.key for k, e in self.inputs.items()},
                "advlab": __version__, "kernels": kernel_hash()}

    @property
    def key(self) -> str:
        return config_key(self.describe(), length=16)

    def path(self, root=None) -> Path:
        return cache_root(root) / "results" / f"{self.kind}-{self.data.dataset}-{self.key}.pt"

    def blocks(self, n: int) -> list[range]:
        return [range(i, min(i + self.block, n)) for i in range(0, n, self.block)]


# -- tables on disk ----------------------------------------------------------------------------------
def _plain(v):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return v.item() if isinstance(v, np.generic) else v


def encode_table(df: pd.DataFrame) -> dict:
    """A DataFrame as tensors (numeric and bool columns, exact) and lists (the rest): what
    ``torch.load(weights_only=True)`` accepts."""
    cols, kinds = {}, {}
    for c in df.columns:
        s = df[c]
        if s.dtype.kind in "biuf":
            cols[c], kinds[c] = torch.from_numpy(s.to_numpy().copy()), "tensor"
        else:  # pandas' string dtype, or objects (str, None, numbers)
            cols[c] = [_plain(v) for v in s.tolist()]
            kinds[c] = "str" if isinstance(s.dtype, pd.StringDtype) else "list"
    return {"columns": list(df.columns), "data": cols, "kinds": kinds}


def decode_table(enc: dict) -> pd.DataFrame:
    dtypes = {"list": object, "str": "str"}
    data = {c: (enc["data"][c].numpy() if enc["kinds"][c] == "tensor"
                else pd.Series(enc["data"][c], dtype=dtypes[enc["kinds"][c]]))
            for c in enc["columns"]}
    return pd.DataFrame(data, columns=enc["columns"])


def table_digest(enc: dict) -> str:
    h = hashlib.sha256()
    for c in enc["columns"]:
        h.update(c.encode())
        v = enc["data"][c]
        if enc["kinds"][c] == "tensor":
            h.update(f"{v.dtype}|{tuple(v.shape)}".encode())
            h.update(v.contiguous().view(torch.uint8).numpy().tobytes())
        else:
            h.update(json.dumps(v).encode())
    return h.hexdigest()


def _save_table(df: pd.DataFrame, path: Path, describe: dict, extra: dict | None = None) -> None:
    enc = encode_table(df)
    atomic_save({"format": RESULT_FORMAT, "evaluation": describe, "table": enc, "sha256": table_digest(enc),
                 **(extra or {})}, path)


def _load_table(path: Path, describe: dict) -> tuple[pd.DataFrame, dict]:
    """The table stored at ``path`` for exactly ``describe``, or CheckpointError."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"result {path} is truncated or corrupt ({type(e).__name__}: {e})") from e
    if not isinstance(obj, dict) or obj.get("format") != RESULT_FORMAT or "table" not in obj:
        raise CheckpointError(f"result {path} is not an advlab result of format {RESULT_FORMAT}")
    if obj.get("evaluation") != describe:
        raise CheckpointError(f"result {path} was written for another evaluation or library version")
    if obj.get("sha256") != table_digest(obj["table"]):
        raise CheckpointError(f"result {path} fails its digest (corrupt)")
    return decode_table(obj["table"]), obj


def load_result(ev: Evaluation, root=None) -> pd.DataFrame | None:
    """The cached table of ``ev``, or None. A corrupt or foreign file is reported and removed."""
    path = ev.path(root)
    if not path.exists():
        return None
    try:
        return _load_table(path, ev.describe())[0]
    except CheckpointError as e:
        warnings.warn(f"{e}; recomputing", stacklevel=2)
        if context().main:
            path.unlink(missing_ok=True)
        return None


def _stamp(path: Path):
    """The file's identity for "was it written since": inode and modification time, or None if absent."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


# -- computing -----------------------------------------------------------------------------------------
def _models(ev: Evaluation, device, progress: bool, root=None) -> dict:
    out = {}
    for name, spec in ev.models.items():
        cfg = spec.config if isinstance(spec, ModelSpec) else spec
        model, _ = load_or_train(cfg, device=device, cache_root=root, progress=progress)
        if ev.precision == "bf16":
            model = Autocast(model)
        if isinstance(spec, ModelSpec):
            front = spec.front and load_or_train_denoiser(spec.front, device=device, cache_root=root,
                                                          progress=progress)[0]
            model = spec.build(model, front=front)
        out[name] = model
    return out


def _reseed(models: dict, seed: int) -> None:
    """Random wrappers draw from the block's stream, so a block's noise does not depend on which
    process computed which blocks before it."""
    for m in models.values():
        for mod in m.modules():
            if hasattr(mod, "reseed"):
                mod.reseed(seed)


def _run_block(ev: Evaluation, models: dict, data: Dataset, b: int, rows: range,
               inputs: dict | None = None) -> pd.DataFrame:
    part = data.take(torch.arange(rows.start, rows.stop, device=data.x.device))
    extra = {}
    seed = block_seed(ev.seed, b)
    _reseed(models, seed)
    if KINDS[ev.kind].whole_inputs:
        extra = {"inputs": dict(inputs or {})}
    elif KINDS[ev.kind].takes_inputs:
        examples = part.indices.cpu().numpy()
        # each input's rows for these examples, in the block's order (the inputs' blocks may differ)
        extra = {"start": rows.start, "inputs": {k: t.set_index("example").loc[examples].reset_index()
                                                  for k, t in (inputs or {}).items()}}
    # fp32 means IEEE fp32 on GPUs too, tf32 what it says; bf16 models carry their own autocast
    with computing_in("tf32" if ev.precision == "tf32" else "fp32", data.x.device):
        out = KINDS[ev.kind].fn(models, part, seed=seed, batch_size=ev.block, **extra, **ev.params)
    return out.assign(block=b)


def load_or_evaluate(ev: Evaluation, device=None, root=None, progress: bool = True) -> pd.DataFrame:
    """The per-example table of ``ev``: from the cache, or computed (sharded under torchrun) and stored.

    Every rank returns the same table. Rows are in block order (within a block, in the kind's
    order); the ``block`` column says which block an example belonged to. With
    ``ADVLAB_CACHED_ONLY=1`` a missing table raises :class:`CacheMiss` instead.
    """
    device = torch.device(device or "cpu")
    ctx = context()
    found = load_result(ev, root)
    if ctx.distributed:  # every rank must take the same branch
        found = broadcast_from_main(found)
    if found is not None:
        return found
    path = ev.path(root)
    if cached_only():
        raise CacheMiss(f"no cached {ev.kind} result {path.name}; fill the cache with `advlab precompute CHAPTER "
                        "--profile PROFILE` and the run's -p values (or run without ADVLAB_CACHED_ONLY)")
    data = ev.data.load(device)
    if ctx.world > len(data):
        raise InputError(f"{ctx.world} processes for an evaluation of {len(data)} examples ({ev.kind} on "
                         f"{ev.data.dataset}): every process needs at least one; start fewer (--nproc_per_node)")
    inputs = {k: load_or_evaluate(dep, device, root, progress) for k, dep in ev.inputs.items()}
    models = _models(ev, device, progress, root)
    blocks = ev.blocks(len(data))
    parts = path.parent / ".parts" / path.stem
    describe = ev.describe()
    mine = shard(list(enumerate(blocks)), ctx)
    done = {}
    with Stopwatch(device) as sw:
        for b, rows in bar(mine, desc=f"{ev.kind} ({len(data)} examples, rank {ctx.rank}/{ctx.world})",
                           enabled=progress, leave=False):
            part = parts / f"{b:06d}.pt"
            if part.exists():
                try:
                    done[b] = _load_table(part, describe)[0]
                    continue
                except CheckpointError:
                    part.unlink(missing_ok=True)
            done[b] = _run_block(ev, models, data, b, rows, inputs)
            _save_table(done[b], part, describe)
    gathered = gather_to_main(done)
    table = None
    if ctx.main:
        merged = {b: t for d in gathered for b, t in d.items()}
        missing = sorted(set(range(len(blocks))) - set(merged))
        if missing:
            raise AdvlabError(f"blocks {missing} of {ev.kind} were not computed by any rank")
        table = pd.concat([merged[b] for b in range(len(blocks))], ignore_index=True)
        _save_table(table, path, describe,
                    {"computed": {"device": str(device), "world": ctx.world, "seconds": sw.seconds}})
        table = decode_table(encode_table(table))  # the same dtypes as a table read from the cache
        shutil.rmtree(parts, ignore_errors=True)
    table = broadcast_from_main(table)
    barrier()
    return table


# -- the kinds ---------------------------------------------------------------------------------------
def _per_model(models: dict, fn) -> pd.DataFrame:
    frames = [fn(m).assign(model=name) for name, m in models.items()]
    out = pd.concat(frames, ignore_index=True)
    return out[["model", *[c for c in out.columns if c != "model"]]]


@register("clean", "clean predictions of every model (evaluate.clean_table)")
def _clean(models, data, *, seed, batch_size):
    from .evaluate import clean_table
    return _per_model(models, lambda m: clean_table(m, data, batch_size=batch_size))


@register("attack", "one attack on every model (evaluate.evaluate_attack); params: attack, threat, its parameters")
def _attack(models, data, *, seed, batch_size, attack, threat=None, **params):
    from .evaluate import evaluate_attack
    t = threat_of(threat)
    return _per_model(models, lambda m: evaluate_attack(m, data, attack=attack, threat=t, batch_size=batch_size,
                                                         seed=seed, progress=False, **params))


@register("sweep", "attacks over a grid of ε (evaluate.sweep); params: attacks, norm, eps_grid")
def _sweep(models, data, *, seed, batch_size, attacks, norm, eps_grid):
    from .evaluate import sweep
    return sweep(models, data, attacks=attacks, norm=norm, eps_grid=eps_grid, batch_size=batch_size, seed=seed,
                 progress=False)


@register("noise", "Gaussian noise as an attack, mean over draws and worst of K (evaluate.noise_injection); "
                   "params: sigmas, draws")
def _noise(models, data, *, seed, batch_size, sigmas, draws):
    from .evaluate import noise_injection
    return _per_model(models, lambda m: noise_injection(m, data, sigmas=sigmas, draws=draws, batch_size=batch_size,
                                                        seed=seed, progress=False))


@register("matched_sweep", "a sweep (evaluate.sweep) whose ε grid adds, per noise level of the input `noise` "
                           "(kind noise, same examples), the noise's median norm over the whole subset: the "
                           "adversarial perturbation of the size of the random one; params: attacks, norm, eps_grid",
          whole_inputs=True)
def _matched_sweep(models, data, *, seed, batch_size, inputs, attacks, norm, eps_grid):
    from .evaluate import noise_summary, sweep
    medians = noise_summary(inputs["noise"])[f"median_{norm}"]
    grid = sorted(set(eps_grid) | {float(v) for v in medians})
    return sweep(models, data, attacks=attacks, norm=norm, eps_grid=grid, batch_size=batch_size, seed=seed,
                 progress=False)


@register("rho_adv", "the DeepFool paper's ρ_adv rows, DeepFool against FGSM at the ε that fools `fgsm_rate` "
                     "(evaluate.rho_adv_rows; one block: declare block ≥ the subset); params: deepfool, fgsm_rate")
def _rho_adv(models, data, *, seed, batch_size, deepfool, fgsm_rate):
    from .evaluate import rho_adv_rows
    return rho_adv_rows(models, data, deepfool_params=deepfool, fgsm_rate=fgsm_rate)


@register("transferred", "an attack crafted on the model `source` and scored on every other model (the transfer "
                         "attack, evaluate.evaluate_attack); params: source, source_attack, threat, output, "
                         "source_params")
def _transferred(models, data, *, seed, batch_size, source, source_attack, threat, output="logits",
                 source_params=None):
    from .evaluate import evaluate_attack
    check_choice(source, models, "source model")
    targets = {k: m for k, m in models.items() if k != source}
    return _per_model(targets, lambda m: evaluate_attack(
        m, data, attack="transfer", threat=threat_of(threat), surrogate=models[source], source_attack=source_attack,
        source_params=source_params or {}, output=output, batch_size=batch_size, seed=seed, progress=False))


@register("noise_vote", "a model behind Gaussian noise of std sigmas[model]: clean, one noisy draw and the majority "
                        "vote over `draws` draws, per example (defenses.majority_vote); params: sigmas, draws")
def _noise_vote(models, data, *, seed, batch_size, sigmas, draws):
    from .defenses import GaussianNoise, majority_vote
    from .models import predict
    x, y = data.images(), data.y

    def rows(name):
        m = models[name]
        noisy = GaussianNoise(m, sigmas[name], seed=seed)
        return pd.DataFrame({"example": data.indices.cpu().numpy(), "sigma": float(sigmas[name]),
                             "clean_correct": (predict(m, x) == y).cpu().numpy(),
                             "draw_correct": (predict(noisy, x) == y).cpu().numpy(),
                             "vote_correct": (majority_vote(noisy, x, draws)[0] == y).cpu().numpy()})
    missing = set(models) - set(sigmas)
    if missing:
        raise InputError(f"noise_vote needs a σ for every model; none for {sorted(missing)}")
    return _per_model({k: k for k in models}, rows)


@register("audit", "the gradient-masking audit (evaluate.gradient_masking_audit) of every model: one row per "
                   "check; the audit's accuracies are over the whole subset, so declare block ≥ the subset; "
                   "params: threat, steps, queries, draws")
def _audit(models, data, *, seed, batch_size, threat, steps, queries, draws):
    from .evaluate import gradient_masking_audit
    return _per_model(models, lambda m: gradient_masking_audit(m, data, threat_of(threat), steps=steps,
                                                               queries=queries, draws=draws, seed=seed,
                                                               batch_size=batch_size))


@register("minimal_norms", "minimum-norm attacks (evaluate.minimal_norms); params: attacks {label: [name, params]}")
def _minimal(models, data, *, seed, batch_size, attacks):
    from .evaluate import minimal_norms
    return minimal_norms(models, data, {k: (a, dict(p)) for k, (a, p) in attacks.items()}, progress=False)


@register("transfer", "attacks crafted on every model, scored on every model (evaluate.transfer_rows); "
                      "params: attack, threat, its parameters")
def _transfer(models, data, *, seed, batch_size, attack, threat, **params):
    from .evaluate import transfer_rows
    return transfer_rows(models, data, attack=attack, threat=threat_of(threat), batch_size=batch_size, seed=seed,
                         progress=False, **params)


@register("robust", "worst case over the evaluation ensemble (evaluate.robust_evaluation); params: threats, "
                    "steps, restarts, queries")
def _robust(models, data, *, seed, batch_size, threats, steps=100, restarts=1, queries=5000):
    from .evaluate import robust_evaluation
    return robust_evaluation(models, data, [threat_of(t) for t in threats], steps=steps, restarts=restarts,
                             queries=queries, batch_size=batch_size, seed=seed, progress=False)


@register("smoothing", "randomized-smoothing CERTIFY (certify.certify); params: sigma, n0, n, alpha, batch")
def _smoothing(models, data, *, seed, batch_size, sigma, n0, n, alpha, batch=1000):
    from .certify import certify
    x, y = data.images(), data.y

    def rows(m):
        gen = torch.Generator(device=x.device).manual_seed(seed)
        with Stopwatch(x.device) as sw:
            pred, radius = certify(m, x, sigma=sigma, n0=n0, n=n, alpha=alpha, batch_size=batch, generator=gen)
        return pd.DataFrame({"example": data.indices.cpu().numpy(), "label": y.cpu().numpy(),
                             "prediction": pred.cpu().numpy(), "radius": radius.cpu().numpy(),
                             "correct": (pred == y).cpu().numpy(), "seconds": sw.seconds / len(y)})
    return _per_model(models, rows)


@register("smoothadv", "SmoothAdv on the smoothed classifier, scored by PREDICT (certify.smoothadv, smoothed_predict); "
                       "params: sigma, radii, steps, draws, n, alpha, batch")
def _smoothadv(models, data, *, seed, batch_size, sigma, radii, steps, draws, n, alpha, batch=1000):
    from .certify import smoothadv, smoothed_predict
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
    return _per_model(models, rows)


@register("bounds", "IBP / CROWN certificates (certify.verify); params: threat, methods")
def _bounds(models, data, *, seed, batch_size, threat, methods=("ibp", "crown")):
    from .certify import verify
    t = threat_of(threat)
    return _per_model(models, lambda m: verify(m, data, t, methods=tuple(methods), batch_size=batch_size,
                                               progress=False))


@register("exact", "exact verification by MILP (certify.exact_verification) of the first `head` examples that "
                   "the inputs `certificates` (kind bounds) and `attacks` (kind robust) leave open; params: threat, "
                   "time_limit, head", takes_inputs=True)
def _exact(models, data, *, seed, batch_size, start, inputs, threat, time_limit, head):
    from .certify import exact_verification
    (name, model), = models.items()
    cert, att = inputs["certificates"], inputs["attacks"]
    certified = (cert["ibp"] | cert["crown"]).to_numpy()
    attacked = att["robust"].to_numpy()
    in_head = start + np.arange(len(data)) < head
    exact = np.full(len(data), None, dtype=object)
    exact[in_head & certified] = "robust"
    exact[in_head & ~attacked] = "not robust"
    seconds = np.full(len(data), np.nan)
    gap = np.flatnonzero(in_head & attacked & ~certified)
    if len(gap):
        idx = torch.as_tensor(gap, device=data.x.device)
        ex = exact_verification(model, data.images()[idx], data.y[idx], threat_of(threat), time_limit=time_limit,
                                progress=False)
        exact[gap] = ex["verdict"].to_numpy()
        seconds[gap] = ex["seconds"].to_numpy()
    return pd.DataFrame({"model": name, "example": data.indices.cpu().numpy(), "exact": exact,
                         "milp_seconds": seconds})


# -- plans -------------------------------------------------------------------------------------------
@dataclass
class Plan:
    """What a chapter computes for one configuration: models to train and tables to evaluate.

    The notebook asks the plan for its results (:meth:`result`), and ``advlab precompute`` walks
    the same plan (:meth:`precompute`), so the two cannot disagree about what is cached.
    """

    trainings: dict[str, TrainConfig] = field(default_factory=dict)
    evaluations: dict[str, Evaluation] = field(default_factory=dict)

    def records(self, group: str) -> dict[str, dict]:
        """The training records (config, metrics, history, time) of the planned trainings and
        denoisers named ``group + " " + name``, keyed by ``name``: read from the checkpoint cache
        (under ``ADVLAB_CACHED_ONLY=1`` a missing one is an error)."""
        return {n: (load_or_train_denoiser if isinstance(c, DenoiserConfig) else load_or_train)(c, progress=False)[1]
                for n, c in self._group(group).items()}

    def all_denoisers(self) -> dict[str, DenoiserConfig]:
        """The denoisers the evaluations put in front of their models (by key: each once)."""
        out = {}
        for ev in self.evaluations.values():
            for spec in ev.models.values():
                if isinstance(spec, ModelSpec) and spec.front is not None:
                    out.setdefault(spec.front.key, (f"denoiser {spec.front.depth}x{spec.front.width} on "
                                                    f"{spec.config.model}", spec.front))
        return dict(out.values())

    def result(self, name: str | Evaluation, device=None, progress: bool = True) -> pd.DataFrame:
        """The table of the planned evaluation ``name`` (or of ``name`` itself, an Evaluation that
        must be one of this plan's): from the cache, or computed and stored."""
        if isinstance(name, Evaluation):
            if name not in self.evaluations.values():
                raise InputError(f"this {name.kind} evaluation is not in the plan: declare it in the chapter's plan")
            return load_or_evaluate(name, device=device, progress=progress)
        check_choice(name, self.evaluations, "planned evaluation")
        return load_or_evaluate(self.evaluations[name], device=device, progress=progress)

    def _group(self, group: str) -> dict:
        out = {full[len(group) + 1:]: cfg for full, cfg in {**self.trainings, **self.all_denoisers()}.items()
               if full.startswith(group + " ")}
        if not out:
            raise InputError(f"no planned training in group {group!r}")
        return out

    def model_table(self, group: str) -> pd.DataFrame:
        """The planned trainings named ``group + " " + name``: architecture, data, epochs and
        parameter count, one row each by ``name`` (read from the checkpoint cache; under
        ``ADVLAB_CACHED_ONLY=1`` a missing one is an error)."""
        from .training import load_models
        return load_models({n: c for n, c in self._group(group).items() if isinstance(c, TrainConfig)},
                           progress=False)[1]

    def all_trainings(self) -> dict[str, TrainConfig]:
        """Every training, those the evaluations use included (by key: each model once)."""
        out = dict(self.trainings)
        for ename, ev in self.evaluations.items():
            for mname, spec in ev.models.items():
                out.setdefault(f"{ename}/{mname}", spec.config if isinstance(spec, ModelSpec) else spec)
        unique = {}
        for name, cfg in out.items():
            unique.setdefault(cfg.key, (name, cfg))
        return dict(unique.values())

    def smallest(self) -> int | None:
        """Examples of the smallest evaluation (the most processes the plan can use); None without any."""
        return min((len(ev.data.load()) for ev in self.evaluations.values()), default=None)

    def status(self, root=None) -> pd.DataFrame:
        """One row per training and evaluation: whether a file for it is in the cache (not yet
        verified: a corrupt one is found, reported and replaced when it is read)."""
        rows = [{"item": n, "what": f"train {c.model} ({c.method}) on {c.dataset}",
                 "cached": c.checkpoint_path(root).exists()} for n, c in self.all_trainings().items()]
        rows += [{"item": n, "what": f"train a {c.depth}-layer DnCNN on {c.classifier.model}'s {c.attack}",
                  "cached": c.checkpoint_path(root).exists()} for n, c in self.all_denoisers().items()]
        rows += [{"item": n, "what": f"{ev.kind} on {ev.data.dataset} ({len(ev.models)} model(s))",
                  "cached": ev.path(root).exists()} for n, ev in self.evaluations.items()]
        return pd.DataFrame(rows)

    def precompute(self, device=None, progress: bool = True) -> pd.DataFrame:
        """Train every model and compute every evaluation not yet cached; one row per item with
        ``was``, what happened here ("cached": read; "computed": its file was written by this run,
        a corrupt or foreign one replaced included), and the wall time spent on it."""
        table = self.status()
        paths = [c.checkpoint_path() for c in self.all_trainings().values()] + \
                [c.checkpoint_path() for c in self.all_denoisers().values()] + \
                [ev.path() for ev in self.evaluations.values()]
        before = [_stamp(p) for p in paths]
        seconds = []
        for cfg in self.all_trainings().values():
            with Stopwatch(device or "cpu") as sw:
                load_or_train(cfg, device=device, progress=progress)
            seconds.append(sw.seconds)
        for cfg in self.all_denoisers().values():
            with Stopwatch(device or "cpu") as sw:
                load_or_train_denoiser(cfg, device=device, progress=progress)
            seconds.append(sw.seconds)
        for ev in self.evaluations.values():
            with Stopwatch(device or "cpu") as sw:
                load_or_evaluate(ev, device=device, progress=progress)
            seconds.append(sw.seconds)
        was = ["cached" if b is not None and b == _stamp(p) else "computed" for p, b in zip(paths, before)]
        return table.assign(was=was, seconds=seconds)
