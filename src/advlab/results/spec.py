"""Declarations: a data subset (:class:`DataSpec`), where a model comes from (:class:`ModelSource`: a
trained configuration, a reader's file, seeded random weights), a model recipe (:class:`ModelSpec`), the registry of
evaluation kinds, and :class:`Evaluation`, a declared per-example table whose key names everything
that determines it (kind, parameters, models, data, seed, block, precision, inputs, library version
and the source of the kernels)."""
from __future__ import annotations

import dataclasses
import difflib
import functools
import hashlib
import inspect
import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import pandas as pd
import torch

from .. import __version__, source
from ..cache import cache_root as resolve_cache_root
from ..cache import config_key
from ..checks import check_choice
from ..data import Dataset, dataset_spec, load_dataset
from ..defenses import EOT, BitDepthReduction, Denoised, GaussianNoise, bpda
from ..errors import InputError
from ..models import build_model, external, model_options
from ..precision import PRECISIONS
from ..threat import ThreatModel
from ..training import TrainConfig, load_or_train
from ..training.denoiser import DenoiserConfig, load_or_train_denoiser

#: The format of result tables, part of every key: bumped when old tables would mean something else.
RESULT_FORMAT = 1
TIMING = ("seconds",)  # columns that measure wall time: they vary between runs, all else must not


def timing_columns(df: pd.DataFrame) -> list[str]:
    """The columns of a result table that hold wall times (they differ between runs, so no digest covers them)."""
    return [c for c in df.columns if c in TIMING or c.endswith("_seconds")]


