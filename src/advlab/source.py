"""Which advlab source files a module depends on, and a hash of their code.

Used to key what code produced: an executed chapter (``cli``) and a cached result (``results``).
The hash is over syntax trees, so comments and blank lines do not count.
"""
from __future__ import annotations

import ast
import functools
import hashlib
from collections.abc import Iterable
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
# Packages whose __init__ imports every module in them (each registers itself): importing the
# package runs them all, though no import statement names them.
SELF_REGISTERING = ("advlab.results.kinds",)


def module_file(name: str, package: Path = PACKAGE) -> Path | None:
    """The source file of module ``name`` (advlab.*) under ``package``, or None."""
    parts = name.split(".")
    if parts[0] != "advlab":
        return None
    base = package.joinpath(*parts[1:])
    for f in (base.with_suffix(".py"), base / "__init__.py"):
        if f.is_file():
            return f
    return None


def module_name(path: Path, package: Path = PACKAGE) -> str:
    rel = path.relative_to(package.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_targets(tree, current: str, is_package: bool, top_only: bool = False):
    """(module, name or None, local name) per advlab import: ``import m as a`` -> (m, None, a),
    ``from m import n as a`` -> (m, n, a); relative imports resolved."""
    nodes = tree.body if top_only else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "advlab":
                    yield a.name, None, a.asname or a.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                pkg = current.split(".") if is_package else current.split(".")[:-1]
                pkg = pkg[:len(pkg) - node.level + 1]
                base = ".".join(pkg + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base.split(".")[0] == "advlab":
                for a in node.names:
                    yield base, a.name, a.asname or a.name


def imports(tree: ast.AST, current: str, is_package: bool) -> set[str]:
    """Module names (advlab.*) imported anywhere in ``tree``, relative ones resolved."""
    out = set()
    for base, name, _ in _import_targets(tree, current, is_package):
        out.add(base)
        if name:
            out.add(f"{base}.{name}")  # `from pkg import submodule`
    return out


def dependencies(modules: Iterable[str], package: Path = PACKAGE) -> list[Path]:
    """The source files of ``modules`` and of every advlab module they import, directly or not.

    Parent packages count: importing ``advlab.x.y`` runs ``advlab/__init__`` and ``advlab/x/__init__``.
    """
    todo = sorted(modules)
    seen: dict[str, Path] = {}
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            mod = ".".join(parts[:i])
            if mod in seen:
                continue
            f = module_file(mod, package)
            if f is None:
                continue
            seen[mod] = f
            todo.extend(imports(ast.parse(f.read_text()), mod, f.name == "__init__.py"))
            if mod in SELF_REGISTERING:
                todo.extend(module_name(m, package) for m in sorted(f.parent.glob("*.py")))
    return sorted(set(seen.values()))


def code_hash(files: Iterable[Path], package: Path = PACKAGE) -> str:
    """Hash of the code in ``files``: their module names and syntax trees."""
    h = hashlib.sha256()
    for f in files:
        h.update((module_name(f, package) if f.is_relative_to(package.parent) else f.name).encode())
        h.update(ast.dump(ast.parse(f.read_text())).encode())
    return h.hexdigest()[:16]


# -- what a computation needs: imports followed by name ----------------------------------------------
# ``dependencies`` follows a module's imports whole: importing ``advlab.certify`` runs its __init__,
# which imports the MILP, so any result would be keyed by milp.py. ``needed`` keys a computation by
# the code it can reach instead: a name imported from a package is followed to the module that
# defines it, and a registry (a module-level dict its own functions fill) brings every module that
# registers into it, since a lookup by name can reach any of them.
def _parse(path: Path):
    return ast.parse(path.read_text())


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _registrars(tree) -> set[str]:
    """Top-level functions that store into a module-level dict (``REGISTRY[name] = ...``) anywhere in
    their body: the functions that register."""
    globals_ = {t.id for n in tree.body if isinstance(n, (ast.Assign, ast.AnnAssign))
                for t in (n.targets if isinstance(n, ast.Assign) else [n.target]) if isinstance(t, ast.Name)}
    out = set()
    for fn in tree.body:
        if isinstance(fn, ast.FunctionDef) and any(
                isinstance(n, ast.Subscript) and isinstance(n.ctx, ast.Store) and isinstance(n.value, ast.Name)
                and n.value.id in globals_ for n in ast.walk(fn)):
            out.add(fn.name)
    return out


def _callee(expr, names: dict, modules: dict):
    """(module, name) of what a decorator or top-level call calls, through the module's imports:
    ``register``, ``register(...)``, ``base.register(...)``; None for anything else."""
    if isinstance(expr, ast.Call):
        expr = expr.func
    if isinstance(expr, ast.Name):
        return names.get(expr.id)
    if isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name) and expr.value.id in modules:
        return modules[expr.value.id], expr.attr
    return None


class _Index:
    """Every advlab module under ``package``: its file, tree, re-exports and the registries it fills."""

    def __init__(self, package: Path):
        self.package = package
        self.files = {module_name(f, package): f for f in sorted(package.rglob("*.py"))
                      if "__pycache__" not in f.parts}
        self.trees = {m: _parse(f) for m, f in self.files.items()}
        self.registrars = {m: _registrars(t) for m, t in self.trees.items()}
        self.registrants: dict[str, set[str]] = {m: set() for m in self.files}
        for m, tree in self.trees.items():
            names, modules = {}, {}
            for base, name, local in _import_targets(tree, m, _is_package(self.files[m]), top_only=True):
                if name is None or f"{base}.{name}" in self.files:
                    modules[local] = base if name is None else f"{base}.{name}"
                else:
                    names[local] = (base, name)
            calls = [d for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef)) for d in n.decorator_list]
            calls += [n.value for n in tree.body if isinstance(n, ast.Expr)]
            for c in calls:
                target = _callee(c, names, modules)
                if target:
                    owner, name, _ = self.defining(*target)
                    if owner in self.files and name in self.registrars[owner]:
                        self.registrants[owner].add(m)

    def defining(self, module: str, name: str) -> tuple[str, str, list]:
        """Follow ``from module import name`` through re-exports to the module that defines ``name``:
        (that module, the name there, the modules passed on the way)."""
        path = []
        while module in self.files and module not in path:
            path.append(module)
            f = self.files[module]
            for base, orig, local in _import_targets(self.trees[module], module, _is_package(f), top_only=True):
                if orig and local == name and f"{base}.{orig}" not in self.files:
                    module, name = base, orig
                    break
            else:
                break
        return module, name, path


