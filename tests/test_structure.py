"""The shape of the house: thin notebooks, one atomic-write helper, imports flowing one way,
declared dependencies, and re-execution keyed by the code a chapter uses."""
import ast
import re
import shutil
import sys
import tomllib
from pathlib import Path

import pytest

import advlab
from advlab import execution
from advlab.chapters import CHAPTERS

pytestmark = pytest.mark.book  # the checkout's chapters, notebooks or README: not in the library's run

ROOT = Path(__file__).resolve().parents[1]
PKG = Path(advlab.__file__).parent


def _code_cells(notebook: Path):
    """(tags line, source) of every code cell of a py:percent notebook."""
    parts = re.split(r"^# %%(.*)$", notebook.read_text(), flags=re.M)
    return [(head, body) for head, body in zip(parts[1::2], parts[2::2]) if "[markdown]" not in head]


@pytest.mark.parametrize("chapter", sorted(CHAPTERS))
def test_notebooks_are_thin(chapter):
    """Defect 11: no numbers outside the parameters cell, no loops or definitions in a chapter."""
    cells = _code_cells(ROOT / "notebooks" / CHAPTERS[chapter].notebook)
    params = [body for head, body in cells if "parameters" in head]
    assert len(params) == 1
    for head, body in cells:
        if "parameters" in head:
            continue
        for node in ast.walk(ast.parse(body)):
            assert not isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.For, ast.While, ast.Lambda)), \
                f"{type(node).__name__} in a chapter cell:\n{body}"
            assert not (isinstance(node, ast.Constant) and isinstance(node.value, float)), \
                f"the number {node.value} belongs in the parameters cell:\n{body}"


# What computes a number: attacks, training, evaluation, certification. A notebook reads its plan's results.
KERNEL_PACKAGES = ("advlab.attacks", "advlab.defenses", "advlab.certify", "advlab.training", "advlab.results")
KERNEL_NAMES = {"evaluate_attack", "sweep", "minimal_norms", "noise_injection", "gradient_masking_audit",
                "robust_evaluation", "clean_table", "transfer_rows", "transfer_matrix", "worst_case",
                "load_or_train", "load_models", "load_or_evaluate", "train", "run_attack", "certify", "verify"}


def _kernel_uses(tree: ast.AST) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(KERNEL_PACKAGES):
            found.add(".".join(node.module.split(".")[:2]))
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("advlab"):
            found |= {a.name for a in node.names if a.name in KERNEL_NAMES}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith(KERNEL_PACKAGES)}
        elif isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None
            if name in KERNEL_NAMES:
                found.add(name)
    return found


@pytest.mark.parametrize("chapter", sorted(CHAPTERS))
def test_notebooks_compute_nothing(chapter):
    """A chapter calls no attack, training or evaluation: every number comes from its plan."""
    found = set()
    for _, body in _code_cells(ROOT / "notebooks" / CHAPTERS[chapter].notebook):
        found |= _kernel_uses(ast.parse(body))
    assert not found, f"{chapter} computes outside its plan: {sorted(found)}"


@pytest.mark.parametrize("chapter", sorted(CHAPTERS))
def test_notebooks_write_no_evaluation_names(chapter):
    """A notebook reads its plan through handles (``plan.result(name)``, ``plan.tables(group)``,
    ``plan.data(name)``): it never builds a name from its parts nor opens the plan's declarations."""
    for _, body in _code_cells(ROOT / "notebooks" / CHAPTERS[chapter].notebook):
        for node in ast.walk(ast.parse(body)):
            if isinstance(node, ast.Attribute) and node.attr == "evaluations":
                raise AssertionError(f"{chapter} reads the plan's declarations:\n{body}")
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("result", "tables", "data") and node.args
                    and isinstance(node.args[0], ast.JoinedStr)):
                raise AssertionError(f"{chapter} writes an evaluation's name:\n{body}")


def test_the_kernel_check_sees_calls():
    tree = ast.parse("from advlab.evaluate import evaluate_attack\nfrom advlab.training import load_or_train\n"
                     "rows = evaluate.sweep(m, d)\nfig = plotting.attack_grid(rows, d)")
    assert _kernel_uses(tree) == {"evaluate_attack", "advlab.training", "load_or_train", "sweep"}


