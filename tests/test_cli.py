"""The command line as the README documents it: re-running chapters with new parameters.

Bad values fail before a kernel starts; valid ones run to the end; errors inside a chapter come
back as the chapter's own message; nothing half-written lands where the book reads.
"""
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from advlab import execution
from advlab.chapters import CHAPTERS, get_chapter
from advlab.cli import main, parse_overrides

pytestmark = pytest.mark.book  # the checkout's chapters, notebooks or README: not in the library's run

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_kernel(monkeypatch):
    """Fail the test if anything would start a kernel."""
    import papermill

    def started(*a, **k):
        raise AssertionError("a kernel was started")

    monkeypatch.setattr(papermill, "execute_notebook", started)


@pytest.mark.parametrize("args,match", [
    (["-p", "epss", "0.2"], r"unknown parameter\(s\) \['epss'\]"),  # unknown name
    (["-p", "eps", "abc"], r"parameter 'eps' must be float, got 'abc'"),  # type
    (["-p", "eps", "-0.1"], r"parameter 'eps' must be >= 0"),  # range
    (["-p", "n_test", "0"], r"parameter 'n_test' must be >= 1"),
    (["-p", "batch_size", "0"], r"parameter 'batch_size' must be >= 1"),
    (["-p", "pgd_steps", "0"], r"parameter 'pgd_steps' must be >= 1"),
    (["-p", "n_test", "100", "-p", "n_minimal", "500"], r"n_minimal must not exceed n_test"),  # relation
    (["-p", "mnist_train_subset", "null"], r"null is not a value here"),  # explicit None
    (["-p", "eps_grid", "[0, oops"], r"cannot parse the value of eps_grid"),
    (["--profile", "fast"], r"unknown profile 'fast'"),
])
def test_bad_values_fail_before_a_kernel_starts_in_one_paragraph(args, match, no_kernel, capsys):
    assert main(["run", "white-box", "--profile", "smoke", *args]) == 2
    err = capsys.readouterr().err
    assert re.search(match, err), err
    assert err.startswith("advlab: error: ") and err.count("\n") == 1