@functools.lru_cache(maxsize=8)
def _index(package: Path, stamp: tuple) -> _Index:
    return _Index(package)


def needed(modules: Iterable[str], package: Path = PACKAGE, keyed: Iterable[str] = ()) -> list[Path]:
    """The source files whose code can change what ``modules`` compute.

    A module needs its own file and what it imports: a module, whole; a name, the module that defines
    it (a package ``__init__`` that re-exports the name adds its own file and passes it on, so
    ``from advlab.certify import margin_bounds`` needs ``certify/bounds.py`` and not the MILP). The
    parent packages of a module add their own files. A module holding a registry needs every module
    that registers into it at import time, except those under ``keyed`` packages (a result table keys
    its own evaluation kind's module, not its siblings')."""
    stamp = tuple((str(f), f.stat().st_mtime_ns) for f in sorted(package.rglob("*.py")))
    index = _index(package, stamp)
    keyed = tuple(keyed)
    files: set[Path] = set()
    whole: set[str] = set()
    todo = list(modules)

    def own_files(mod):
        parts = mod.split(".")
        for i in range(1, len(parts) + 1):
            f = index.files.get(".".join(parts[:i]))
            if f is not None:
                files.add(f)

    while todo:
        mod = todo.pop()
        if mod in whole or mod not in index.files:
            continue
        whole.add(mod)
        own_files(mod)
        f = index.files[mod]
        for base, name, _ in _import_targets(index.trees[mod], mod, _is_package(f)):
            if name is None or f"{base}.{name}" in index.files:
                todo.append(base if name is None else f"{base}.{name}")
                continue
            owner, _, path = index.defining(base, name)
            for passed in path:  # the re-exporting files count, not their other imports
                own_files(passed)
            todo.append(owner)
        todo.extend(r for r in index.registrants[mod] if not any(r == k or r.startswith(k + ".") for k in keyed))
    return sorted(files)
