"""Command line: run one chapter with a profile and overrides, build the book, refresh references.

    advlab list
    advlab run white-box --profile quick -p eps 0.2 [-o out.ipynb] [--force]
    advlab book [--profile quick] [--force]
    advlab references [white-box ...]

``run`` and ``book`` re-execute a chapter only when its notebook source, its parameters or the
advlab library changed since the executed copy was written (a key kept in its metadata).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from .cache import config_key
from .chapters import CHAPTERS, get_chapter
from .errors import AdvlabError

BOOK_DIR = "book"
REFERENCE_DIR = Path("tests") / "notebooks"


def find_root(start: Path | None = None) -> Path:
    """The repository root: the nearest folder upwards holding ``_toc.yml`` and ``notebooks/``."""
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / "_toc.yml").is_file() and (d / "notebooks").is_dir():
            return d
    raise AdvlabError(f"no advlab book (a folder with _toc.yml and notebooks/) at or above {here}")


def library_hash() -> str:
    pkg = Path(__file__).parent
    h = hashlib.sha256()
    for f in sorted(pkg.rglob("*.py")):
        h.update(f.relative_to(pkg).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def parse_overrides(pairs) -> dict:
    """``[("eps", "0.2"), ("eps_grid", "[0, 0.1]")]`` -> typed values (YAML scalars and lists)."""
    out = {}
    for name, text in pairs or []:
        try:
            out[name] = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise AdvlabError(f"cannot parse the value of {name}: {text!r} ({e})") from e
    return out


def execute_chapter(name: str, profile: str, overrides: dict | None = None, output: Path | None = None,
                    root: Path | None = None, force: bool = False, quiet: bool = False) -> tuple[Path, bool]:
    """Execute chapter ``name`` with papermill; returns ``(output path, whether it ran)``."""
    import jupytext
    import nbformat
    import papermill

    root = root or find_root()
    chapter = get_chapter(name)
    overrides = dict(overrides or {})
    chapter.resolve(profile, overrides)  # fail on bad names or types before starting a kernel
    source = root / "notebooks" / chapter.notebook
    output = Path(output) if output else root / BOOK_DIR / f"{name}.ipynb"
    key = config_key({"source": source.read_text(), "profile": profile, "overrides": overrides,
                      "library": library_hash()})
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
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=output.parent, prefix=".tmp-", suffix=".ipynb")
    os.close(fd)
    try:
        if not quiet:
            print(f"{name}: executing with profile {profile!r} {overrides or ''} -> {output}")
        executed = papermill.execute_notebook(
            nb, tmp, parameters={"profile": profile, **overrides}, kernel_name="python3",
            cwd=str(root / "notebooks"), progress_bar=not quiet, log_output=False)
        executed.metadata["advlab"] = {"chapter": name, "profile": profile, "overrides": overrides, "key": key}
        nbformat.write(executed, tmp)
        os.replace(tmp, output)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return output, True


def build_book(root: Path, profile: str, force: bool = False) -> None:
    for name in CHAPTERS:
        execute_chapter(name, profile, root=root, force=force)
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb) if jb.exists() else "jupyter-book", "build", str(root), "-W", "-n", "--keep-going"]
    subprocess.run(cmd, check=True)
    print(f"book: {root / '_build' / 'html' / 'index.html'}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="advlab", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="chapters, their parameters and profiles")
    run = sub.add_parser("run", help="execute one chapter")
    run.add_argument("chapter")
    run.add_argument("--profile", default="quick")
    run.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "VALUE"),
                     help="override a parameter (YAML value: 0.2, [0.1, 0.2], mnist)")
    run.add_argument("-o", "--output", type=Path, help="executed notebook (default: book/CHAPTER.ipynb)")
    run.add_argument("--force", action="store_true", help="execute even if up to date")
    book = sub.add_parser("book", help="execute changed chapters and build the HTML book")
    book.add_argument("--profile", default="quick")
    book.add_argument("--force", action="store_true")
    ref = sub.add_parser("references", help="re-execute the smoke profile into the nbval references")
    ref.add_argument("chapters", nargs="*")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "list":
            for c in CHAPTERS.values():
                print(f"{c.name}: {c.title} (notebooks/{c.notebook}); profiles: {', '.join(c.profiles)}")
                for k, p in c.params.items():
                    print(f"  {k:14s} {p.describe():28s} {p.doc}")
        elif args.cmd == "run":
            execute_chapter(args.chapter, args.profile, parse_overrides(args.param), args.output,
                            force=args.force)
        elif args.cmd == "book":
            build_book(find_root(), args.profile, args.force)
        elif args.cmd == "references":
            root = find_root()
            os.environ["TQDM_DISABLE"] = "1"  # nbval runs with it too (tests/conftest.py)
            for name in args.chapters or CHAPTERS:
                execute_chapter(name, "smoke", output=root / REFERENCE_DIR / f"{name}.ipynb", root=root,
                                force=True)
    except AdvlabError as e:
        print(f"advlab: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
