"""Chapter parameters: a typed schema with ranges, named profiles, and validation into a frozen config.

A chapter declares its parameters once (:class:`Param`: type, meaning with units, allowed values
and range), a complete base profile, and the other profiles as overlays that name only what they
change. Everything is checked when the chapter is defined, so a profile that misses a key, names
an unknown one or holds a bad value fails at import. A notebook's ``parameters`` cell holds plain
values, ``None`` meaning "the profile's value"; :meth:`Chapter.resolve` rejects unknown names, wrong
types, values out of range and inconsistent combinations with one paragraph that says what is valid.
"""
from __future__ import annotations

import difflib
import math
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from .errors import InputError

if TYPE_CHECKING:  # pandas is imported by table() only: the command line's --help must stay quick
    import pandas as pd

PROFILES = ("smoke", "quick", "paper")
ALL = "all"  # the spelled value of an ``all_allowed`` parameter: no limit (the whole split)


def _type_name(tp) -> str:
    return f"list[{tp[1].__name__}]" if isinstance(tp, tuple) else tp.__name__


def coerce(value, tp, what: str):
    """``value`` as type ``tp`` (int -> float allowed, bool is no number, floats finite) or InputError."""
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise InputError(f"{what} must be a finite float, got {value!r}")
        return float(value)
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp in (str, bool) and isinstance(value, tp):
        return value
    raise InputError(f"{what} must be {tp.__name__}, got {value!r} ({type(value).__name__})")


def mapping_text(name: str, value) -> str:
    """A mapping parameter's canonical text: ``{"width": 32}``, ``'{"width": 32}'`` and ``'{width: 32}'``
    (YAML, as a shell leaves it unquoted) are one value, the JSON text with sorted keys."""
    import json

    import yaml

    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            try:
                value = yaml.safe_load(value)
            except yaml.YAMLError:
                pass
    if not isinstance(value, Mapping):
        raise InputError(f"parameter {name!r} must be a mapping (a JSON object or YAML mapping, e.g. "
                         f"'{{\"width\": 0.5}}'), got {value!r}")
    try:
        return json.dumps(dict(value), sort_keys=True)
    except (TypeError, ValueError) as e:
        raise InputError(f"parameter {name!r} must hold JSON values only: {e}") from None


@dataclass(frozen=True)
class Param:
    """One chapter parameter: its type, meaning (with units), allowed values and range.

    ``minimum`` / ``maximum`` are inclusive bounds; ``positive`` requires > 0. For a list every
    element is checked and the list needs at least one. ``all_allowed`` accepts the string
    ``"all"`` (no limit), which the chapter receives as None. ``path`` marks a file path, which the
    command line makes absolute before the notebook (whose working directory is ``notebooks/``) sees it.
    """

    type: Any  # float, int, str, bool, or ("list", float) for a list of floats
    doc: str
    choices: tuple | None = None
    minimum: float | None = None
    maximum: float | None = None
    positive: bool = False
    all_allowed: bool = False
    path: bool = False  # a file path: the command line makes it absolute (the kernel runs in notebooks/)
    mapping: bool = False  # a str holding a JSON object; a mapping, or its JSON / YAML text, is accepted

    def describe(self) -> str:
        t = "mapping (JSON object)" if self.mapping else _type_name(self.type)
        if self.positive:
            t += " > 0"
        if self.minimum is not None:
            t += f" >= {self.minimum:g}"
        if self.maximum is not None:
            t += f" <= {self.maximum:g}"
        if self.all_allowed:
            t += f" | {ALL!r}"
        return t + (f" in {list(self.choices)}" if self.choices else "")

    def _scalar(self, v, what: str):
        tp = self.type[1] if isinstance(self.type, tuple) else self.type
        v = coerce(v, tp, what)
        if self.choices is not None and v not in self.choices:
            raise InputError(f"{what} must be one of {list(self.choices)}, got {v!r}")
        if tp in (int, float):
            if self.positive and not v > 0:
                raise InputError(f"{what} must be > 0, got {v!r}")
            if self.minimum is not None and v < self.minimum:
                raise InputError(f"{what} must be >= {self.minimum:g}, got {v!r}")
            if self.maximum is not None and v > self.maximum:
                raise InputError(f"{what} must be <= {self.maximum:g}, got {v!r}")
        return v

    def check(self, name: str, value):
        """The value coerced to the declared type (int -> float, tuple -> list; "all" -> None) or InputError."""
        if self.all_allowed and value == ALL:
            return None
        if self.mapping:
            return mapping_text(name, value)
        if isinstance(self.type, tuple):
            if not isinstance(value, (list, tuple)) or len(value) == 0:
                raise InputError(f"parameter {name!r} must be a non-empty {self.describe()}, got {value!r}")
            return [self._scalar(v, f"every element of {name!r}") for v in value]
        return self._scalar(value, f"parameter {name!r}")


@dataclass(frozen=True)
class Relation:
    """A constraint between parameters, checked after each one is valid on its own."""

    names: tuple[str, ...]
    holds: Callable[[Mapping], bool]
    message: str


