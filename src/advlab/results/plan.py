"""A chapter's plan: the trainings and evaluations it needs for one configuration. The notebook reads its
results through the plan and ``advlab precompute`` walks the same plan, so the two cannot disagree
about what is cached."""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from ..checks import check_choice
from ..errors import InputError
from ..store import stamp
from ..timing import Stopwatch
from ..training import TrainConfig, load_models, load_or_train
from ..training.denoiser import DenoiserConfig, load_or_train_denoiser
from .engine import load_or_evaluate
from .spec import Evaluation, ModelSpec, requirements, source_of

def label(name: str | tuple) -> str:
    """An evaluation's name as a line shows it: ``("report", "FGSM", "linf", 0.03)`` -> 'report FGSM linf 0.03'."""
    return " ".join(f"{p:g}" if isinstance(p, float) else str(p) for p in name) if isinstance(name, tuple) else name


@dataclass
class Plan:
    """What a chapter computes for one configuration: models to train and tables to evaluate.

    The notebook asks the plan for its results (:meth:`result`), and ``advlab precompute`` walks
    the same plan (:meth:`precompute`), so the two cannot disagree about what is cached.
    """

    trainings: dict[str, TrainConfig] = field(default_factory=dict)
    #: by name: a string, or ``(group, *key)`` for a family of evaluations read together (:meth:`tables`)
    evaluations: dict[str | tuple, Evaluation] = field(default_factory=dict)

    def __post_init__(self):
        self.check()

    def check(self) -> None:
        """Every model source's own check (a reader's file loaded and probed), once per source, before any work."""
        seen = set()
        for ev in self.evaluations.values():
            for spec in ev.models.values():
                source = source_of(spec.source if isinstance(spec, ModelSpec) else spec)
                if source.key not in seen:
                    seen.add(source.key)
                    source.check()

    def records(self, group: str) -> dict[str, dict]:
        """The training records (config, metrics, history, time) of the planned trainings and
        denoisers named ``group + " " + name``, keyed by ``name``: read from the checkpoint cache
        (under ``ADVLAB_CACHED_ONLY=1`` a missing one is an error)."""
        return {n: (load_or_train_denoiser if isinstance(c, DenoiserConfig) else load_or_train)(c, progress=False)[1]
                for n, c in self._group(group).items()}

    def all_denoisers(self) -> dict[str, DenoiserConfig]:
        """The denoisers the evaluations' models require (by key: each once)."""
        out = {}
        for ev in self.evaluations.values():
            for spec in ev.models.values():
                for need in requirements(spec):
                    if isinstance(need, DenoiserConfig):
                        out.setdefault(need.key, (f"denoiser {need.depth}x{need.width} on {need.classifier.model}",
                                                  need))
        return dict(out.values())

    def result(self, name: str | tuple | Evaluation, device=None, progress: bool = True) -> pd.DataFrame:
        """The table of the planned evaluation ``name`` (or of ``name`` itself, an Evaluation that
        must be one of this plan's): from the cache, or computed and stored."""
        if isinstance(name, Evaluation):
            if name not in self.evaluations.values():
                raise InputError(f"this {name.kind} evaluation is not in the plan: declare it in the chapter's plan")
            return load_or_evaluate(name, device=device, progress=progress)
        if name not in self.evaluations:
            check_choice(label(name), [label(n) for n in self.evaluations], "planned evaluation")
        return load_or_evaluate(self.evaluations[name], device=device, progress=progress)

    def data(self, name: str | tuple, device=None):
        """The examples (a :class:`~advlab.data.Dataset`) of the planned evaluation ``name``: what a page
        draws beside its tables (the images of an example grid) comes from the same subset."""
        if name not in self.evaluations:
            check_choice(label(name), [label(n) for n in self.evaluations], "planned evaluation")
        return self.evaluations[name].data.load(device)

    def group(self, group: str) -> dict:
        """The planned evaluations named ``(group, *key)``, by ``key`` (its one value, or the tuple of them)."""
        found = {(n[1] if len(n) == 2 else n[1:]): ev for n, ev in self.evaluations.items()
                 if isinstance(n, tuple) and n[0] == group}
        if not found:
            groups = sorted({n[0] for n in self.evaluations if isinstance(n, tuple)})
            raise InputError(f"no planned evaluations in group {group!r}; groups: {', '.join(groups) or 'none'}")
        return found

    def tables(self, group: str, device=None, progress: bool = True) -> dict:
        """The tables of a family of evaluations, declared in the plan under names ``(group, *key)``
        (e.g. ``("report", label, norm, eps)``), by ``key``: a notebook reads them without writing a name."""
        return {k: load_or_evaluate(ev, device=device, progress=progress) for k, ev in self.group(group).items()}

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
        return load_models({n: c for n, c in self._group(group).items() if isinstance(c, TrainConfig)},
                           progress=False)[1]

    def all_trainings(self) -> dict[str, TrainConfig]:
        """Every training, those the evaluations use included (by key: each model once)."""
        out = dict(self.trainings)
        for ename, ev in self.evaluations.items():
            for mname, spec in ev.models.items():
                for need in requirements(spec):  # what the plan trains first, whatever the source
                    if isinstance(need, TrainConfig):
                        out.setdefault(f"{ename}/{mname}", need)
        unique = {}
        for name, cfg in out.items():
            unique.setdefault(cfg.key, (name, cfg))
        return dict(unique.values())

    def smallest(self) -> int | None:
        """Examples of the smallest evaluation (the most processes the plan can use); None without any."""
        return min((len(ev.data.load()) for ev in self.evaluations.values()), default=None)

    def status(self, cache_root=None) -> pd.DataFrame:
        """One row per training and evaluation: whether a file for it is in the cache (not yet
        verified: a corrupt one is found, reported and replaced when it is read)."""
        rows = [{"item": n, "what": f"train {c.model} ({c.method}) on {c.dataset}",
                 "cached": c.checkpoint_path(cache_root).exists()} for n, c in self.all_trainings().items()]
        rows += [{"item": n, "what": f"train a {c.depth}-layer DnCNN on {c.classifier.model}'s {c.attack}",
                  "cached": c.checkpoint_path(cache_root).exists()} for n, c in self.all_denoisers().items()]
        rows += [{"item": label(n), "what": f"{ev.kind} on {ev.data.dataset} ({len(ev.models)} model(s))",
                  "cached": ev.path(cache_root).exists()} for n, ev in self.evaluations.items()]
        return pd.DataFrame(rows)

    def precompute(self, device=None, progress: bool = True) -> pd.DataFrame:
        """Train every model and compute every evaluation not yet cached; one row per item with
        ``was``, what happened here ("cached": read; "computed": its file was written by this run,
        a corrupt or foreign one replaced included), and the wall time spent on it."""
        table = self.status()
        paths = [c.checkpoint_path() for c in self.all_trainings().values()] + \
                [c.checkpoint_path() for c in self.all_denoisers().values()] + \
                [ev.path() for ev in self.evaluations.values()]
        before = [stamp(p) for p in paths]
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
        was = ["cached" if b is not None and b == stamp(p) else "computed" for p, b in zip(paths, before)]
        return table.assign(was=was, seconds=seconds)

