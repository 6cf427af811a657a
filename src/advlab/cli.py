"""Command line: run one chapter with a profile and overrides, build the book, refresh references.

    advlab list
    advlab run white-box --profile quick -p eps 0.2 [-o out.ipynb] [--force]
    advlab book [--profile quick] [--force]
    advlab references [white-box ...]
    advlab precompute white-box --profile paper [-p eps 0.2] [--device cuda]
    torchrun --nproc_per_node=K -m advlab precompute white-box --profile paper
    advlab run white-box --profile paper --cached-only

Everything that can be checked is checked before a kernel starts: the chapter and profile, every
parameter's name, type, range and its relations to the others, and the data and cache folders
(made absolute here, so the kernel, which runs in ``notebooks/``, sees the same ones). ``run``
and ``book`` re-execute a chapter only when its notebook, its parameters or the advlab code it
imports changed since the executed copy was written (a key kept in its metadata).
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import textwrap
import threading
from pathlib import Path

import yaml

from .cache import CACHED_ONLY_ENV, cached_only
from .chapters import chapter_names, chapter_plan, get_chapter
from .config import PROFILES, show_value
from .errors import AdvlabError, InputError

# The heavy rooms (execution, the chapters' modules, torch) are imported by the commands that use
# them, so that `advlab --help` and a mistyped command answer at once.

# -- parameters --------------------------------------------------------------------------------------
def _numbers(value):
    """Strings that spell numbers (YAML 1.1 reads ``1e-1`` as one) as numbers, inside lists too."""
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    if isinstance(value, str):
        try:
            return int(value) if value.strip().lstrip("+-").isdigit() else float(value)
        except ValueError:
            pass
    return value


def parse_overrides(pairs) -> dict:
    """``[("eps", "0.2"), ("eps_grid", "[0, 0.1]")]`` -> typed values (YAML scalars and lists).

    Numbers YAML 1.1 reads as strings (``1e-1``) are numbers. ``null`` is refused: in a notebook's
    parameters cell None means "the profile's value", so it cannot also mean "no limit".
    """
    out = {}
    for name, text in pairs or []:
        if name in out:
            raise InputError(f"-p {name} is given twice; give each parameter once (a list is one value: "
                             f"-p {name} '[a, b]')")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as e:
            why = " ".join(str(getattr(e, "problem", None) or e).split())
            raise InputError(f"cannot parse the value of {name}: {text!r} (YAML: {why})") from None
        value = _numbers(value)
        if value is None:
            raise InputError(f"-p {name} {text}: null is not a value here (in a notebook it means 'the profile's "
                             f"value': leave -p {name} out for that); pass 'all' where a parameter allows no limit")
        out[name] = value
    return out


def absolute_paths(chapter: str, overrides: dict) -> dict:
    """Overrides with the chapter's file-path parameters made absolute (relative to the working
    directory here: the notebook's kernel runs in ``notebooks/``); ``book:`` names stay as they are."""
    params = get_chapter(chapter).params
    return {k: (str(Path(v).expanduser().resolve()) if k in params and params[k].path and isinstance(v, str)
                and not v.startswith("book:") else v) for k, v in overrides.items()}


def precompute(name: str, profile: str, overrides: dict | None = None, device: str | None = None,
               progress: bool = True):
    """Train and evaluate everything chapter ``name``'s plan needs into the cache.

    Under torchrun every process runs this: the trainings use DistributedDataParallel and every
    evaluation's blocks are shared out across the processes, rank 0 writing the results.
    Returns the plan's status table (on every rank; rank 0 prints it).
    """
    from . import distributed

    if cached_only():
        raise InputError(f"{CACHED_ONLY_ENV}=1 forbids computing, and precompute computes: unset it for this command")
    cfg = get_chapter(name).resolve(profile, overrides)
    from .execution import book_root, configure_environment
    configure_environment(book_root())  # outside a checkout: the environment, else the user cache
    dev = distributed.init(device)
    ctx = distributed.context()
    try:
        plan = chapter_plan(name, cfg)
        smallest = plan.smallest()
        if smallest is not None and ctx.world > smallest:
            raise InputError(f"{ctx.world} processes but the smallest evaluation of {name} ({profile}) has "
                             f"{smallest} examples: start at most {smallest} (--nproc_per_node)")
        if ctx.main:
            print(f"{name} ({profile}): {len(plan.all_trainings())} trainings, {len(plan.evaluations)} evaluations, "
                  f"{ctx.world} process(es) on {dev.type}")
        status = plan.precompute(dev, progress=progress and ctx.main)
        if ctx.main:
            print(status[["item", "what", "was", "seconds"]].to_string(index=False, float_format="{:.1f}".format))
            computed = int((status.was == "computed").sum())
            print(f"{name}: {computed} computed, {len(status) - computed} already cached")
        return status
    finally:
        distributed.shutdown()


