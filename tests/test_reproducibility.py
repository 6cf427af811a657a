"""Pinned CPU kernels: one short training gives the same weights whatever the machine's own kernel choice."""
import os
import subprocess
import sys

import pytest

from advlab.reproducibility import PIN_ENV, PINNED_KERNELS, pin_cpu_kernels, pinnable

# Five SGD steps of the chapters' CIFAR-10 VGG (width 0.125, batch norm): the model whose smoke
# numbers moved between an AVX2 and an AVX-512 machine. Prints the sha256 of the weights.
SCRIPT = """
import sys
from advlab.reproducibility import pin_cpu_kernels, check_pinned
pin_cpu_kernels()
import torch
check_pinned()
from advlab.models import build_model
from advlab.training import weights_digest
torch.manual_seed(0)
model = build_model("vgg11", "cifar10", width=0.125)
g = torch.Generator().manual_seed(1)
x, y = torch.rand((32, 3, 32, 32), generator=g), torch.randint(0, 10, (32,), generator=g)
opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
for _ in range(5):
    opt.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
print(torch.backends.cpu.get_cpu_capability(), torch.get_num_threads(), weights_digest(model.state_dict()))
"""
# Two machines as the libraries see them: this CPU's own best kernels on three threads, and an
# AVX2-only machine on one thread with MKL's automatic branch.
SETTINGS = {
    "native ISA, 3 threads": {"OMP_NUM_THREADS": "3"},
    "AVX2 (ATen, oneDNN), MKL auto, 1 thread": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
                                                "MKL_CBWR": "AUTO", "OMP_NUM_THREADS": "1"},
}


def _train(setting: dict, pin: bool) -> tuple[str, str, str]:
    env = {k: v for k, v in os.environ.items() if k not in PINNED_KERNELS and k != PIN_ENV}
    env.update(setting, **({} if pin else {PIN_ENV: "0"}))
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True)
    return tuple(out.stdout.split())


@pytest.mark.slow
@pytest.mark.skipif(not pinnable(), reason="the pin is for x86-64 kernels")
def test_pinned_training_is_bitwise_the_same_under_two_kernel_settings():
    (a, b) = SETTINGS
    free = {name: _train(s, pin=False) for name, s in SETTINGS.items()}
    # the settings matter: unpinned, the two trainings differ (otherwise the check below is vacuous)
    assert free[a][1:] != free[b][1:], f"unpinned {a}: {free[a]}; {b}: {free[b]}"
    assert free[a][2] != free[b][2], f"unpinned trainings under {a!r} and {b!r} gave the same weights"
    pinned = {name: _train(s, pin=True) for name, s in SETTINGS.items()}
    assert pinned[a] == pinned[b] == ("AVX2", PINNED_KERNELS["OMP_NUM_THREADS"], pinned[a][2]), pinned


def test_pin_overrides_the_environment_and_can_be_turned_off():
    env = {"ATEN_CPU_CAPABILITY": "avx512", "OMP_NUM_THREADS": "8"}
    assert pin_cpu_kernels(env, machine="x86_64") == PINNED_KERNELS
    assert {k: env[k] for k in PINNED_KERNELS} == PINNED_KERNELS
    off = {PIN_ENV: "0", "ATEN_CPU_CAPABILITY": "avx512"}
    assert pin_cpu_kernels(off, machine="x86_64") == {} and off["ATEN_CPU_CAPABILITY"] == "avx512"
    arm = {}
    assert pin_cpu_kernels(arm, machine="aarch64") == {} and arm == {}


def test_tests_run_pinned_with_their_own_cache():
    """conftest pinned this process before its first tensor operation, and keeps its models apart."""
    import torch

    from advlab.cache import CACHE_ENV

    if not pinnable():
        pytest.skip("the pin is for x86-64 kernels")
    assert torch.backends.cpu.get_cpu_capability() == "AVX2"
    assert torch.get_num_threads() == int(PINNED_KERNELS["OMP_NUM_THREADS"])
    assert os.path.basename(os.environ[CACHE_ENV]) == "pinned"


def test_an_unpinned_process_cannot_write_into_the_pinned_cache(tmp_path, monkeypatch):
    """A plain papermill run pointed at .cache/pinned trained models there with the machine's own
    kernels, under the pinned models' keys, and the references moved."""
    from advlab.cache import cache_root
    from advlab.errors import InputError

    if not pinnable():
        pytest.skip("the pin is for x86-64 kernels")
    assert cache_root(tmp_path / "pinned") == tmp_path / "pinned"  # this process is pinned
    monkeypatch.setenv("MKL_CBWR", "AUTO")
    with pytest.raises(InputError, match="holds the test suite's models, computed with pinned CPU kernels"):
        cache_root(tmp_path / "pinned")
    assert cache_root(tmp_path / "book") == tmp_path / "book"  # any other folder: the machine's own kernels
