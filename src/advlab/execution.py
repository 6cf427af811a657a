"""Executing the book: the repository and its environment, what a chapter's code depends on, papermill
runs of a chapter (atomic, skipped when up to date), render-only checks, the table of contents and the
book build. The command line (:mod:`advlab.cli`) parses arguments and calls these.
"""
from __future__ import annotations

import ast
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

from . import source
from .cache import CACHE_ENV, atomic_write, cached_only, config_key, file_sha256, user_cache
from .chapters import CHAPTERS, chapter_plan, get_chapter
from .data import DATA_ENV
from .errors import AdvlabError, CacheMiss, InputError
from .reproducibility import PINNED_CACHE, cpu_kernels, pin_cpu_kernels
from .timing import Stopwatch

BOOK_DIR = "book"
REFERENCE_DIR = Path("tests") / "notebooks"
PACKAGE = Path(__file__).resolve().parent


class ChapterError(AdvlabError):
    """A chapter's notebook raised while executing."""


def book_root(start: Path | None = None) -> Path | None:
    """The repository root: the nearest folder upwards holding ``_toc.yml`` and ``notebooks/``, or None."""
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / "_toc.yml").is_file() and (d / "notebooks").is_dir():
            return d
    return None


def find_root(start: Path | None = None) -> Path:
    """The repository root (:func:`book_root`), or an error for the commands that need the book."""
    root = book_root(start)
    if root is None:
        raise AdvlabError(f"no advlab book (a folder with _toc.yml and notebooks/) at or above "
                          f"{(start or Path.cwd()).resolve()}")
    return root


def notebooks_dir(root: Path | None) -> Path:
    """Where the chapters' notebooks are: the book's ``notebooks/``, or outside a checkout the copy an
    installed wheel carries (``advlab/notebooks``; an editable install reads its checkout's)."""
    if root is not None:
        return root / "notebooks"
    for d in (PACKAGE / "notebooks", PACKAGE.parents[1] / "notebooks"):
        if d.is_dir() and any(d.glob("*.py")):
            return d
    raise AdvlabError(f"no advlab book (a folder with _toc.yml and notebooks/) at or above {Path.cwd()}, and this "
                      f"installation of advlab ({PACKAGE}) carries no chapters' notebooks")


def repository_defaults(root: Path) -> dict[str, Path]:
    """The book's data and cache folders when the environment names none (``make`` uses the same)."""
    return {DATA_ENV: root.parent / "shared" / "data", CACHE_ENV: root / ".cache"}


def configure_environment(root: Path | None, environ=os.environ) -> dict[str, str]:
    """Make ``ADVLAB_DATA`` and ``ADVLAB_CACHE`` absolute, defaulting to the repository's folders.

    A relative value is taken relative to the current directory (where the user typed it), not to
    ``notebooks/`` where the kernel runs. The data default applies only if that folder exists;
    otherwise the library's own default (``~/.cache/advlab/data``, with a download) stands. Outside
    a checkout (``root`` None) the cache is the library's, ``~/.cache/advlab``.
    """
    defaults = repository_defaults(root) if root is not None else {DATA_ENV: None, CACHE_ENV: user_cache()}
    for var, default in defaults.items():
        value = environ.get(var)
        if value:
            environ[var] = str(Path(value).expanduser().resolve())
        elif var == CACHE_ENV or (default is not None and default.is_dir()):
            environ[var] = str(default.resolve())
    return {v: environ.get(v, "") for v in (DATA_ENV, CACHE_ENV)}


def pinned_environment(root: Path, environ=os.environ) -> dict[str, str]:
    """The environment of the test suite and of ``advlab references``: the repository's folders,
    CPU kernels pinned (:mod:`advlab.reproducibility`), and a model cache of their own,
    ``<cache>/pinned``, so that a model trained by a book build with the machine's own kernels
    is never taken for the pinned one (the cache key names a configuration, not the kernels).
    """
    configure_environment(root, environ)
    if pin_cpu_kernels(environ) and Path(environ[CACHE_ENV]).name != PINNED_CACHE:
        environ[CACHE_ENV] = str(Path(environ[CACHE_ENV]) / PINNED_CACHE)
    return {v: environ.get(v, "") for v in (DATA_ENV, CACHE_ENV)}


# -- what a chapter depends on ---------------------------------------------------------------------
# PACKAGE is read at call time, so a test can point the dependency walk at a copy of the package.
def _module_file(name: str) -> Path | None:
    return source.module_file(name, PACKAGE)


def _module_name(path: Path) -> str:
    return source.module_name(path, PACKAGE)


_imports = source.imports


