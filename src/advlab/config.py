"""Chapter parameters: a typed schema, named profiles, and validation into a frozen config.

A chapter's ``parameters`` cell holds plain values; ``None`` means "the profile's value". The
cell after it calls :func:`chapter_config` with the notebook's globals, which rejects unknown
names (e.g. a misspelt papermill ``-p``) and wrong types with a message listing the valid ones.
"""
from __future__ import annotations

import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .errors import InputError

PROFILES = ("smoke", "quick", "paper")
# Names IPython puts in a notebook's globals that are not parameters.
_IPYTHON_NAMES = {"In", "Out", "exit", "quit", "get_ipython"}


@dataclass(frozen=True)
class Param:
    """One chapter parameter: its type, meaning (with units) and allowed values."""

    type: Any  # float, int, str, bool, or ("list", float) for a list of floats
    doc: str
    choices: tuple | None = None
    optional: bool = False  # None is a valid value (besides meaning "profile default")

    def describe(self) -> str:
        t = f"list[{self.type[1].__name__}]" if isinstance(self.type, tuple) else self.type.__name__
        if self.optional:
            t += " | None"
        return t + (f" in {list(self.choices)}" if self.choices else "")

    def check(self, name: str, value, schema: Mapping[str, "Param"]):
        """Return the value coerced to the declared type (int -> float, tuple -> list) or raise."""
        def bad():
            return InputError(f"parameter {name!r} must be {self.describe()}, got {value!r} "
                              f"({type(value).__name__}). Valid parameters: {describe_schema(schema)}")
        if value is None:
            if self.optional:
                return None
            raise bad()
        if isinstance(self.type, tuple):
            if not isinstance(value, (list, tuple)):
                raise bad()
            return [_scalar(self.type[1], v, bad) for v in value]
        v = _scalar(self.type, value, bad)
        if self.choices is not None and v not in self.choices:
            raise bad()
        return v


def _scalar(tp, v, bad):
    if tp is float and isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    if tp is int and isinstance(v, int) and not isinstance(v, bool):
        return v
    if tp in (str, bool) and isinstance(v, tp):
        return v
    raise bad()


def describe_schema(schema: Mapping[str, Param]) -> str:
    return ", ".join(f"{k} ({p.describe()})" for k, p in schema.items())


class Config(Mapping):
    """A frozen, validated mapping with attribute access; ``table()`` shows it."""

    def __init__(self, name: str, profile: str, values: dict, schema: Mapping[str, Param]):
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_profile", profile)
        object.__setattr__(self, "_values", types.MappingProxyType(dict(values)))
        object.__setattr__(self, "_schema", schema)

    def __getitem__(self, k):
        return self._values[k]

    def __iter__(self):
        return iter(self._values)

    def __len__(self):
        return len(self._values)

    def __getattr__(self, k):
        try:
            return self._values[k]
        except KeyError:
            raise AttributeError(f"{self._name} has no parameter {k!r}; valid: {sorted(self._values)}") from None

    def __setattr__(self, k, v):
        raise AttributeError("a chapter config is frozen")

    @property
    def profile(self) -> str:
        return self._profile

    def table(self) -> pd.DataFrame:
        rows = [{"parameter": "profile", "value": self._profile, "meaning": "named parameter set"}]
        rows += [{"parameter": k, "value": _show(v), "meaning": self._schema[k].doc} for k, v in self._values.items()]
        return pd.DataFrame(rows).set_index("parameter")

    def __repr__(self):
        return f"Config({self._name!r}, profile={self._profile!r}, {dict(self._values)!r})"


def _show(v) -> str:
    """Readable values: floats to 4 significant digits (8/255 shows as 0.03137)."""
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return "[" + ", ".join(_show(e) for e in v) + "]"
    return repr(v)


@dataclass(frozen=True)
class Chapter:
    name: str
    notebook: str  # file name under notebooks/
    title: str
    params: dict
    profiles: dict = field(default_factory=dict)

    def resolve(self, profile: str, overrides: Mapping[str, Any] | None = None) -> Config:
        """Profile defaults updated by non-None overrides, every name and type checked."""
        if profile not in self.profiles:
            raise InputError(f"unknown profile {profile!r} for chapter {self.name!r}; valid: {', '.join(sorted(self.profiles))}")
        overrides = dict(overrides or {})
        unknown = set(overrides) - set(self.params)
        if unknown:
            raise InputError(f"unknown parameter(s) {sorted(unknown)} for chapter {self.name!r}. "
                             f"Valid parameters: {describe_schema(self.params)}")
        values = {}
        for k, p in self.params.items():
            v = overrides.get(k)
            v = self.profiles[profile][k] if v is None else v
            values[k] = p.check(k, v, self.params)
        return Config(self.name, profile, values, self.params)


def chapter_config(chapter: str, namespace: Mapping[str, Any]) -> Config:
    """Validate a notebook's parameters (its ``globals()``) for ``chapter``.

    Every plain value defined so far must be ``profile`` or a parameter of the chapter; modules,
    functions, classes and underscore names are ignored.
    """
    from .chapters import get_chapter

    ch = get_chapter(chapter)
    plain = {k: v for k, v in namespace.items()
             if not k.startswith("_") and k not in _IPYTHON_NAMES
             and not isinstance(v, (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, type))
             and not callable(v)}
    if "profile" not in plain:
        raise InputError("the parameters cell must set profile (one of: " + ", ".join(ch.profiles) + ")")
    profile = plain.pop("profile")
    return ch.resolve(profile, plain)
