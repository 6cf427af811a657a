"""The distributed path on CPU: torchrun with 2 gloo processes against one process, end to end.

One precompute of the white-box chapter's smoke profile with ``torchrun --nproc_per_node=2``
(DDP training, sharded evaluations), then: the per-example tables equal a single process's bit
for bit (same models, one thread per process as torchrun sets), DDP's weights match
single-process training with the same global batch, a second precompute computes nothing, and
the chapter renders from the cache alone.
"""
import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest
import torch

from advlab.chapters import chapter_plan, get_chapter
from advlab.results import load_result, timing_columns

pytestmark = pytest.mark.book  # the checkout's chapters, notebooks or README: not in the library's run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHAPTER, PROFILE = "white-box", "smoke"


def _env(cache, **extra):
    # every process of these comparisons alike: one thread (as torchrun sets) and MKL's automatic
    # branch; its reproducible COMPATIBLE branch (the test suite's pin) rounds a half batch's
    # products differently enough that one epoch drifts by 1e-4 from the whole batch's
    env = {**os.environ, "ADVLAB_CACHE": str(cache), "OMP_NUM_THREADS": "1", "MKL_CBWR": "AUTO", "TQDM_DISABLE": "1",
           **extra}
    env.pop("ADVLAB_CACHED_ONLY", None)
    return env


def _torchrun(cache, *args, nproc=2):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "advlab", "precompute", CHAPTER, "--profile", PROFILE, "--device", "cpu", *args]
    return subprocess.run(cmd, env=_env(cache), cwd=ROOT, capture_output=True, text=True, timeout=600)


def _advlab(cache, *args, **extra):
    return subprocess.run([sys.executable, "-m", "advlab", *args], env=_env(cache, **extra), cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    cache = tmp_path_factory.mktemp("sharded")
    run = _torchrun(cache)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "2 process(es) on cpu" in run.stdout and "0 already cached" in run.stdout
    return cache


def _plan():
    return chapter_plan(CHAPTER, get_chapter(CHAPTER).resolve(PROFILE))


def test_sharded_tables_equal_one_process(sharded, tmp_path):
    single = tmp_path / "single"
    shutil.copytree(sharded / "models", single / "models")  # the same weights: only the sharding differs
    run = _advlab(single, "precompute", CHAPTER, "--profile", PROFILE, "--device", "cpu")
    assert run.returncode == 0, run.stderr[-3000:]
    plan = _plan()
    for name, ev in plan.evaluations.items():
        a, b = load_result(ev, cache_root=sharded), load_result(ev, cache_root=single)
        assert a is not None and b is not None, name
        assert len(a) == len(ev.data.load()) * (len(a) // len(ev.data.load())), name
        keep = [c for c in a.columns if c not in timing_columns(a)]
        pd.testing.assert_frame_equal(a[keep], b[keep], check_exact=True, obj=name)


def test_ddp_training_matches_one_process(sharded, tmp_path):
    """Same global batch, gradients all-reduced: the weights agree to float rounding (no batch norm
    in these models; torch synchronises batch norm on GPUs only)."""
    plan, names = _plan(), ("mnist mlp", "mnist small_cnn", "mnist lenet5")
    script = (f"from advlab.chapters import chapter_plan, get_chapter\nfrom advlab.training import load_or_train\n"
              f"plan = chapter_plan({CHAPTER!r}, get_chapter({CHAPTER!r}).resolve({PROFILE!r}))\n"
              f"for n in {names!r}:\n    assert load_or_train(plan.trainings[n], progress=False)[1]['trained']\n")
    one = subprocess.run([sys.executable, "-c", script], env=_env(tmp_path), cwd=ROOT, capture_output=True,
                         text=True, timeout=600)
    assert one.returncode == 0, one.stderr[-3000:]
    for name in names:
        cfg = plan.trainings[name]
        ddp = torch.load(cfg.checkpoint_path(sharded), weights_only=True)
        single = torch.load(cfg.checkpoint_path(tmp_path), weights_only=True)
        assert ddp["metrics"]["processes"] == 2 and single["metrics"]["processes"] == 1
        for k, v in single["state_dict"].items():
            torch.testing.assert_close(ddp["state_dict"][k], v, atol=1e-5, rtol=1e-4, msg=f"{name}.{k}")


def test_second_run_computes_nothing_and_the_chapter_renders_from_the_cache(sharded, tmp_path):
    again = _torchrun(sharded)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "0 computed" in again.stdout
    before = sorted(p.name for p in (sharded / "results").glob("*.pt"))
    out = tmp_path / "page.ipynb"
    run = _advlab(sharded, "run", CHAPTER, "--profile", PROFILE, "--cached-only", "--force", "-o", str(out))
    assert run.returncode == 0, run.stderr[-3000:]
    assert out.exists()
    assert sorted(p.name for p in (sharded / "results").glob("*.pt")) == before


def test_cached_only_run_names_what_is_missing(tmp_path):
    run = _advlab(tmp_path, "run", CHAPTER, "--profile", PROFILE, "--cached-only", "--force",
                  "-o", str(tmp_path / "page.ipynb"))
    assert run.returncode == 2 and "advlab precompute white-box --profile smoke" in run.stderr


def test_more_processes_than_examples_is_refused(tmp_path):
    run = _torchrun(tmp_path, "-p", "n_minimal", "1")
    assert run.returncode != 0
    assert "start at most 1 (--nproc_per_node)" in run.stdout + run.stderr


@pytest.mark.parametrize("args,message", [
    (["precompute", "whitebox"], "unknown chapter"),
    (["precompute", CHAPTER, "--profile", "huge"], "unknown profile"),
    (["precompute", CHAPTER, "-p", "epz", "0.1"], "unknown parameter"),
])
def test_precompute_bad_input(tmp_path, args, message):
    run = _advlab(tmp_path, *args)
    assert run.returncode == 2 and message in run.stderr


WORKER = """
import sys, torch
from advlab import distributed
from advlab.training import TrainConfig, train
distributed.init("cpu")
methods = [("ibp", {"eps": 0.1, "warmup": 0.2, "ramp": 0.4}), ("pgd", {"norm": "linf", "eps": 0.1, "steps": 2})]
for method, params in methods:
    cfg = TrainConfig(dataset="mnist", model="conv_small", epochs=1, train_subset=600, batch_size=60,
                      method=method, method_params=params, eval_subset=100)
    model, metrics = train(cfg, progress=False)
    if distributed.context().main:
        torch.save(model.state_dict(), f"{sys.argv[1]}/{method}-{metrics['processes']}.pt")
distributed.shutdown()
"""


def test_ddp_adversarial_training(tmp_path):
    """IBP and PGD training run under DDP (attacks and bounds through the wrapped model); IBP, which
    draws nothing at random, gives one process's weights; PGD's random starts are drawn per slice."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    for nproc in (1, 2):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               str(script), str(tmp_path)]
        run = subprocess.run(cmd, env=_env(tmp_path), cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stderr[-3000:]
    one, two = (torch.load(tmp_path / f"ibp-{k}.pt", weights_only=True) for k in (1, 2))
    for k in one:
        torch.testing.assert_close(two[k], one[k], atol=1e-5, rtol=1e-4, msg=k)
    pgd = torch.load(tmp_path / "pgd-2.pt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in pgd.values())