def test_plotting_draws_and_never_attacks():
    """Figures are drawn from result rows; an attack inside a figure would be a second way to a number."""
    used = _imports_of("advlab.plotting")
    assert not any(m.startswith(("advlab.attacks", "advlab.training", "advlab.results", "advlab.certify"))
                   for m in used), used
    tree = ast.parse((PKG / "plotting.py").read_text())
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | \
            {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    assert not names & (KERNEL_NAMES | {"predict", "run_attack"})


def test_one_atomic_write_helper():
    """Defect 7: four hand-written atomic writes became one (advlab.cache.atomic_write)."""
    offenders = [f.relative_to(PKG).as_posix() for f in PKG.rglob("*.py")
                 if f.name != "cache.py" and re.search(r"os\.replace|mkstemp|NamedTemporaryFile", f.read_text())]
    assert offenders == []


def _imports_of(module: str) -> set[str]:
    f = execution._module_file(module)
    return execution._imports(ast.parse(f.read_text()), module, f.name == "__init__.py")


def _package_imports(package: str) -> set[str]:
    out = set()
    for f in (PKG / package.split(".", 1)[1]).rglob("*.py"):
        mod = execution._module_name(f)
        out |= {m for m in _imports_of(mod)}
    return out


def _readme_layers() -> list[set[str]]:
    """The Architecture section's bullets, top to bottom: the rooms each names in bold."""
    text = (ROOT / "README.md").read_text().split("## Architecture", 1)[1].split("\n## ", 1)[0]
    layers = []
    for bullet in re.findall(r"^- \*\*(.+?)\*\*", text, flags=re.M | re.S):
        layers.append(set(re.findall(r"`(\w+)`", bullet)))
    return layers


def test_imports_follow_the_readme_layers():
    """The README's Architecture list is the layering: every import goes to the same bullet or above."""
    layers = _readme_layers()
    level = {room: i for i, names in enumerate(layers) for room in names}
    rooms = {f.stem for f in PKG.glob("*.py")} | {d.name for d in PKG.iterdir() if (d / "__init__.py").is_file()}
    rooms -= {"__init__", "__main__"}
    assert rooms == set(level), f"rooms the README does not place: {rooms - set(level)}; gone: {set(level) - rooms}"
    wrong = []
    for f in PKG.rglob("*.py"):
        mod = execution._module_name(f)
        room = mod.split(".")[1] if mod.count(".") else None
        if room not in level:
            continue  # advlab/__init__ (the root's lazy exports) and __main__
        for target in execution._imports(ast.parse(f.read_text()), mod, f.name == "__init__.py"):
            other = target.split(".")[1] if target.count(".") else None
            if other in level and level[other] > level[room]:
                wrong.append(f"{mod} imports {target} ({other} is below {room})")
    assert not wrong, "\n".join(wrong)


def test_the_layer_check_sees_an_upward_import(tmp_path, monkeypatch):
    pkg = tmp_path / "advlab"
    shutil.copytree(PKG, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    (pkg / "threat.py").write_text((pkg / "threat.py").read_text() + "\nfrom .results import Plan\n")
    monkeypatch.setattr(execution, "PACKAGE", pkg)
    monkeypatch.setattr(sys.modules[__name__], "PKG", pkg)
    with pytest.raises(AssertionError, match="advlab.threat imports advlab.results"):
        test_imports_follow_the_readme_layers()


def test_third_party_imports_are_declared():
    """Defect 6: PyYAML was used but not declared, so a bare `pip install .` broke `advlab list`."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    declared = {re.split(r"[<>=!~ ]", d)[0].lower() for d in deps}
    import_names = {"yaml": "pyyaml", "torch": "torch", "torchvision": "torchvision", "numpy": "numpy",
                    "scipy": "scipy", "pandas": "pandas", "matplotlib": "matplotlib", "seaborn": "seaborn",
                    "tqdm": "tqdm"}
    # imported lazily: by `advlab run` (the [run] extra) and by the API reference's build (sphinx, the [book] extra)
    book_only = {"jupytext", "nbformat", "papermill", "sphinx"}
    import sys

    used = set()
    for f in PKG.rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                used |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level:
                used.add(node.module.split(".")[0])
    third = used - set(sys.stdlib_module_names) - {"advlab"} - book_only
    assert third <= set(import_names), third
    assert {import_names[m] for m in third} <= declared


def test_white_box_depends_on_what_it_imports_only():
    deps = {f.relative_to(PKG).as_posix() for f in execution.chapter_dependencies("white-box", ROOT)}
    assert {"attacks/pgd.py", "chapters/white_box.py", "chapters/__init__.py", "evaluate/rows.py", "threat.py",
            "training/__init__.py", "training/methods.py", "__init__.py", "plotting.py"} <= deps
    assert "cli.py" not in deps and "execution.py" not in deps
    assert {"results/kinds/attacks.py", "results/kinds/noise.py"} <= deps  # registered by discovery, not import


def test_a_comment_or_another_chapter_does_not_trigger_a_rerun(tmp_path, monkeypatch):
    """Defect 12: any library edit re-executed every chapter (the whole 30-minute book for a comment)."""
    pkg = tmp_path / "advlab"
    shutil.copytree(PKG, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(execution, "PACKAGE", pkg)

    def key():
        return execution.code_hash(execution.chapter_dependencies("white-box", ROOT))

    before = key()
    pgd = pkg / "attacks" / "pgd.py"
    pgd.write_text(pgd.read_text() + "\n# a comment\n\n")
    assert key() == before
    (pkg / "chapters" / "black_box.py").write_text("from ..attacks import fgsm\nCHAPTER = None\n")
    assert key() == before  # another chapter: the registry finds it without an import statement
    (pkg / "unused.py").write_text("Y = 2\n")  # a module the chapter never imports
    assert key() == before
    pgd.write_text(pgd.read_text().replace("2.5 * threat.eps / steps", "2.0 * threat.eps / steps"))
    assert key() != before  # code the chapter runs


def import_cycles(pkg: Path) -> list[list[str]]:
    """Sets of advlab modules that import each other round a circle, function-level (lazy) imports
    included: a lazy import hides a circle from Python, not from the reader. A submodule's import of its
    own package (``from . import x``) is no edge: the package has run before its submodule."""
    mods = {}
    for f in pkg.rglob("*.py"):
        parts = list(f.relative_to(pkg.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        mods[".".join(parts[:-1] if is_pkg else parts)] = (f, is_pkg)
    graph = {m: {d for d in execution.source.imports(ast.parse(f.read_text()), m, is_pkg)
                 if d in mods and d != m and not m.startswith(d + ".")} for m, (f, is_pkg) in mods.items()}
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while not comp or comp[-1] != v:
                comp.append(stack.pop())
                on.discard(comp[-1])
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_circles():
    assert import_cycles(PKG) == []


def test_the_circle_check_sees_a_lazy_circle(tmp_path):
    pkg = tmp_path / "advlab"
    shutil.copytree(PKG, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    loop = pkg / "training" / "loop.py"
    loop.write_text(loop.read_text() + "\n\ndef _late():\n    from .checkpoint import load_or_train\n"
                    "    return load_or_train\n")
    assert ["advlab.training.checkpoint", "advlab.training.loop"] in import_cycles(pkg)


def test_chapters_do_not_import_chapters():
    """A chapter reads another's models through the registry (``chapters.book_models``) and shares
    generic tables through ``advlab.evaluate``: an edit to one chapter never re-executes another."""
    from advlab import source
    chapters = {c.notebook.removesuffix(".py") for c in CHAPTERS.values()}
    for name in chapters:
        module = f"advlab.chapters.{name}"
        path = PKG / "chapters" / f"{name}.py"
        imported = source.imports(ast.parse(path.read_text()), module, False)
        assert not {m.rsplit(".", 1)[-1] for m in imported if m.startswith("advlab.chapters.")} & (chapters - {name}), \
            name
        deps = {f.relative_to(PKG).as_posix() for f in execution.chapter_dependencies(CHAPTERS_BY_MODULE[name], ROOT)}
        assert not {f"chapters/{c}.py" for c in chapters - {name}} & deps, name


CHAPTERS_BY_MODULE = {c.notebook.removesuffix(".py"): n for n, c in CHAPTERS.items()}


def test_what_a_computation_needs_is_followed_by_name(tmp_path):
    """``source.needed``: a name imported from a package is followed to the module defining it (the
    package's other modules are not needed); a registry brings every module registering into it,
    whichever way it calls the registrar."""
    from advlab import source
    pkg = tmp_path / "advlab"
    (pkg / "parts").mkdir(parents=True)
    files = {"__init__.py": "", "reg.py": "REG = {}\n\ndef register(name):\n    def deco(fn):\n"
                                          "        REG[name] = fn\n        return fn\n    return deco\n",
             "a.py": "from . import reg\n\n@reg.register('a')\ndef a():\n    return 1\n",
             "b.py": "from .reg import register\n\n@register('b')\ndef b():\n    return 2\n",
             "parts/__init__.py": "from .x import f\nfrom .y import g\n", "parts/x.py": "def f():\n    return 3\n",
             "parts/y.py": "from ..reg import REG\n\ndef g():\n    return REG\n",
             "user.py": "from .parts import f\n\ndef run():\n    from .reg import REG\n    return f(), REG\n"}
    for name, text in files.items():
        (pkg / name).write_text(text)
    needed = {f.relative_to(pkg).as_posix() for f in source.needed(["advlab.user"], pkg)}
    assert needed == {"__init__.py", "user.py", "parts/__init__.py", "parts/x.py", "reg.py", "a.py", "b.py"}
    assert "parts/y.py" not in needed and "parts/y.py" in {f.relative_to(pkg).as_posix() for f in
                                                           source.dependencies(["advlab.user"], pkg)}