def list_chapters(names=(), width: int = 100) -> None:
    """Each chapter's parameters: name and type, every profile's value, meaning; wrapped to ``width``."""
    def para(text, indent):
        print(textwrap.fill(text, width, initial_indent=indent, subsequent_indent=indent + "  "))

    for c in [get_chapter(n) for n in names or chapter_names()]:
        para(f"{c.name}: {c.title} (notebooks/{c.notebook}); profiles {', '.join(PROFILES)}", "")
        values = {p: c.profile_values(p) for p in PROFILES}
        for k, p in c.params.items():
            para(f"{k} ({p.describe()})", "  ")
            para("   ".join(f"{prof}: {show_value(values[prof][k], p)}" for prof in PROFILES), "      ")
            para(p.doc, "      ")
        for r in c.relations:
            para(f"relation: {r.message}", "  ")
        print()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="advlab", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", metavar="COMMAND", required=True,
                            help="list | run | book | references | precompute (advlab COMMAND --help)")
    chapters, profiles = " | ".join(chapter_names()), " | ".join(PROFILES)
    lst = sub.add_parser("list", help="chapters, their parameters and every profile's values")
    lst.add_argument("chapters", nargs="*", metavar="CHAPTER", help=f"only these ({chapters}); default: all")
    run = sub.add_parser("run", help="execute one chapter")
    run.add_argument("chapter", metavar="CHAPTER", help=chapters)
    run.add_argument("--profile", default="quick", help=f"{profiles} (default: quick); values: advlab list CHAPTER")
    run.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "VALUE"),
                     help="override a parameter (YAML value: 0.2, [0.1, 0.2], mnist, all)")
    run.add_argument("-o", "--output", type=Path, help="executed notebook (default: book/CHAPTER.ipynb)")
    run.add_argument("--force", action="store_true", help="execute even if up to date")
    run.add_argument("--cached-only", action="store_true",
                     help="render from the cache: a missing model or result is an error, never computed")
    book = sub.add_parser("book", help="execute changed chapters and build the HTML book")
    book.add_argument("--profile", default="quick", help=f"{profiles}, for every chapter (default: quick)")
    book.add_argument("--force", action="store_true")
    pre = sub.add_parser("precompute", help="train and evaluate what a chapter needs into the cache "
                                            "(under torchrun: sharded across the processes)")
    pre.add_argument("chapter", metavar="CHAPTER", help=chapters)
    pre.add_argument("--profile", default="quick", help=f"{profiles} (default: quick)")
    pre.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "VALUE"))
    pre.add_argument("--device", choices=("cpu", "cuda"), help="default: CUDA when available")
    ref = sub.add_parser("references", help="re-execute the smoke profile into the nbval references")
    ref.add_argument("chapters", nargs="*")
    args = ap.parse_args(argv)
    from .execution import (REFERENCE_DIR, build_book, execute_chapter, find_root, pinned_environment,
                            raise_on_sigterm, reference_step_ms, report_time)
    from .timing import Stopwatch
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, raise_on_sigterm) if main_thread else None
    try:
        if args.cmd == "list":
            list_chapters(args.chapters)
        elif args.cmd == "run":
            get_chapter(args.chapter)
            if args.cached_only:
                os.environ[CACHED_ONLY_ENV] = "1"  # inherited by the notebook's kernel
            with Stopwatch() as sw:
                _, ran = execute_chapter(args.chapter, args.profile,
                                         absolute_paths(args.chapter, parse_overrides(args.param)), args.output,
                                         force=args.force)
            if ran:
                print(report_time(args.chapter, sw.seconds, reference_step_ms()))
        elif args.cmd == "precompute":
            precompute(args.chapter, args.profile, absolute_paths(args.chapter, parse_overrides(args.param)),
                       args.device)
        elif args.cmd == "book":
            if args.profile not in PROFILES:  # said of the book, not of its first chapter
                raise InputError(f"unknown profile {args.profile!r} for the book; valid: {', '.join(PROFILES)}")
            build_book(find_root(), args.profile, args.force)
        elif args.cmd == "references":
            root = find_root()
            pinned_environment(root)  # the kernels and cache the test suite uses (tests/conftest.py)
            os.environ["TQDM_DISABLE"] = "1"  # nbval runs with it too
            for name in args.chapters or chapter_names():
                execute_chapter(name, "smoke", output=root / REFERENCE_DIR / f"{name}.ipynb", root=root,
                                force=True)
    except AdvlabError as e:
        print(f"advlab: error: {e}", file=sys.stderr)
        return 2
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
    return 0


if __name__ == "__main__":
    sys.exit(main())