def block_seed(seed: int, block: int) -> int:
    """The seed of block ``block``'s random stream: a hash of (seed, block), so neighbouring seeds and
    blocks give unrelated streams."""
    digest = hashlib.sha256(f"advlab-block:{seed}:{block}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


# -- what the kernels are ----------------------------------------------------------------------------
#: The package whose modules are the evaluation kinds: a table is keyed by its own kind's module.
KINDS_PACKAGE = "advlab.results.kinds"


def kernel_hash(kind: str) -> str:
    """Hash of the code a table of evaluation kind ``kind`` can run (syntax trees, so comments do not
    count): the engine and the kind's own module, with what they import followed by name
    (``advlab.source.needed``), so an edit recomputes exactly the tables it can change: the MILP's
    module keys the MILP's tables, not the attacks'."""
    return _kernel_hash(EVALUATION_KINDS[kind].fn.__module__)


@functools.cache
def _kernel_hash(module: str) -> str:
    package = source.PACKAGE  # read at call time: a test points it at an edited copy
    files = source.needed(["advlab.results.engine", module], package, keyed=[KINDS_PACKAGE])
    if module.split(".")[0] != "advlab":  # a kind registered from outside the package: its own file too
        files.append(Path(inspect.getsourcefile(sys.modules[module])))
    return source.code_hash(files, package)


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
        """The subset itself: the split loaded and the seeded subset (and sub-subset) drawn."""
        data = load_dataset(self.dataset, self.split, device=device)
        data = data.subset(self.n, seed=self.seed, stratified=self.stratified)
        if self.sub is not None:  # a study on part of the chapter's subset (drawn the same way)
            data = data.subset(self.sub, seed=self.seed, stratified=self.stratified)
        return data

    def within(self, sub: int) -> "DataSpec":
        """``sub`` examples of this subset (the few-pixel and HopSkipJump studies' examples)."""
        return dataclasses.replace(self, sub=sub)


# -- models: where a network comes from, and the wrappers in front of it -------------------------------
@runtime_checkable
class ModelSource(Protocol):
    """Where an evaluation's network comes from: a trained configuration (:class:`Trained`, what a
    :class:`~advlab.training.TrainConfig` stands for), a reader's file (:class:`ModelFile`), seeded
    untrained weights (:class:`RandomNet`) or a trained denoiser in front of its classifier
    (:class:`DenoisedModel`). The engine and the plan ask these, never the class:

    - ``key``: what the network is, in every result's key;
    - ``dataset``: the dataset it classifies;
    - ``requires()``: what must be trained first (the plan trains it, ``advlab precompute`` too);
    - ``check()``: every check that needs the network itself (loading, probing), which the plan calls
      once, before any work; declaring a source stays cheap;
    - ``build(device, cache_root, progress)``: the network, in eval mode, on ``device``.

    A new source is a class with these five; :class:`ModelSpec` puts wrappers in front of any of them.
    """

    @property
    def key(self) -> str:
        """What the network is: part of every result's key."""

    @property
    def dataset(self) -> str:
        """The dataset the network classifies."""

    def requires(self) -> tuple:
        """The configurations to train before :meth:`build` (TrainConfigs, DenoiserConfigs); () for none."""

    def check(self) -> None:
        """Every check that needs the network itself; raises :class:`~advlab.errors.InputError` on a bad one."""

    def build(self, device, cache_root=None, progress: bool = True) -> torch.nn.Module:
        """The network in eval mode on ``device`` (trained first if a requirement is not cached)."""


@dataclass(frozen=True)
class Trained:
    """A :class:`~advlab.training.TrainConfig` as a :class:`ModelSource`: trained when built, or loaded
    from the checkpoint cache. Evaluations take the TrainConfig itself; :func:`source_of` wraps it."""

    config: TrainConfig

    @property
    def key(self) -> str:
        """The checkpoint's key."""
        return self.config.key

    @property
    def dataset(self) -> str:
        """The dataset the model is trained on."""
        return self.config.dataset

    def requires(self) -> tuple:
        """The training itself."""
        return (self.config,)

    def check(self) -> None:
        """Nothing to load: a TrainConfig is checked when it is made."""

    def build(self, device, cache_root=None, progress: bool = True) -> torch.nn.Module:
        """The trained model (eval mode), trained now only if no valid checkpoint exists."""
        return load_or_train(self.config, device=device, cache_root=cache_root, progress=progress)[0]


@dataclass(frozen=True)
class DenoisedModel:
    """A :class:`~advlab.training.DenoiserConfig`'s DnCNN in front of the classifier it was trained
    on, as a :class:`ModelSource`: both are trained when built (or loaded from the cache)."""

    denoiser: DenoiserConfig

    def __post_init__(self):
        if not isinstance(self.denoiser, DenoiserConfig):
            raise InputError(f"DenoisedModel takes a DenoiserConfig, got {type(self.denoiser).__name__}")

    @property
    def key(self) -> str:
        """The denoiser's key (which holds its classifier's)."""
        return config_key({"denoised": self.denoiser.key})

    @property
    def dataset(self) -> str:
        """The classifier's dataset."""
        return self.denoiser.classifier.dataset

    def requires(self) -> tuple:
        """The classifier, then the denoiser trained on its adversarial examples."""
        return (self.denoiser.classifier, self.denoiser)

    def check(self) -> None:
        """Nothing to load: the configurations are checked when they are made."""

    def build(self, device, cache_root=None, progress: bool = True) -> torch.nn.Module:
        """The pipeline denoiser → classifier (eval mode), each trained now only if not cached."""
        front = load_or_train_denoiser(self.denoiser, device=device, cache_root=cache_root, progress=progress)[0]
        model = load_or_train(self.denoiser.classifier, device=device, cache_root=cache_root, progress=progress)[0]
        return Denoised(front, model).eval()


def source_of(model) -> ModelSource:
    """``model`` as a :class:`ModelSource` (a TrainConfig becomes :class:`Trained`), or an error naming what
    an evaluation takes."""
    if isinstance(model, TrainConfig):
        return Trained(model)
    if isinstance(model, ModelSource) and not isinstance(model, (str, ModelSpec)):
        return model
    raise InputError(f"a model is a TrainConfig, a ModelSpec or a model source (ModelFile, RandomNet, or a class "
                     f"with key, dataset, requires, check and build), got {type(model).__name__}")


def requirements(model) -> tuple:
    """What must be trained before ``model`` (a source or a :class:`ModelSpec`) can be built."""
    return source_of(model.source if isinstance(model, ModelSpec) else model).requires()


def _wrapper_fns() -> dict:
    return {"bits": lambda m, bits: BitDepthReduction(m, bits=bits),
            "bpda": lambda m: bpda(m),
            "noise": lambda m, sigma, clip=False: GaussianNoise(m, sigma, clip=clip),
            "eot": lambda m, draws: EOT(m, draws)}


#: The wrappers a :class:`ModelSpec` declares in front of a model, by name, with what each does.
WRAPPERS = {"bits": "input bit-depth reduction (feature squeezing) to `bits` bits",
            "bpda": "BPDA: the wrapped model's input transforms differentiated as the identity",
            "noise": "Gaussian noise of std `sigma` added to the input on every forward pass (reseeded per block)",
            "eot": "Expectation over Transformation: mean class probabilities over `draws` forward passes"}


@dataclass(frozen=True)
class ModelSpec:
    """A model from any source (a :class:`~advlab.training.TrainConfig`, a :class:`ModelFile`, a
    :class:`RandomNet`, a :class:`DenoisedModel`, any :class:`ModelSource`) with declared wrappers in
    front of it: ``wrappers``
    is a sequence of ``[name, {params}]`` applied innermost first (e.g. ``[["noise", {"sigma": 0.1}],
    ["eot", {"draws": 8}]]``).

    It is what an :class:`Evaluation` runs when the model is not the bare network: its key is the
    source's key and the wrappers, so the table is cached like any other.
    """

    source: object
    wrappers: tuple = ()

    def __post_init__(self):
        if isinstance(self.source, ModelSpec):
            raise InputError("ModelSpec.source is the bare model: put every wrapper in one ModelSpec")
        source_of(self.source)  # a TrainConfig or a model source, else an error naming them
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
        """The dataset the model classifies."""
        return self.source.dataset

    @property
    def key(self) -> str:
        """The recipe's key: the source's and its wrappers in order."""
        return config_key({"model": self.source.key, "wrappers": [[n, p] for n, p in self.wrappers]})

    def build(self, model, check_only: bool = False):
        """``model`` (the source's network) with the wrappers applied; ``check_only`` validates the
        wrappers' parameters on a stand-in."""
        fns = _wrapper_fns()
        m = torch.nn.Identity() if check_only else model
        for name, params in self.wrappers:
            try:
                m = fns[name](m, **params)
            except TypeError as e:
                raise InputError(f"wrapper {name!r}: {e}") from None
        return None if check_only else m


@dataclass(frozen=True)
class RandomNet:
    """An untrained network with seeded random weights: what the cost of a certificate is timed on
    (random weights leave most ReLUs unstable, CROWN's worst case). No training, so no checkpoint."""

    model: str
    dataset: str
    options: Mapping = field(default_factory=dict)
    seed: int = 0

    def __post_init__(self):
        dataset_spec(self.dataset)
        unknown = set(self.options) - set(model_options(self.model))
        if unknown:
            raise InputError(f"unknown option(s) {sorted(unknown)} for model {self.model!r}")
        object.__setattr__(self, "options", dict(self.options))

    def __hash__(self):
        return hash(self.key)

    @property
    def key(self) -> str:
        """The net's key: architecture, dataset, options and seed."""
        return config_key({"random": self.model, "dataset": self.dataset, "options": self.options, "seed": self.seed})

    def requires(self) -> tuple:
        """Nothing: the weights are the seed's."""
        return ()

    def check(self) -> None:
        """Nothing beyond the declaration's checks."""

    def build(self, device, cache_root=None, progress: bool = True) -> torch.nn.Module:
        """The seeded untrained network on ``device`` (eval mode); the caller's RNG is left as it was."""
        with torch.random.fork_rng():  # seeded weights, the caller's RNG untouched
            torch.manual_seed(self.seed)
            net = build_model(self.model, self.dataset, **self.options).eval()
        return net.to(device)


@dataclass(frozen=True)
class ModelFile:
    """A model the reader brings (``advlab.models.external``), as a :class:`ModelSource`: ``path`` to its
    weights or TorchScript file, how to build it (``architecture``, ``options``), and ``normalization``
    ``(mean, std)`` if it expects normalised inputs.

    Declaring it is cheap (the file's digest, the fields checked); :meth:`check`, which the plan calls
    once, loads it on the CPU and probes it, so a file that does not load, does not match its
    architecture, or does not classify ``dataset``'s images is an error before any long work, and
    :attr:`randomized` says whether it answers an input differently from call to call in eval mode
    (then declare it behind the ``eot`` wrapper: ``ModelSpec(file, [["eot", {"draws": 8}]])``).

    Its key is the file's sha256 (not its path), the architecture (with the sha256 of the source file
    that defines a ``module:function``), the options and the normalisation: a changed file
    recomputes, an unchanged one renders from the cache.
    """

    path: str
    dataset: str
    architecture: str = external.TORCHSCRIPT
    options: Mapping = field(default_factory=dict)
    normalization: tuple | None = None
    sha256: str = field(init=False, default="")
    source_sha256: str | None = field(init=False, default=None)
    _probe: dict = field(init=False, default_factory=dict, repr=False, compare=False, hash=False)

    def __post_init__(self):
        dataset_spec(self.dataset)
        external.check_architecture(self.architecture)
        object.__setattr__(self, "options", external.json_options(self.options))
        if self.normalization is not None:
            object.__setattr__(self, "normalization", tuple(tuple(float(v) for v in part)
                                                            for part in self.normalization))
        path = Path(self.path).expanduser().resolve()
        if not path.is_file():
            raise InputError(f"model file {path} does not exist (or is not a file)")
        object.__setattr__(self, "path", str(path))
        object.__setattr__(self, "sha256", external.file_sha256(path))
        object.__setattr__(self, "source_sha256", external.architecture_digest(self.architecture))

    def __hash__(self):
        return hash(self.key)

    @property
    def key(self) -> str:
        """The model's key: the file's sha256 (not its path), architecture, options, dataset and normalisation."""
        return config_key({"file": self.sha256, "architecture": self.architecture, "source": self.source_sha256,
                           "options": self.options, "dataset": self.dataset, "normalization": self.normalization})

    def requires(self) -> tuple:
        """Nothing to train: the file is the model."""
        return ()

    def check(self) -> None:
        """Load the file on the CPU and probe it (once): every error a bad file or architecture gives."""
        if self._probe:
            return
        net = self._load("cpu")
        probe = torch.rand((16, *dataset_spec(self.dataset).shape), generator=torch.Generator().manual_seed(0))
        self._probe["randomized"] = external.is_randomized(net, probe)

    @property
    def randomized(self) -> bool:
        """Whether the model answers the same input differently from call to call in eval mode (checked once)."""
        self.check()
        return self._probe["randomized"]

    def _load(self, device):
        return external.load_model_file(self.path, self.dataset, self.architecture, self.options,
                                        self.normalization, device=device)

    def build(self, device, cache_root=None, progress: bool = True) -> torch.nn.Module:
        """The model on ``device``; the file must still hash the same."""
        if external.file_sha256(self.path) != self.sha256:
            raise InputError(f"{self.path} changed since it was declared: declare the model again")
        return self._load(device)


def threat_of(spec) -> ThreatModel | None:
    """A threat model from its JSON form ``[norm, eps]``, or ``[norm, eps, [s_1, ..., s_C]]`` with
    per-channel units (``ThreatModel.scale``); None stays None."""
    if spec is None or isinstance(spec, ThreatModel):
        return spec
    if not (isinstance(spec, (list, tuple)) and len(spec) in (2, 3)):
        raise InputError(f"a threat model is written [norm, eps] or [norm, eps, per-channel scale], got {spec!r}")
    return ThreatModel(*spec)


REQUIRED = inspect.Parameter.empty  # a kind parameter without a default
_GIVEN_BY_THE_ENGINE = ("models", "data", "seed", "batch_size", "start", "inputs")


@dataclass(frozen=True)
class Kind:
    """A registered evaluation: ``fn(models, data, seed=, batch_size=, **params)`` returns per-example
    rows for one block of examples. A kind with inputs also receives ``inputs`` (each input's rows
    for the block's examples) and ``start`` (the block's first position in the subset).

    Its contract, checked when an :class:`Evaluation` is declared: the parameters of ``fn``'s
    signature (:meth:`resolve`: unknown names refused with the valid ones, required ones demanded,
    defaults written into the declaration so the key names every option), ``check`` for the names a
    ``**params`` kind passes on (an attack's own), ``whole_subset`` (one block must hold the whole
    subset: the kind computes a statistic over all its examples) and the ``precisions`` it accepts.
    """

    name: str
    fn: Callable
    doc: str
    takes_inputs: bool = False
    whole_inputs: bool = False  # the inputs' whole tables (a statistic over all examples), not the block's rows
    whole_subset: bool = False
    precisions: tuple = PRECISIONS
    check: Callable[[dict, set], None] | None = None  # (params, the names fn does not declare) -> raise or None

    def parameters(self) -> dict:
        """``{name: default}`` of the parameters a declaration gives (``REQUIRED`` where there is none)."""
        sig = inspect.signature(self.fn).parameters
        return {k: p.default for k, p in sig.items()
                if k not in _GIVEN_BY_THE_ENGINE and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}

    def resolve(self, params: Mapping) -> dict:
        """``params`` checked against the contract, with every declared default filled in."""
        declared = self.parameters()
        extra = set(params) - set(declared)
        open_ended = any(p.kind is p.VAR_KEYWORD for p in inspect.signature(self.fn).parameters.values())
        if extra and not open_ended:
            near = sorted({m for u in extra for m in difflib.get_close_matches(u, declared, n=2)})
            hint = f" (did you mean {', '.join(near)}?)" if near else ""
            raise InputError(f"unknown parameter(s) {sorted(extra)} for evaluation kind {self.name!r}{hint}; "
                             f"valid: {sorted(declared)}")
        missing = sorted(k for k, d in declared.items() if d is REQUIRED and k not in params)
        if missing:
            raise InputError(f"evaluation kind {self.name!r} needs parameter(s) {missing}; it takes {sorted(declared)}")
        if extra and self.check is not None:
            self.check(dict(params), extra)
        filled = {**{k: d for k, d in declared.items() if d is not REQUIRED}, **params}
        try:  # JSON values only, in their JSON form (a tuple default is the list the table's record keeps)
            return json.loads(json.dumps(filled, allow_nan=False))
        except (TypeError, ValueError) as e:
            raise InputError(f"evaluation parameters must be JSON values (threats as [norm, eps]): {e}") from None


#: The registered evaluation kinds by name (one module per family under ``results/kinds``).
EVALUATION_KINDS: dict[str, Kind] = {}


def register_kind(name: str, doc: str, takes_inputs: bool = False, whole_inputs: bool = False,
                  whole_subset: bool = False, precisions: tuple = PRECISIONS, check: Callable | None = None):
    """Decorator: register ``fn(models, data, seed=, batch_size=, **params)`` as evaluation kind ``name``
    (:class:`Kind`, whose fields say what the other arguments declare); ``takes_inputs`` gives it the rows
    of its input evaluations, ``whole_inputs`` their whole tables."""
    def deco(fn):
        for p in precisions:
            check_choice(p, PRECISIONS, "precision")
        EVALUATION_KINDS[name] = Kind(name, fn, doc, takes_inputs or whole_inputs, whole_inputs, whole_subset,
                                      tuple(precisions), check)
        return fn
    return deco


def subset_size(data: DataSpec) -> int:
    """How many examples ``data`` holds (its split's size when it takes all)."""
    n = dataset_spec(data.dataset).sha256[data.split][2] if data.n is None else data.n
    return min(n, data.sub) if data.sub is not None else n


@dataclass(frozen=True)
class Evaluation:
    """A per-example table, declared: ``kind`` with ``params`` on ``models`` over ``data``.

    ``params`` must be JSON-able (threat models as ``[norm, eps]``). ``block`` is the unit of
    sharding and of the random streams, and the attack batch size; ``precision`` "bf16" runs the
    models under bf16 autocast and "tf32" lets GPU products round to TF32 (speed options); "fp32",
    the default, is IEEE float32 on every device (``advlab.precision``). ``inputs`` names
    other evaluations on the same examples whose tables this one reads (e.g. the MILP decides only
    what the certificates and attacks left open); they are computed first. ``cuda_graphs`` replays
    the attacks' fixed-shape steps as CUDA graphs on a GPU (``advlab.attacks.graphs``; no effect on
    a CPU): a declared option, so the key says which way a table was computed.

    The kind's contract (:class:`Kind`) is checked here, before any work: its parameters (the
    defaults filled in, so the key names every option), a block that holds the whole subset for a
    kind that needs it, and the precisions it accepts.
    """

    kind: str
    models: Mapping[str, TrainConfig | ModelSpec | ModelSource]
    data: DataSpec
    params: Mapping = field(default_factory=dict)
    seed: int = 0
    block: int = 256
    precision: str = "fp32"
    inputs: Mapping[str, "Evaluation"] = field(default_factory=dict)
    cuda_graphs: bool = False

    def __post_init__(self):
        check_choice(self.kind, EVALUATION_KINDS, "evaluation kind")
        kind = EVALUATION_KINDS[self.kind]
        check_choice(self.precision, PRECISIONS, "precision")
        if self.precision not in kind.precisions:
            raise InputError(f"evaluation kind {self.kind!r} accepts precision {' or '.join(kind.precisions)} only, "
                             f"got {self.precision!r}: a certificate computed in lower precision can be unsound")
        if not isinstance(self.cuda_graphs, bool):
            raise InputError(f"cuda_graphs must be True or False, got {self.cuda_graphs!r}")
        if not self.models:
            raise InputError("an evaluation needs a mapping of names to models (TrainConfigs, ModelSpecs or model "
                             "sources)")
        for c in self.models.values():
            if not isinstance(c, ModelSpec):
                source_of(c)  # a TrainConfig or a model source, else an error naming them
        if len({c.dataset for c in self.models.values()} | {self.data.dataset}) > 1:
            raise InputError(f"an evaluation's models must be trained on its dataset {self.data.dataset!r}")
        if not isinstance(self.block, int) or self.block < 1:
            raise InputError(f"block must be a positive int, got {self.block!r}")
        if kind.whole_subset and self.block < subset_size(self.data):
            raise InputError(f"evaluation kind {self.kind!r} computes over its whole subset at once: declare block >= "
                             f"{subset_size(self.data)} (the subset's size), got {self.block}")
        params = kind.resolve(dict(self.params))
        takes = kind.takes_inputs
        if bool(self.inputs) != takes:
            raise InputError(f"evaluation kind {self.kind!r} takes {'inputs' if takes else 'no inputs'}")
        for name, dep in self.inputs.items():
            if not isinstance(dep, Evaluation) or dep.data != self.data:
                raise InputError(f"input {name!r} must be an Evaluation of the same examples ({self.data})")
        object.__setattr__(self, "models", dict(self.models))
        object.__setattr__(self, "params", params)
        object.__setattr__(self, "inputs", dict(self.inputs))

    def __hash__(self):
        return hash(self.key)

    def describe(self) -> dict:
        """The full configuration the key hashes (self-description stored with the table)."""
        return {"format": RESULT_FORMAT, "kind": self.kind, "models": {k: c.key for k, c in self.models.items()},
                "data": dataclasses.asdict(self.data), "params": self.params, "seed": self.seed,
                "block": self.block, "precision": self.precision, "inputs": {k: e.key for k, e in self.inputs.items()},
                "cuda_graphs": self.cuda_graphs, "advlab": __version__, "kernels": kernel_hash(self.kind)}

    @property
    def key(self) -> str:
        """The result table's key: a hash of everything that decides its numbers (:meth:`describe`)."""
        return config_key(self.describe(), length=16)

    def path(self, cache_root=None) -> Path:
        """Where the table lives: ``<cache>/results/<kind>-<dataset>-<key>.pt``."""
        return resolve_cache_root(cache_root) / "results" / f"{self.kind}-{self.data.dataset}-{self.key}.pt"

    def blocks(self, n: int) -> list[range]:
        """The fixed blocks of ``block`` examples that ``n`` examples are computed in (each with its own random
        stream)."""
        return [range(i, min(i + self.block, n)) for i in range(0, n, self.block)]




def per_model(models: dict, fn) -> pd.DataFrame:
    """``fn(model)`` for every model, one table with a leading ``model`` column."""
    frames = [fn(m).assign(model=name) for name, m in models.items()]
    out = pd.concat(frames, ignore_index=True)
    return out[["model", *[c for c in out.columns if c != "model"]]]
