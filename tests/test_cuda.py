"""CUDA against CPU on the same model and examples (skipped without a GPU; `make gpu-check` runs them).

Every registered attack, every training method, IBP/CROWN, randomized smoothing and the results
engine, each compared with the CPU on the same inputs: robust accuracy within 1 point on 200
digits, bounds within 1e-5 in true fp32, no certified example fooled; then the smoke plan of
every chapter precomputed with --device cuda. Random draws come from one CPU generator for both
devices (advlab.rng), so the two runs start from the same points.
"""
import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from advlab import ThreatModel
from advlab.attacks import ATTACKS
from advlab.certify import certified, certify, margin_bounds
from advlab.data import load_dataset
from advlab.evaluate import evaluate_attack
from advlab.models import build_model
from advlab.precision import strict_fp32
from advlab.training import TrainConfig, load_or_train
from advlab.training.methods import METHODS

# ADVLAB_GPU_DRYRUN=1 runs the whole file with the CPU standing in for the GPU (a check of the
# tests themselves before device time is spent on them)
GPU = "cpu" if os.environ.get("ADVLAB_GPU_DRYRUN") == "1" else "cuda"
pytestmark = [pytest.mark.cuda, pytest.mark.skipif(GPU == "cuda" and not torch.cuda.is_available(),
                                                   reason="needs a CUDA GPU (make gpu-check)")]
ROOT = Path(__file__).resolve().parents[1]
N = 200
LINF, L2 = ThreatModel("linf", 0.1), ThreatModel("l2", 1.0)
SMALL = ThreatModel("linf", 0.01)  # what CROWN certifies on a standard-trained small ConvNet
# (threat, parameters) per registered attack, small budgets; a new attack without a row fails below
CASES = {
    "fgsm": (LINF, {}), "pgd": (LINF, {"steps": 10}), "apgd": (LINF, {"steps": 20}),
    "apgd-t": (LINF, {"steps": 10, "targets": 3}),
    "mifgsm": (LINF, {"steps": 10}), "deepfool": (None, {"steps": 20}),
    "cw": (None, {"steps": 30, "binary_search_steps": 2, "initial_const": 1.0}),
    "square": (LINF, {"budget": 200}), "nes": (LINF, {"budget": 200}), "nattack": (LINF, {"budget": 200}),
    "noise": (LINF, {"draws": 4}), "onepixel": (None, {"pixels": 3, "population": 40, "generations": 10}),
    "hsja": (None, {"budget": 300, "steps": 5}), "transfer": (LINF, {}),
}

METHOD_PARAMS = {"standard": {}, "noise": {"sigma": 0.3}, "pgd": {"norm": "linf", "eps": 0.1, "steps": 3},
                 "fgsm": {"eps": 0.1}, "fgsm_rs": {"eps": 0.1}, "mixed": {"eps_linf": 0.1, "eps_l2": 1.0, "steps": 3},
                 "trades": {"eps": 0.1, "steps": 3}, "ibp": {"eps": 0.1}, "crown_ibp": {"eps": 0.1},
                 "deepfool": {"steps": 5}}


@pytest.fixture(scope="module")
def digits():
    return load_dataset("mnist", "test").subset(N, seed=0, stratified=True)


def _on(model, device):
    return copy.deepcopy(model).to(device).eval()


def _rows(model, data, device, name, **extra):
    threat, params = CASES[name]
    params = dict(params)
    if name == "transfer":  # the same surrogate (an untrained small CNN), on the same device
        with torch.random.fork_rng():
            torch.manual_seed(1)
            params["surrogate"] = _on(build_model("small_cnn", "mnist"), device)
    with strict_fp32():
        return evaluate_attack(_on(model, device), data.to(device), attack=name, threat=threat, progress=False,
                               generator=torch.Generator().manual_seed(0), **params, **extra)


def test_every_attack_and_method_has_a_case():
    assert set(CASES) == set(ATTACKS) and set(METHOD_PARAMS) == set(METHODS)


