"""The API reference (book/api, advlab.apidoc): every public name of every public package documented,
on exactly one page, and the committed pages are the ones the code writes."""
import inspect
import re
from pathlib import Path

import pytest

import advlab
from advlab import apidoc, execution

pytestmark = pytest.mark.book  # the checkout's chapters, notebooks or README: not in the library's run

pytest.importorskip("sphinx")  # the constants' `#:` comments are read with Sphinx's analyzer (the [book] extra)

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("package", apidoc.API_PACKAGES)
def test_every_public_name_is_documented(package):
    assert apidoc.undocumented(package) == [], \
        f"advlab.{package}: give these a docstring (a `#:` comment above a constant)"


def test_an_undocumented_name_is_caught(monkeypatch):
    import advlab.models as models

    def bare(x):
        return x

    class Bare:
        def method(self):
            return 1

    monkeypatch.setattr(models, "bare", bare, raising=False)
    monkeypatch.setattr(models, "Bare", Bare, raising=False)
    monkeypatch.setattr(models, "LIMIT", 12345.5, raising=False)
    monkeypatch.setattr(models, "__all__", [*models.__all__, "bare", "Bare", "LIMIT"])
    assert set(apidoc.undocumented("models")) == {"bare", "Bare", "Bare.method", "LIMIT"}


def test_the_packages_name_what_they_export():
    for package in apidoc.API_PACKAGES:
        mod = apidoc._module(package)
        for name in apidoc.public_names(package):
            assert hasattr(mod, name), f"advlab.{package}.__all__ names {name!r}, which it does not define"


def test_each_name_has_one_page_and_every_page_names_it():
    """A name exported by two packages (square by attacks and attacks.blackbox) is documented once, where it
    is defined, and the other page points there."""
    documented = {}
    for package in apidoc.API_PACKAGES:
        text = apidoc.page_text(package)
        entries = re.findall(r"^\.\. (?:autofunction|autoclass):: (\S+)$|^\.\. py:data:: (\S+)$", text, flags=re.M)
        for auto, data in entries:
            full = auto or f"advlab.{package}.{data}"
            obj_name = full.rsplit(".", 1)[1]
            obj = getattr(apidoc._module(package), obj_name)
            key = id(obj) if not isinstance(obj, (int, float, str, tuple)) else full
            assert key not in documented, f"{full} documented twice (also {documented.get(key)})"
            documented[key] = full
        for name in apidoc.public_names(package):
            assert re.search(rf"\b{re.escape(name)}\b", text), f"{name} missing from advlab.{package}'s page"
    assert apidoc.home("attacks", "square") == "attacks.blackbox"
    assert "advlab.attacks.blackbox.square" in apidoc.page_text("attacks")


def test_the_committed_pages_are_the_codes():
    """`make book` rewrites them (advlab.execution.write_generated); a stale page fails here first."""
    for name, text in apidoc.pages().items():
        path = ROOT / "book" / apidoc.API_DIR / name
        assert path.is_file() and path.read_text() == text, f"book/api/{name} is stale: run make book"
    assert {p.name for p in (ROOT / "book" / apidoc.API_DIR).glob("*.md")} == set(apidoc.pages())
    toc = execution.toc_text()
    assert all(f"book/api/{apidoc.page_name(p)}" in toc for p in apidoc.API_PACKAGES)


def test_the_signatures_carry_types():
    """What autodoc prints: the attack functions' signatures with their annotations."""
    sig = inspect.signature(advlab.attacks.pgd)
    assert sig.parameters["threat"].annotation and sig.return_annotation


def _documented():
    """Every object the pages document, and every target a cross-reference may name."""
    objects, targets = {}, set()
    for package in apidoc.API_PACKAGES:
        targets.add(f"advlab.{package}")
        for name in apidoc.public_names(package):
            obj = getattr(apidoc._module(package), name)
            full = f"advlab.{package}.{name}"
            targets.add(full)
            objects.setdefault(id(obj), (full, obj))
            if inspect.isclass(obj):
                targets.update(f"{full}.{m}" for m in vars(obj) if not m.startswith("_"))
    return objects, targets


def _docstrings(obj):
    yield inspect.getdoc(obj) or ""
    if inspect.isclass(obj):
        for m in vars(obj).values():
            target = m.fget if isinstance(m, property) else m
            if callable(target) or isinstance(m, property):
                yield inspect.getdoc(target) or ""


def test_every_cross_reference_and_annotation_resolves():
    """What `jupyter-book build -n` warns about, found without building: a fully qualified advlab
    target of a :func: / :class: / ... role must be documented, and so must every advlab class an
    annotation of a documented function names (Sphinx links it by its defining module's name)."""
    import typing

    objects, targets = _documented()
    texts = [(f"advlab.{p}", inspect.getdoc(apidoc._module(p)) or "") for p in apidoc.API_PACKAGES]
    texts += [(full, text) for full, obj in objects.values() for text in _docstrings(obj)]
    broken = [(where, t) for where, text in texts
              for t in re.findall(r":(?:func|class|meth|mod|data|attr|exc):`~?(advlab\.[\w.]+)`", text)
              if t not in targets]
    assert broken == [], f"references to undocumented targets: {broken}"
    documented_ids = set(objects)
    unlinked = []
    for full, obj in objects.values():
        for fn in [obj] + ([m for m in vars(obj).values() if inspect.isfunction(m)] if inspect.isclass(obj) else []):
            if not callable(fn):
                continue
            try:
                hints = typing.get_type_hints(fn)
            except Exception:  # noqa: BLE001  (a name only a type checker sees: Sphinx prints it as text)
                continue
            stack = list(hints.values())
            while stack:
                h = stack.pop()
                stack.extend(typing.get_args(h))
                if inspect.isclass(h) and (h.__module__ or "").startswith("advlab") and id(h) not in documented_ids:
                    unlinked.append((full, getattr(fn, "__name__", ""), f"{h.__module__}.{h.__qualname__}"))
    assert unlinked == [], f"annotations naming undocumented advlab classes: {unlinked}"