def chapter_dependencies(chapter: str, root: Path | None) -> list[Path]:
    """The advlab source files chapter ``chapter``'s notebook imports, directly or through others.

    Parent packages count (importing ``advlab.x.y`` runs ``advlab/__init__`` and
    ``advlab/x/__init__``), and so does the chapter's own module. The chapter registry finds the
    chapter modules at run time, not by import statements, so another chapter counts only if this
    one imports it.
    """
    ch = get_chapter(chapter)
    own = f"advlab.chapters.{Path(ch.notebook).stem}"
    notebook = source.imports(ast.parse((notebooks_dir(root) / ch.notebook).read_text()), "", False)
    return source.dependencies(notebook | {own}, PACKAGE)


def code_hash(files) -> str:
    """Hash of the code in ``files``: their syntax trees, so comments and blank lines do not count."""
    return source.code_hash(files, PACKAGE)


# -- execution ---------------------------------------------------------------------------------------
def _failing_line(source: str, traceback: list[str]) -> str:
    """The line of the cell that raised, as IPython's traceback names it ("Cell In[8], line 3"),
    else the cell's first line of code."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(traceback or []))
    lines = source.splitlines()
    m = re.search(r"Cell In\[\d+\], line (\d+)", text)
    if m and 0 < int(m.group(1)) <= len(lines):
        return f"line {m.group(1)}: {lines[int(m.group(1)) - 1].strip()}"
    code = [ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    return code[0].strip() if code else ""


def execute_chapter(name: str, profile: str, overrides: dict | None = None, output: Path | None = None,
                    root: Path | None = None, force: bool = False, quiet: bool = False) -> tuple[Path, bool]:
    """Execute chapter ``name`` with papermill; returns ``(output path, whether it ran)``.

    The executed notebook is written to ``output`` atomically, so a killed run leaves the old page
    (or none) and no temporary file where the book reads. An error inside the notebook raises
    :class:`ChapterError` naming the cell and the chapter's own message. Outside a checkout the
    notebook is the installed one, the page goes to ``output`` or ``./<chapter>.ipynb``, and the kernel
    runs in the run's own folder.
    """
    root = root or book_root()
    chapter = get_chapter(name)
    overrides = dict(overrides or {})
    cfg = chapter.resolve(profile, overrides)  # every name, type, range and relation, before a kernel starts
    overrides = {k: (cfg[k] if chapter.params[k].mapping else v) for k, v in overrides.items()}  # one text each
    env = configure_environment(root)
    if env[DATA_ENV] and not Path(env[DATA_ENV]).is_dir():
        raise InputError(f"{DATA_ENV}={env[DATA_ENV]} is not a folder; point it at the folder that holds "
                         "<dataset>/{train,test}.npz (in this repository: ../shared/data)")
    if chapter.check is not None:
        with warnings.catch_warnings():  # what the check finds worth a warning, the page says itself
            warnings.simplefilter("ignore")
            chapter.check(cfg)
    if cached_only():
        check_cached(name, profile, overrides, cfg)
    source = notebooks_dir(root) / chapter.notebook
    output = Path(output).resolve() if output else (root / BOOK_DIR if root else Path.cwd()) / f"{name}.ipynb"
    files = {k: file_sha256(cfg[k]) for k, p in chapter.params.items() if p.path and Path(cfg[k]).is_file()}
    key = config_key({"source": source.read_text(), "profile": profile, "overrides": overrides,
                      "code": code_hash(chapter_dependencies(name, root)), "files": files})

    import jupytext  # heavy imports only once the run is known to be valid
    import nbformat
    import papermill

    if output.exists() and not force:
        try:
            if nbformat.read(output, as_version=4).metadata.get("advlab", {}).get("key") == key:
                if not quiet:
                    print(f"{name}: up to date ({output})")
                return output, False
        except Exception:  # unreadable output: execute again
            pass
    nb = jupytext.read(source)
    os.environ.setdefault("TQDM_DISABLE", "1")  # progress bars would be noise in the pages
    work = _work_folder(name)
    tmp = work / f"{name}.ipynb"
    if not quiet:
        print(f"{name}: executing with profile {profile!r} {overrides or ''} -> {output}")
    try:
        executed = papermill.execute_notebook(
            nb, str(tmp), parameters={"profile": profile, **overrides}, kernel_name="python3",
            cwd=str(source.parent if root else work), progress_bar=not quiet, log_output=False)
    except papermill.PapermillExecutionError as e:
        raise ChapterError(f"chapter {name!r} stopped in cell {e.exec_count} ({_failing_line(e.source, e.traceback)}): "
                           f"{e.ename}: {e.evalue.rstrip('.')}. The executed notebook is kept in {tmp}.") from None
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    for cell in executed.cells:  # papermill's copy of the parameters: the page shows them as a table
        tags = cell.metadata.setdefault("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
    executed.metadata["advlab"] = {"chapter": name, "profile": profile, "overrides": overrides, "key": key,
                                   "kernels": cpu_kernels()}
    atomic_write(output, lambda p: nbformat.write(executed, str(p)))
    shutil.rmtree(work, ignore_errors=True)
    return output, True


def command(verb: str, chapter: str, profile: str, overrides: dict) -> str:
    """The shell command that runs ``verb`` on ``chapter`` with these parameters, quoted to paste."""
    words = ["advlab", verb, chapter, "--profile", profile]
    for k, v in overrides.items():
        words += ["-p", k, shlex.quote(json.dumps(v) if isinstance(v, (list, dict)) else str(v))]
    return " ".join(words)


def check_cached(name: str, profile: str, overrides: dict, cfg) -> None:
    """A render-only run must find every planned model and result in the cache: checked before a
    kernel starts, naming the command that fills it."""
    status = chapter_plan(name, cfg).status()
    missing = status[~status.cached]
    if len(missing):
        raise CacheMiss(f"--cached-only: {len(missing)} of the {len(status)} models and results that chapter {name!r} "
                        f"({profile}) plans are not in the cache {os.environ.get(CACHE_ENV)} (first: "
                        f"{missing.what.iloc[0]}); fill it with `{command('precompute', name, profile, overrides)}`")


def _work_folder(name: str) -> Path:
    """A fresh folder for this run's partly executed notebook, ``<cache>/runs/<chapter>-<pid>``.

    Not the system temp folder: a run killed beyond cleanup (SIGKILL) left ``advlab-<chapter>-*``
    folders there for good. Here the next run removes those whose process is gone.
    """
    runs = Path(os.environ[CACHE_ENV]) / "runs"
    for stale in runs.glob(f"{name}-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    work = runs / f"{name}-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    return work


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def raise_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)  # unwinds like Ctrl-C: temporary files removed, book/ untouched


def toc_text() -> str:
    """``_toc.yml``: the chapters as the registry orders them, then the API reference (:mod:`advlab.apidoc`)."""
    from .apidoc import API_DIR, API_PACKAGES, page_name

    lines = ["format: jb-book", "root: book/intro", "parts:", "  - caption: Chapters", "    chapters:"]
    lines += [f"      - file: {BOOK_DIR}/{name}" for name in CHAPTERS]
    lines += ["  - caption: API reference", "    chapters:", f"      - file: {BOOK_DIR}/{API_DIR}/index"]
    lines += [f"      - file: {BOOK_DIR}/{API_DIR}/{page_name(p)}" for p in API_PACKAGES]
    return "\n".join(lines) + "\n"


def write_generated(root: Path) -> list[str]:
    """``_toc.yml`` and the API reference pages, rewritten where they differ from the code's; what changed."""
    from .apidoc import API_DIR, pages

    wanted = {root / "_toc.yml": toc_text()}
    wanted.update({root / BOOK_DIR / API_DIR / name: text for name, text in pages().items()})
    changed = []
    for path, text in wanted.items():
        if not path.is_file() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, lambda p, text=text: p.write_text(text))
            changed.append(str(path.relative_to(root)))
    return changed