class Config(Mapping):
    """A frozen, validated mapping with attribute access; ``table()`` shows it. Pickles and deep-copies."""

    def __init__(self, name: str, profile: str, values: dict, schema: Mapping[str, Param]):
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_profile", profile)
        object.__setattr__(self, "_values", types.MappingProxyType(dict(values)))
        object.__setattr__(self, "_schema", dict(schema))

    def __reduce__(self):
        return (Config, (self._name, self._profile, dict(self._values), self._schema))

    def __getitem__(self, k):
        return self._values[k]

    def __iter__(self):
        return iter(self._values)

    def __len__(self):
        return len(self._values)

    def __getattr__(self, k):
        if k.startswith("_"):  # copy/pickle probe private names before __init__ has run
            raise AttributeError(k)
        try:
            return self._values[k]
        except KeyError:
            raise AttributeError(f"{self._name} has no parameter {k!r}; valid: {sorted(self._values)}") from None

    def __setattr__(self, k, v):
        raise AttributeError("a chapter config is frozen")

    def __eq__(self, other):
        return (isinstance(other, Config) and (self._name, self._profile) == (other._name, other._profile)
                and dict(self._values) == dict(other._values))

    __hash__ = None  # a mapping of lists

    @property
    def name(self) -> str:
        return self._name

    @property
    def profile(self) -> str:
        return self._profile

    def table(self) -> pd.DataFrame:
        import pandas as pd

        rows = [{"parameter": "profile", "value": self._profile, "meaning": "named parameter set"}]
        rows += [{"parameter": k, "value": show_value(v, self._schema[k]), "meaning": self._schema[k].doc}
                 for k, v in self._values.items()]
        return pd.DataFrame(rows).set_index("parameter")

    def __repr__(self):
        return f"Config({self._name!r}, profile={self._profile!r}, {dict(self._values)!r})"


def show_value(v, param: Param | None = None) -> str:
    """Readable values: floats to 4 significant digits (8/255 shows as 0.03137); "all" for no limit."""
    if v is None and param is not None and param.all_allowed:
        return repr(ALL)
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return "[" + ", ".join(show_value(e) for e in v) + "]"
    return repr(v)


@dataclass(frozen=True)
class Chapter:
    """A chapter: notebook, title, parameter schema, profiles and relations between parameters.

    ``profiles[base]`` sets every parameter; every other profile is an overlay naming only the
    values it changes. All of it is validated here, when the chapter is defined.
    """

    name: str
    notebook: str  # file name under notebooks/
    title: str
    position: int  # order in the book
    params: dict
    profiles: dict
    base: str = "quick"
    relations: tuple = ()
    # what the parameters name, checked before a kernel starts (a reader's model file loads and classifies)
    check: Callable[[Config], None] | None = None
    _resolved: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self):
        where = f"chapter {self.name!r}"
        if set(self.profiles) != set(PROFILES):
            raise InputError(f"{where} must define the profiles {list(PROFILES)}, got {sorted(self.profiles)}")
        missing = set(self.params) - set(self.profiles[self.base])
        if missing:
            raise InputError(f"{where}: the base profile {self.base!r} lacks {sorted(missing)}")
        for prof, values in self.profiles.items():
            unknown = set(values) - set(self.params)
            if unknown:
                raise InputError(f"{where}: profile {prof!r} names unknown parameter(s) {sorted(unknown)}")
        for r in self.relations:
            unknown = set(r.names) - set(self.params)
            if unknown:
                raise InputError(f"{where}: a relation names unknown parameter(s) {sorted(unknown)}")
        for prof in self.profiles:
            merged = {**self.profiles[self.base], **self.profiles[prof]}
            try:
                self._resolved[prof] = self._validate(prof, merged)
            except InputError as e:
                raise InputError(f"{where}, profile {prof!r}: {e}") from None

    def profile_values(self, profile: str) -> dict:
        """Every parameter's value in ``profile`` (the base profile with the profile's overlay)."""
        self._check_profile(profile)
        return dict(self._resolved[profile])

    def _check_profile(self, profile):
        if profile not in self.profiles:
            raise InputError(f"unknown profile {profile!r} for chapter {self.name!r}; valid: "
                             f"{', '.join(sorted(self.profiles))}")

    def _validate(self, profile, values) -> Config:
        out = {}
        for k, p in self.params.items():
            try:
                out[k] = p.check(k, values[k])
            except InputError as e:
                raise InputError(f"{e}. {k}: {p.describe()}; {p.doc}. Every parameter with its range: "
                                 f"advlab list {self.name}") from None
        cfg = Config(self.name, profile, out, self.params)
        for r in self.relations:
            if not r.holds(cfg):
                got = ", ".join(f"{n} = {show_value(cfg[n], self.params[n])}" for n in r.names)
                raise InputError(f"{r.message} (got {got})")
        return cfg

    def resolve(self, profile: str, overrides: Mapping[str, Any] | None = None) -> Config:
        """Profile values updated by non-None overrides; every name, type, range and relation checked."""
        self._check_profile(profile)
        overrides = dict(overrides or {})
        unknown = set(overrides) - set(self.params)
        if unknown:
            near = sorted({m for u in unknown for m in difflib.get_close_matches(u, self.params, n=2)})
            hint = f" (did you mean {', '.join(near)}?)" if near else ""
            raise InputError(f"unknown parameter(s) {sorted(unknown)} for chapter {self.name!r}{hint}. Its "
                             f"parameters: {', '.join(self.params)}; with types and ranges: advlab list {self.name}")
        values = {k: v for k, v in self._resolved[profile].items()}
        # the resolved profile holds None for "all"; feed it back in its spelled form
        values = {k: (ALL if v is None and self.params[k].all_allowed else v) for k, v in values.items()}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return self._validate(profile, values)
