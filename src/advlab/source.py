"""Which advlab source files a module depends on, and a hash of their code.

Used to key what code produced: an executed chapter (``cli``) and a cached result (``results``).
The hash is over syntax trees, so comments and blank lines do not count.
"""
from __future__ import annotations

import ast
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


def imports(tree: ast.AST, current: str, is_package: bool) -> set[str]:
    """Module names (advlab.*) imported anywhere in ``tree``, relative ones resolved."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                pkg = current.split(".") if is_package else current.split(".")[:-1]
                pkg = pkg[:len(pkg) - node.level + 1]
                base = ".".join(pkg + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)  # `from pkg import submodule`
    return {m for m in out if m.split(".")[0] == "advlab"}


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
        h.update(module_name(f, package).encode())
        h.update(ast.dump(ast.parse(f.read_text())).encode())
    return h.hexdigest()[:16]