@pytest.mark.parametrize("name", sorted(CASES))
def test_attack_on_cuda_matches_cpu(name, mnist_model, digits):
    cpu, gpu = _rows(mnist_model, digits, "cpu", name), _rows(mnist_model, digits, GPU, name)
    assert list(cpu.example) == list(gpu.example)
    assert abs(cpu.robust.mean() - gpu.robust.mean()) <= 0.01 + 1e-9, (cpu.robust.mean(), gpu.robust.mean())
    assert abs(cpu.success.mean() - gpu.success.mean()) <= 0.01 + 1e-9
    if ATTACKS[name].kind == "minimum-norm":
        med = lambda df: df.l2[df.success].median()
        assert abs(med(cpu) - med(gpu)) <= 0.02 * med(cpu)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_training_method_on_cuda_matches_cpu(method, tmp_path, monkeypatch):
    """One short epoch on 2,000 digits, fp32 on both devices: test accuracy within 5 points of 500.
    The two runs differ in float rounding only, but one epoch of SGD amplifies it (TRADES: 66.4%
    against 70.2% in one H100 run, within 3 points in another)."""
    monkeypatch.setenv("ADVLAB_CACHE", str(tmp_path))
    params = METHOD_PARAMS[method]
    model = "conv_small" if method in ("ibp", "crown_ibp") else "small_cnn"  # the certification chapter's net
    cfg = TrainConfig(dataset="mnist", model=model, epochs=1, train_subset=2000, eval_subset=500, batch_size=100,
                      schedule="cyclic", method=method, method_params=params)
    acc = {}
    for device in ("cpu", GPU):
        _, info = load_or_train(cfg, device=device, progress=False, retrain=True)
        acc[device] = info["metrics"]["test_accuracy"]
        assert info["metrics"]["device"].startswith(device)
    assert abs(acc["cpu"] - acc[GPU]) <= 0.05, acc


@pytest.mark.parametrize("model_name", ["mlp", "conv_small"])
@pytest.mark.parametrize("threat", [ThreatModel("linf", 0.05), ThreatModel("l2", 0.5)], ids=["linf", "l2"])
@pytest.mark.parametrize("method", ["ibp", "crown"])
def test_bounds_on_cuda_match_cpu_in_true_fp32(model_name, threat, method, digits):
    torch.manual_seed(0)
    model = build_model(model_name, "mnist").eval()
    x, y = digits.images()[:50], digits.y[:50]
    # the caller's flags allow TF32 (PyTorch's default for cuDNN): certify must not use it
    torch.backends.cudnn.conv.fp32_precision = torch.backends.cudnn.rnn.fp32_precision = "tf32"
    torch.backends.cuda.matmul.fp32_precision = "tf32"
    try:
        cpu = margin_bounds(model, x, y, threat, method=method).lower
        gpu = margin_bounds(_on(model, GPU), x.to(GPU), y.to(GPU), threat, method=method).lower.cpu()
        assert torch.backends.cudnn.conv.fp32_precision == "tf32"  # restored
    finally:
        for f in (torch.backends.cudnn.conv, torch.backends.cudnn.rnn, torch.backends.cuda.matmul):
            f.fp32_precision = "none"
    torch.testing.assert_close(gpu, cpu, atol=1e-5, rtol=1e-5)


def test_certified_examples_are_never_fooled_on_cuda(mnist_model, digits, tmp_path, monkeypatch):
    monkeypatch.setenv("ADVLAB_CACHE", str(tmp_path))
    cfg = TrainConfig(dataset="mnist", model="conv_small", epochs=2, train_subset=10000, eval_subset=500,
                      batch_size=100)
    model, _ = load_or_train(cfg, device=GPU, progress=False)  # trained on the GPU
    x, y = digits.images().to(GPU), digits.y.to(GPU)
    ok = certified(margin_bounds(model, x, y, SMALL, method="crown"), y)
    assert ok.float().mean() > 0.5
    with strict_fp32():
        rows = evaluate_attack(model, digits.to(GPU), attack="pgd", threat=SMALL, steps=40, restarts=2,
                               progress=False, seed=0)
    assert not rows.success[ok.cpu().numpy()].any()