def test_unknown_chapter_and_missing_data_root(no_kernel, capsys, monkeypatch, tmp_path):
    assert main(["run", "black-and-white"]) == 2
    err = capsys.readouterr().err
    assert "unknown chapter 'black-and-white'; valid: " in err and all(c in err for c in CHAPTERS)
    monkeypatch.setenv("ADVLAB_DATA", str(tmp_path / "nowhere"))
    assert main(["run", "white-box", "--profile", "smoke"]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_validation_imports_no_notebook_machinery(tmp_path):
    """Defect 6: the CLI imported jupytext and papermill before validating parameters."""
    code = ("import sys; from advlab.cli import main; rc = main(['run', 'white-box', '-p', 'eps', '-1']); "
            "print(rc, 'papermill' in sys.modules, 'jupytext' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.split() == ["2", "False", "False"], out.stderr


def test_overrides_parse_numbers_yaml_reads_as_strings():
    assert parse_overrides([("eps", "1e-1"), ("n_test", "+5"), ("dataset", "mnist"), ("mnist_train_subset", "all"),
                            ("eps_grid", "[0, 1e-1]")]) == \
        {"eps": 0.1, "n_test": 5, "dataset": "mnist", "mnist_train_subset": "all", "eps_grid": [0, 0.1]}


def test_list_shows_every_profiles_values_within_100_columns(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 100  # it printed lines of up to 333 characters
    assert all(f"{c}: " in out for c in CHAPTERS)
    i = next(i for i, line in enumerate(lines) if line.strip().startswith("mnist_train_subset"))
    assert lines[i + 1].split() == ["smoke:", "4000", "quick:", "'all'", "paper:", "'all'"]
    assert "relation: n_minimal must not exceed n_test" in out
    assert main(["list", "certification"]) == 0
    one = capsys.readouterr().out
    assert one.startswith("certification: ") and "white-box" not in one
    assert main(["list", "grey-box"]) == 2


def test_help_names_the_commands_chapters_and_profiles(capsys):
    with pytest.raises(SystemExit) as e:
        main([])
    assert e.value.code == 2 and "required: COMMAND" in capsys.readouterr().err  # not "cmd"
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps long help lines
    assert " | ".join(CHAPTERS) in out and "smoke | quick | paper" in out


def test_book_profile_and_repeated_overrides_are_refused_clearly(no_kernel, capsys):
    assert main(["book", "--profile", "fast"]) == 2
    assert "unknown profile 'fast' for the book; valid: smoke, quick, paper" in capsys.readouterr().err
    assert main(["run", "white-box", "-p", "eps", "0.1", "-p", "eps", "0.2"]) == 2
    assert "-p eps is given twice" in capsys.readouterr().err


def test_relative_paths_are_resolved_where_the_user_typed_them(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = {"ADVLAB_DATA": "data", "ADVLAB_CACHE": "cache"}
    execution.configure_environment(ROOT, env)
    assert env == {"ADVLAB_DATA": str(tmp_path / "data"), "ADVLAB_CACHE": str(tmp_path / "cache")}
    env = {}
    execution.configure_environment(ROOT, env)
    shared = ROOT.parent / "shared" / "data"  # the default applies only where that folder exists
    assert env == {**({"ADVLAB_DATA": str(shared.resolve())} if shared.is_dir() else {}),
                   "ADVLAB_CACHE": str(ROOT / ".cache")}


def test_an_interrupted_run_leaves_nothing_where_the_book_reads(tmp_path, monkeypatch):
    """Issue 7: a killed run left book/.tmp-*.ipynb, and the next build failed under -W."""
    import papermill

    def killed(nb, path, **kw):
        Path(path).write_text("{}")  # papermill has started writing its output
        raise KeyboardInterrupt

    monkeypatch.setattr(papermill, "execute_notebook", killed)
    out = tmp_path / "book" / "white-box.ipynb"
    out.parent.mkdir()
    with pytest.raises(KeyboardInterrupt):
        execution.execute_chapter("white-box", "smoke", output=out, root=ROOT, quiet=True)
    assert list(out.parent.iterdir()) == []


def test_toc_is_the_registry():
    assert (ROOT / "_toc.yml").read_text() == execution.toc_text()
    files = [line.split("file: ")[1] for line in execution.toc_text().splitlines() if "file:" in line]
    assert [f.split("/")[-1] for f in files if not f.startswith("book/api/")] == list(CHAPTERS)


def test_an_error_inside_the_chapter_is_its_own_message(tmp_path, monkeypatch, capsys):
    """Issue 7: errors came back as 80-120-line papermill tracebacks."""
    (tmp_path / "data").mkdir()
    monkeypatch.setenv("ADVLAB_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("ADVLAB_DOWNLOAD", "0")
    rc = main(["run", "white-box", "--profile", "smoke", "-o", str(tmp_path / "out.ipynb")])
    err = capsys.readouterr().err
    assert rc == 2
    last = err.splitlines()[-1]  # above it, only papermill's progress bar
    assert re.fullmatch(r"advlab: error: chapter 'white-box' stopped in cell \d+ \(line \d+: .+\): DatasetError: "
                        r"dataset file .*mnist/(train|test).npz is missing\. .* The executed notebook is kept in .*",
                        last), err
    assert "Traceback" not in err
    assert not (tmp_path / "out.ipynb").exists()


# -- the README, verbatim ------------------------------------------------------------------------------
def _readme_rerun_commands():
    """Every command of the section's bash blocks (the advlab lines, then plain papermill), with
    continued lines joined."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Re-running a chapter", 1)[1].split("\n## ", 1)[0]
    blocks = [b.split("```", 1)[0] for b in section.split("```bash")[1:]]
    lines = "\n".join(blocks).replace("\\\n", " ").strip().splitlines()
    return [line.split("  #")[0].strip() for line in lines if line.strip()]


@pytest.mark.slow
def test_readme_rerun_section_works_verbatim(tmp_path):
    """The README's commands, typed as written, in a fresh copy of the repository with the README's
    environment (no ADVLAB_* variables); the model cache is shared with the test run to save time."""
    repo = tmp_path / "advlab"
    shutil.copytree(ROOT, repo, ignore=shutil.ignore_patterns(".venv", ".cache", "_build", ".git", "book/*.ipynb"))
    (repo / ".venv").symlink_to(ROOT / ".venv")
    (repo / ".cache").symlink_to(Path(os.environ["ADVLAB_CACHE"]))
    (tmp_path / "shared").mkdir()  # the README's layout: the data beside the checkout
    (tmp_path / "shared" / "data").symlink_to(Path(os.environ["ADVLAB_DATA"]))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADVLAB_")}
    commands = _readme_rerun_commands()
    assert len(commands) >= 4 and "papermill" in commands[-1]
    for cmd in commands:
        out = subprocess.run(cmd, shell=True, cwd=repo, env=env, capture_output=True, text=True)
        assert out.returncode == 0, f"{cmd}\n{out.stderr[-3000:]}"
        if " run " in cmd and "up to date" not in out.stdout:  # wall time beside this machine's speed
            assert re.search(r"white-box: \d+ s, [\d,]+ reference steps \([\d.]+ ms each", out.stdout), out.stdout
    page = repo / "book" / "white-box.ipynb"
    assert page.is_file() and stat.S_IMODE(page.stat().st_mode) & 0o044 == 0o044  # readable, not 0600
    assert not list((repo / "book").glob(".*"))
    assert not (repo / "notebooks" / "data").exists()  # no stray folders where the kernel runs


@pytest.mark.slow
def test_out_of_profile_values_of_dependent_parameters_run_to_the_end(tmp_path, capsys):
    """Issue 7: a headline ε outside the grid crashed the chapter with KeyError after the kernel started.
    Grids, headline budgets, subsets and the dataset all moved off their profile values at once."""
    out = tmp_path / "wb.ipynb"
    args = ["-p", "eps", "0.25", "-p", "eps_grid", "[0, 0.05, 0.3]", "-p", "dataset", "fashion-mnist",
            "-p", "n_test", "120", "-p", "n_minimal", "12", "-p", "mnist_train_subset", "1500",
            "-p", "cifar_eps_linf", "0.02", "-p", "cifar_linf_grid", "[0, 0.01]", "-p", "cifar_l2_grid", "[0.3]",
            "-p", "cifar_n_test", "30", "-p", "cifar_train_subset", "1000", "-p", "n_show", "3"]
    assert main(["run", "white-box", "--profile", "smoke", *args, "-o", str(out)]) == 0, capsys.readouterr().err
    import nbformat

    nb = nbformat.read(out, as_version=4)
    assert nb.metadata["advlab"]["overrides"]["eps"] == 0.25
    # the prose follows the dataset: its name is glued from the parameters, never typed
    assert "Fashion-MNIST" in out.read_text()
    assert "# ## Three models on {glue:text}`dataset`" in (ROOT / "notebooks" / "white_box.py").read_text()
    assert not any(o.get("output_type") == "error" for c in nb.cells for o in c.get("outputs", []))


def _other_value(param, value):
    """A valid value of ``param`` other than ``value``, at smoke scale."""
    if param.choices:
        return next(c for c in param.choices if c != value)
    if isinstance(param.type, tuple):
        return value[:-1] if len(value) > 1 else value + [value[0] + 0.01]
    if param.type is bool:
        return not value
    if param.type is int:
        return (value or 1000) + 1
    other = value * 1.5 if value else 0.05
    return other if param.maximum is None or other <= param.maximum else value * 0.8


@pytest.mark.exhaustive
@pytest.mark.parametrize("chapter,name", [(c, p) for c in CHAPTERS for p in CHAPTERS[c].params])
def test_every_parameter_overridden_alone_runs_to_the_end(chapter, name, tmp_path):
    """Slow (a chapter run per parameter), left out of CI: pytest -m exhaustive."""
    ch = get_chapter(chapter)
    values = ch.profile_values("smoke")
    value = _other_value(ch.params[name], values[name])
    if name in ("n_minimal", "n_show"):
        value = 3
    out = tmp_path / "out.ipynb"
    assert main(["run", chapter, "--profile", "smoke", "-p", name, repr(value) if isinstance(value, list)
                 else str(value), "-o", str(out)]) == 0


def test_cached_only_checks_the_plan_before_a_kernel_and_names_the_command(no_kernel, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("ADVLAB_CACHE", str(tmp_path))
    monkeypatch.setenv("ADVLAB_CACHED_ONLY", "")  # restored after the test; the CLI sets it to 1
    assert main(["run", "white-box", "--profile", "smoke", "--cached-only", "-p", "eps", "0.2",
                 "-p", "eps_grid", "[0, 0.1]"]) == 2
    err = capsys.readouterr().err
    assert "are not in the cache" in err and "advlab precompute white-box --profile smoke -p eps 0.2 " \
        "-p eps_grid '[0, 0.1]'" in err
    assert main(["precompute", "white-box", "--profile", "smoke"]) == 2  # ADVLAB_CACHED_ONLY=1 still set
    assert "ADVLAB_CACHED_ONLY=1 forbids computing" in capsys.readouterr().err


def test_more_processes_than_cores_are_refused_before_torch_loads():
    """torchrun -m advlab with 64 workers on 2 cores used to load torch 64 times before any check."""
    n = (os.cpu_count() or 1) + 1
    env = {**os.environ, "LOCAL_WORLD_SIZE": str(n), "WORLD_SIZE": str(n), "LOCAL_RANK": "0", "RANK": "0"}
    run = subprocess.run([sys.executable, "-X", "importtime", "-m", "advlab", "precompute", "white-box"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert f"{n} processes on this node but {n - 1} CPU cores: start at most {n - 1}" in run.stderr
    assert not re.search(r"\| +torch$", run.stderr, re.M)  # -X importtime lists every module imported


def test_runs_leave_no_folders_behind(tmp_path, monkeypatch):
    """A killed run used to leave advlab-<chapter>-* folders in the system temp folder for good."""
    monkeypatch.setenv("ADVLAB_CACHE", str(tmp_path))
    dead = tmp_path / "runs" / "white-box-999999999"  # a pid no process has
    dead.mkdir(parents=True)
    work = execution._work_folder("white-box")
    assert not dead.exists() and work.is_dir() and work.name == f"white-box-{os.getpid()}"
    env = {**os.environ, "ADVLAB_CACHE": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "advlab", "run", "white-box", "--profile", "smoke", "--force",
                             "-o", str(tmp_path / "page.ipynb")], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    mine = tmp_path / "runs" / f"white-box-{proc.pid}"
    for _ in range(600):
        if mine.exists() or proc.poll() is not None:
            break
        time.sleep(0.05)
    assert mine.exists()
    proc.terminate()  # SIGTERM, as a scheduler or `kill` sends it
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    assert not mine.exists() and not (tmp_path / "page.ipynb").exists()


def test_reference_step_times_this_machine():
    ms = execution.reference_step_ms(repeats=3)
    assert 0 < ms < 60_000
    assert execution.report_time("defenses", 120.0, 40.0) == "defenses: 120 s, 3,000 reference steps (40.0 ms each on "\
                                                       "this machine now)"


def test_help_answers_without_importing_torch():
    """`advlab --help` took 2.4 s: the chapters' modules, and torch with them, were imported to list
    the chapter names. Now the names are read from the source and torch waits for a command."""
    code = ("import sys, contextlib, io\nfrom advlab.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
            "    try:\n        main(['run', '--help'])\n    except SystemExit:\n        pass\n"
            "assert 'white-box | black-box' in out.getvalue(), out.getvalue()\n"
            "assert 'torch' not in sys.modules and 'pandas' not in sys.modules, sorted(sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]


def test_chapter_names_read_from_source_match_the_registry():
    from advlab.chapters import CHAPTERS, chapter_names

    assert chapter_names() == list(CHAPTERS)


def test_outside_a_checkout_the_user_cache_and_the_installed_notebooks_serve(tmp_path, monkeypatch):
    """No _toc.yml above the working folder: the cache is ~/.cache/advlab, the data root only what the
    environment says, and the chapters are the notebooks the installation carries."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert execution.book_root() is None
    with pytest.raises(execution.AdvlabError, match="no advlab book"):
        execution.find_root()
    env = {}
    execution.configure_environment(None, env)
    assert env == {"ADVLAB_CACHE": str(tmp_path / "home" / ".cache" / "advlab")}
    env = {"ADVLAB_DATA": "data", "ADVLAB_CACHE": "c"}
    execution.configure_environment(None, env)
    assert env == {"ADVLAB_DATA": str(tmp_path / "data"), "ADVLAB_CACHE": str(tmp_path / "c")}
    found = execution.notebooks_dir(None)
    assert {ch.notebook for ch in CHAPTERS.values()} <= {p.name for p in found.glob("*.py")}