def reference_step_ms(repeats: int = 15) -> float:
    """This machine's speed now: milliseconds of one reference step, an SGD step (forward, backward,
    update) of the MNIST small CNN on 128 random images, median of ``repeats`` after a warm-up.

    Shared machines swing by 2x from one day to the next; a chapter's time in reference steps is
    what a budget can be stated in. Seeded, and the process's global RNG is left as it was.
    """
    import torch

    from .models import build_model

    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build_model("small_cnn", "mnist")
        g = torch.Generator().manual_seed(0)
        x, y = torch.rand((128, 1, 28, 28), generator=g), torch.randint(0, 10, (128,), generator=g)
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        times = []
        for i in range(repeats + 2):
            with Stopwatch() as sw:
                opt.zero_grad()
                torch.nn.functional.cross_entropy(model(x), y).backward()
                opt.step()
            times.append(sw.seconds)
    return 1000 * sorted(times[2:])[len(times[2:]) // 2]


def report_time(name: str, seconds: float, step_ms: float) -> str:
    return (f"{name}: {seconds:.0f} s, {1000 * seconds / step_ms:,.0f} reference steps "
            f"({step_ms:.1f} ms each on this machine now)")


def build_book(root: Path, profile: str, force: bool = False) -> None:
    for stale in (root / BOOK_DIR).glob(".tmp-*.ipynb"):  # left by killed runs of older versions
        stale.unlink()
    changed = write_generated(root)
    if changed:
        print(f"book: regenerated from the code: {', '.join(changed)}")
    step_ms = reference_step_ms()
    total = 0.0
    for name in CHAPTERS:
        with Stopwatch() as sw:
            _, ran = execute_chapter(name, profile, root=root, force=force)
        if ran:
            total += sw.seconds
            print(report_time(name, sw.seconds, step_ms))
    if total:
        print(report_time(f"book ({profile}, chapters executed)", total, step_ms))
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb) if jb.exists() else "jupyter-book", "build", str(root), "-W", "-n", "--keep-going"]
    subprocess.run(cmd, check=True)
    print(f"book: {root / '_build' / 'html' / 'index.html'}")