def test_smoothing_on_cuda_matches_cpu(mnist_model, digits):
    x = digits.images()[:50]
    out = {}
    for device in ("cpu", GPU):
        out[device] = certify(_on(mnist_model, device), x.to(device), sigma=0.25, n0=50, n=500, batch_size=500,
                              generator=torch.Generator().manual_seed(0))
    (pc, rc), (pg, rg) = out["cpu"], [t.cpu() for t in out[GPU]]
    assert (pc == pg).float().mean() >= 0.96 and (rc - rg).abs().max() <= 0.05


def test_results_engine_on_cuda_matches_cpu(tmp_path, monkeypatch):
    from advlab.results import DataSpec, Evaluation, load_or_evaluate

    cfg = TrainConfig(dataset="mnist", model="small_cnn", epochs=1, train_subset=3000, eval_subset=500)
    ev = Evaluation("attack", {"cnn": cfg}, DataSpec("mnist", n=N, seed=3),
                    {"attack": "pgd", "threat": ["linf", 0.1], "steps": 10}, seed=5, block=100)
    tables = {}
    for i, device in enumerate(("cpu", GPU)):
        monkeypatch.setenv("ADVLAB_CACHE", str(tmp_path / str(i)))
        tables[i] = load_or_evaluate(ev, device=device, progress=False)
    assert abs(tables[0].robust.mean() - tables[1].robust.mean()) <= 0.01


@pytest.mark.parametrize("chapter", ["white-box", "black-box", "defenses", "certification"])
def test_smoke_plan_precomputes_on_cuda(chapter, tmp_path):
    """The CIFAR-10 models come from the cache the caller carried (ADVLAB_GPU_CACHE): the training
    split does not travel to a lent GPU; everything else is trained and evaluated here."""
    cache = os.environ.get("ADVLAB_GPU_CACHE")
    if not cache:
        pytest.skip("set ADVLAB_GPU_CACHE to a cache holding the smoke CIFAR-10 checkpoints")
    env = {**os.environ, "ADVLAB_CACHE": cache, "TQDM_DISABLE": "1"}
    out = subprocess.run([sys.executable, "-m", "advlab", "precompute", chapter, "--profile", "smoke",
                          "--device", GPU], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert f"process(es) on {GPU}" in out.stdout


@pytest.mark.parametrize("threat", [LINF, L2], ids=["linf", "l2"])
def test_graphed_pgd_equals_eager_pgd(threat, mnist_model, digits, monkeypatch):
    """ADVLAB_CUDA_GRAPHS=1 replays the eager step's computation: the same pass counts, the same
    verdicts to one example, the iterates equal up to float rounding (cuDNN may choose other
    algorithms under capture: 15 of 156,800 pixels moved by up to 1.6e-3 in one L2 run)."""
    from advlab.attacks import pgd

    model, x, y = _on(mnist_model, GPU), digits.images().to(GPU), digits.y.to(GPU)
    out = {}
    for flag in ("0", "1"):
        monkeypatch.setenv("ADVLAB_CUDA_GRAPHS", flag)
        out[flag] = pgd(model, x, y, threat=threat, steps=10, generator=torch.Generator().manual_seed(0))
    eager, graphed = out["0"], out["1"]
    assert (graphed.x_adv - eager.x_adv).abs().max() <= 0.01
    assert (graphed.success != eager.success).sum() <= 1
    assert (graphed.forwards, graphed.backwards) == (eager.forwards, eager.backwards)


def test_the_threat_scale_lives_on_the_device_once():
    """PGD in per-channel units on the GPU: the scale tensor is made on the device at the first step and
    reused, so the attack loop copies nothing from the host."""
    t = ThreatModel("linf", 0.03, scale=(0.25, 0.26, 0.27))
    x = torch.rand(4, 3, 8, 8, device=GPU)
    first = t._s(x)
    assert first.device == x.device and t._s(x + 1) is first
