"""The API reference: one page per public package, written from its ``__all__`` and its docstrings.

Sphinx's autodoc renders each page in the book (napoleon reads Google / NumPy sections), so the
reference is the code's own documentation and cannot drift from it. A name lives on the page of the
package that defines it (``square`` on ``advlab.attacks.blackbox``, listed as a re-export on
``advlab.attacks``). Constants are documented by a ``#:`` comment above their assignment, which is
where Sphinx reads them. :func:`undocumented` names what lacks documentation (a test holds it empty).
"""
from __future__ import annotations

import importlib
import inspect
import sys

from .errors import AdvlabError

API_PACKAGES = ("threat", "attacks", "attacks.blackbox", "defenses", "certify", "evaluate", "training", "results",
                "data", "models", "errors")
API_DIR = "api"  # under book/


def _module(package: str):
    return importlib.import_module(f"advlab.{package}")


def public_names(package: str) -> list[str]:
    """The package's ``__all__``: what it promises its users."""
    names = getattr(_module(package), "__all__", None)
    if names is None:
        raise AdvlabError(f"advlab.{package} has no __all__: the API reference lists what it exports")
    return list(names)


def _is_data(obj) -> bool:
    return not (inspect.isclass(obj) or inspect.isroutine(obj))


def constant_doc(package: str, name: str) -> str | None:
    """The ``#:`` comment (or string below) documenting constant ``name``, read where it is assigned."""
    from sphinx.pycode import ModuleAnalyzer

    obj = getattr(_module(package), name)
    prefix = f"advlab.{package}"
    for mod_name in sorted(n for n in list(sys.modules) if n == prefix or n.startswith(prefix + ".")):
        mod = sys.modules[mod_name]
        try:
            docs = ModuleAnalyzer.for_module(mod_name).find_attr_docs()
        except Exception:  # a module without source (compiled): nothing to read
            continue
        # its own name first, then a name it is imported under (AUDIT_CHECKS is audit.CHECKS)
        for (cls, attr), lines in sorted(docs.items(), key=lambda kv: kv[0][1] != name):
            if cls == "" and lines and (attr == name or getattr(mod, attr, None) is obj):
                return "\n".join(lines).strip()
    return None


def _defined_in(package: str, name: str) -> str:
    """The module that defines ``name`` (for a constant, the one whose source documents it)."""
    obj = getattr(_module(package), name)
    if not _is_data(obj):
        return getattr(obj, "__module__", "") or ""
    prefix = f"advlab.{package}"
    owners = [n for n, m in list(sys.modules.items())
              if (n == prefix or n.startswith(prefix + ".")) and getattr(m, name, None) is obj]
    return max(owners, key=len) if owners else prefix


def home(package: str, name: str) -> str:
    """The API package whose page documents ``name``: of those exporting the same object, the one
    nearest to where it is defined."""
    obj = getattr(_module(package), name)
    where = _defined_in(package, name)
    exporters = [p for p in API_PACKAGES if name in public_names(p) and getattr(_module(p), name) is obj]
    inside = [p for p in exporters if where == f"advlab.{p}" or where.startswith(f"advlab.{p}.")]
    return max(inside, key=len) if inside else package


_NOT_OURS = {"builtins", "torch", "typing", "abc", "enum", "collections", "contextlib"}


def _members(cls) -> list[str]:
    """A class's public methods and properties of its own (not those inherited from torch, Python or a base
    such as Exception)."""
    out = []
    for klass in cls.__mro__:
        if (klass.__module__ or "").split(".")[0] in _NOT_OURS:
            continue
        for n, v in vars(klass).items():
            if n.startswith("_") or n in out:
                continue
            if inspect.isfunction(v) or isinstance(v, (property, classmethod, staticmethod)):
                out.append(n)
    return out


def _doc_of_member(cls, n) -> str | None:
    v = inspect.getattr_static(cls, n)
    f = v.fget if isinstance(v, property) else getattr(v, "__func__", v)
    return inspect.getdoc(f)


def undocumented(package: str) -> list[str]:
    """Public names of ``package`` (and public methods of its classes) its page would show without a word."""
    missing = []
    mod = _module(package)
    for name in public_names(package):
        if home(package, name) != package:
            continue
        obj = getattr(mod, name)
        if _is_data(obj):
            if not constant_doc(package, name):
                missing.append(name)
            continue
        if not inspect.getdoc(obj) or (inspect.isclass(obj) and obj.__doc__ is None):
            missing.append(name)
        if inspect.isclass(obj):
            missing += [f"{name}.{n}" for n in _members(obj) if not _doc_of_member(obj, n)]
    return missing


def page_text(package: str) -> str:
    """The MyST page of ``advlab.<package>``: the package's docstring, then every name it exports."""
    mod = _module(package)
    full = f"advlab.{package}"
    lines = [f"# `{full}`", "", "```{eval-rst}", f".. automodule:: {full}", ""]
    elsewhere = []
    for name in sorted(public_names(package), key=str.lower):
        where = home(package, name)
        if where != package:
            elsewhere.append((name, where))
            continue
        obj = getattr(mod, name)
        if inspect.isclass(obj):
            lines += [f".. autoclass:: {full}.{name}", "   :members:", ""]
        elif inspect.isroutine(obj):
            lines += [f".. autofunction:: {full}.{name}", ""]
        else:
            doc = constant_doc(package, name) or ""
            lines += [f".. py:data:: {name}", ""] + [f"   {ln}" if ln else "" for ln in doc.splitlines()] + [""]
    lines.append("```")
    if elsewhere:
        refs = ", ".join(f"{{py:obj}}`{name} <advlab.{where}.{name}>`" for name, where in elsewhere)
        lines += ["", f"Also exported here, documented with the package that defines them: {refs}."]
    return "\n".join(lines) + "\n"


def index_text() -> str:
    """The reference's first page: what it holds and how to read a signature."""
    rows = "\n".join(f"- {{doc}}`advlab.{p} <{page_name(p)}>`: {_summary(p)}" for p in API_PACKAGES)
    return ("# API reference\n\n"
            "Every public function, class and constant of advlab's packages, with its signature and its "
            "docstring, generated from the code (`advlab.apidoc`). Every ε is in pixel units of [0, 1]; "
            "attacks are plain functions `attack(model, x, y, *, threat, ..., generator=None)`.\n\n" + rows + "\n")


def _summary(package: str) -> str:
    doc = inspect.getdoc(_module(package)) or ""
    return doc.split("\n\n", 1)[0].replace("\n", " ")


def page_name(package: str) -> str:
    return package.replace(".", "-")


def pages() -> dict[str, str]:
    """``{file name under book/api: text}``, the index first."""
    return {"index.md": index_text(), **{f"{page_name(p)}.md": page_text(p) for p in API_PACKAGES}}
