"""The book's chapters: one module per chapter (schema, profiles, plan, compositions), found here.

Every module of this package that defines ``CHAPTER`` is a chapter; ``CHAPTER.position`` orders
the book. Adding a chapter therefore touches no shared file, and no other chapter re-executes.
smoke: CI, under a minute per chapter on 2 CPU cores. quick: the CPU default of ``make book``.
paper: the papers' scale (full test sets), meant for a GPU. ``_toc.yml`` is generated from this
registry (a test checks it), and the CI page check reads the titles from here.
"""
from __future__ import annotations

import ast
import functools
import importlib
import pkgutil
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..config import Chapter, Config
from ..errors import InputError


def _discover() -> dict[str, Chapter]:
    found = [getattr(importlib.import_module(f"{__name__}.{m.name}"), "CHAPTER", None)
             for m in pkgutil.iter_modules(__path__)]
    found = sorted((c for c in found if isinstance(c, Chapter)), key=lambda c: c.position)
    positions = [c.position for c in found]
    if len(set(positions)) != len(positions):
        raise InputError(f"two chapters share a position: {[(c.name, c.position) for c in found]}")
    return {c.name: c for c in found}


_registry = functools.cache(_discover)


def __getattr__(name: str):
    # CHAPTERS imports every chapter module (and with them torch): only when first asked for
    if name == "CHAPTERS":
        return _registry()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def chapter_names() -> list[str]:
    """The chapters' names in the book's order, read from their modules' source without importing
    them (the command line's help needs them; importing the chapters imports torch)."""
    found = []
    for f in Path(__path__[0]).glob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if (isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "CHAPTER" for t in node.targets)
                    and isinstance(node.value, ast.Call)):
                kw = {k.arg: k.value for k in node.value.keywords}
                found.append((ast.literal_eval(kw["position"]), ast.literal_eval(kw["name"])))
    return [name for _, name in sorted(found)]


# Names IPython puts in a notebook's globals that are not parameters.
_IPYTHON_NAMES = {"In", "Out", "exit", "quit", "get_ipython"}


def get_chapter(name: str) -> Chapter:
    from ..checks import check_choice  # torch comes with it

    chapters = _registry()
    check_choice(name, chapters, "chapter")
    return chapters[name]


def chapter_plan(chapter: str, cfg: Config):
    """The chapter's :class:`~advlab.results.Plan` for ``cfg``: the function ``plan`` of its module,
    which its notebook calls too."""
    ch = get_chapter(chapter)
    module = importlib.import_module(f"{__name__}.{ch.notebook.removesuffix('.py')}")
    if not callable(getattr(module, "plan", None)):
        raise InputError(f"chapter {chapter!r} declares no plan (a function plan(cfg) in {module.__name__})")
    return module.plan(cfg)


def book_models(profile: str, shared: Mapping[str, Any], dataset: str) -> dict:
    """The book's trained models a reader may name ``CHAPTER/NAME``: every chapter module's
    ``reader_models(cfg)``, its configuration resolved at ``profile`` with the ``shared`` values it takes
    as parameters (seed, epochs, data sizes), kept where they classify ``dataset``. Found through the
    registry, so no chapter imports another."""
    found = {}
    for ch in _registry().values():
        module = importlib.import_module(f"{__name__}.{ch.notebook.removesuffix('.py')}")
        if callable(getattr(module, "reader_models", None)):
            cfg = ch.resolve(profile, {k: v for k, v in shared.items() if k in ch.params})
            found.update({f"{ch.name}/{k}": c for k, c in module.reader_models(cfg).items()})
    return {k: c for k, c in found.items() if c.dataset == dataset}


def chapter_config(chapter: str, namespace: Mapping[str, Any]) -> Config:
    """Validate a notebook's parameters (its ``globals()``) for ``chapter``.

    Every plain value defined so far must be ``profile`` or a parameter of the chapter; modules,
    functions, classes and underscore names are ignored.
    """
    ch = get_chapter(chapter)
    plain = {k: v for k, v in namespace.items()
             if not k.startswith("_") and k not in _IPYTHON_NAMES
             and not isinstance(v, (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, type))
             and not callable(v)}
    if "profile" not in plain:
        raise InputError("the parameters cell must set profile (one of: " + ", ".join(ch.profiles) + ")")
    profile = plain.pop("profile")
    return ch.resolve(profile, plain)


__all__ = ["CHAPTERS", "book_models", "chapter_config", "chapter_names", "chapter_plan", "get_chapter"]
