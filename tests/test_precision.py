"""Precision as a declared choice (TrainConfig.precision), strict fp32 for certificates whatever the
global TF32 flags, and one generator rule for random draws on any device (issue: the GPU path).

A CPU has no TF32, but the flags exist in every build: these tests set them to "tf32" the way
PyTorch's defaults do on a GPU and check what the code under test sees while it runs.
"""
import pytest
import torch

from advlab import ThreatModel, results
from advlab.results import engine
from advlab.certify import bounds, certify, margin_bounds, smoothadv
from advlab.errors import InputError
from advlab.precision import Autocast, Policy, fp32_modes, strict_fp32
from advlab.rng import normal_like, rand, randint, randn, uniform_like
from advlab.training import TrainConfig, load_or_train

@pytest.fixture
def tf32_everywhere():
    """PyTorch's GPU default for convolutions, extended to matrix products: the worst case for a bound."""
    with Policy("tf32").context():
        yield


def _seen():
    return fp32_modes()


def test_strict_fp32_sets_ieee_and_restores_even_on_error(tf32_everywhere):
    with strict_fp32():
        assert _seen() == ("ieee",) * 3
    assert _seen() == ("tf32",) * 3
    with pytest.raises(RuntimeError), strict_fp32():
        raise RuntimeError("inside")
    assert _seen() == ("tf32",) * 3


class Recorder(torch.nn.Module):
    """A linear classifier that records the TF32 flags of every forward pass."""

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
        self.flags = []

    def forward(self, x):
        self.flags.append(_seen())
        return self.net(x)


def test_certificates_compute_in_ieee_fp32_whatever_the_flags(tf32_everywhere, monkeypatch, batch):
    x, y = batch
    x, y = x[:4], y[:4]
    model = Recorder()
    certify(model, x, sigma=0.25, n0=10, n=20, batch_size=10, generator=torch.Generator().manual_seed(0))
    smoothadv(model, x, y, sigma=0.25, eps=0.5, steps=1, draws=2, seed=0)
    assert model.flags and set(model.flags) == {("ieee",) * 3}
    seen = []
    real = bounds._propagate
    monkeypatch.setattr(bounds, "_propagate", lambda *a, **k: (seen.append(_seen()), real(*a, **k))[1])
    margin_bounds(model.net, x, y, ThreatModel("linf", 0.01), method="crown")
    assert seen and set(seen) == {("ieee",) * 3}
    assert _seen() == ("tf32",) * 3  # restored


def test_evaluation_blocks_compute_in_ieee_fp32(tf32_everywhere, monkeypatch):
    seen = []
    real = results.EVALUATION_KINDS["clean"].fn
    monkeypatch.setitem(results.EVALUATION_KINDS, "clean", results.Kind(
        "clean", lambda models, data, **kw: (seen.append(_seen()), real(models, data, **kw))[1], ""))
    cfg = TrainConfig(dataset="mnist", model="mlp", epochs=1)  # declared only: the block gets the Recorder
    ev = results.Evaluation("clean", {"m": cfg}, results.DataSpec("mnist", n=4, seed=0), {}, block=4)
    engine._run_block(ev, {"m": Recorder()}, ev.data.load(), 0, range(0, 4))
    assert seen == [("ieee",) * 3]
    tf32 = results.Evaluation(**{**ev.__dict__, "precision": "tf32"})  # declared: a profile's speed option
    engine._run_block(tf32, {"m": Recorder()}, ev.data.load(), 0, range(0, 4))
    assert seen[-1] == ("tf32",) * 3


def test_one_policy_for_each_precision():
    """The model computes in the declared precision, everything around it in IEEE fp32 (TF32 for tf32)."""
    net = torch.nn.Linear(3, 2)
    for precision in ("fp32", "bf16"):
        with Policy(precision).context():
            assert _seen() == ("ieee",) * 3 and not torch.is_autocast_enabled("cpu")
    with Policy("tf32").context():
        assert _seen() == ("tf32",) * 3
    assert Policy("fp32").model(net) is net and Policy("tf32").model(net) is net
    fast = Policy("bf16").model(net)
    assert isinstance(fast, Autocast) and Policy("bf16").model(fast) is fast
    seen = []
    hook = net.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    assert fast(torch.ones(1, 3)).dtype == torch.float32 and seen == [torch.bfloat16]
    hook.remove()
    with pytest.raises(InputError, match="unknown precision 'fp16'"):
        Policy("fp16")


def test_train_config_precision_is_declared_and_keyed():
    base = dict(dataset="mnist", model="mlp", epochs=1, train_subset=256, eval_subset=100, batch_size=64,
                schedule="cyclic")
    fp32, bf16 = TrainConfig(**base), TrainConfig(**base, precision="bf16")
    assert fp32.precision == "fp32" and fp32.key != bf16.key
    assert fp32.checkpoint_path() != bf16.checkpoint_path()
    with pytest.raises(InputError, match="precision"):
        TrainConfig(**base, precision="fp16")


@pytest.mark.slow
def test_bf16_training_is_opt_in_on_every_device(tmp_path, monkeypatch):
    """The same config trains in fp32 on a CPU as on a GPU; bf16 (autocast) only when asked for."""
    monkeypatch.setenv("ADVLAB_CACHE", str(tmp_path))
    base = dict(dataset="mnist", model="small_cnn", epochs=1, train_subset=256, eval_subset=100, batch_size=64,
                schedule="cyclic")
    dtypes = {}
    for precision in ("fp32", "bf16"):
        seen = []
        hook = torch.nn.modules.module.register_module_forward_hook(
            lambda m, i, o: seen.append(o.dtype) if isinstance(m, torch.nn.Conv2d) and m.training else None)
        try:
            model, info = load_or_train(TrainConfig(**base, precision=precision), progress=False)
        finally:
            hook.remove()
        dtypes[precision] = set(seen)
        assert info["config"]["precision"] == precision
    assert dtypes == {"fp32": {torch.float32}, "bf16": {torch.bfloat16}}


def test_draws_follow_the_generator_then_move_to_the_data():
    """A CPU generator serves data on another device ('meta' stands in for CUDA here) with the numbers
    it gives on the CPU; no generator uses the global RNG of the data's device."""
    g = lambda: torch.Generator().manual_seed(7)
    on_cpu = torch.rand((3, 4), generator=g())
    moved = rand((3, 4), generator=g(), device="meta")
    assert moved.device.type == "meta" and moved.shape == (3, 4)
    assert torch.equal(rand((3, 4), generator=g(), device="cpu"), on_cpu)
    assert randn(5, generator=g(), device="meta").device.type == "meta"
    assert randint(0, 3, (5,), generator=g(), device="meta").dtype == torch.int64
    x = torch.zeros(2, 3, 4, 4).to(memory_format=torch.channels_last)
    u = uniform_like(x, g())
    assert u.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(u, torch.empty_like(x).uniform_(generator=g()))
    assert normal_like(x.to("meta"), g()).device.type == "meta"
    assert rand(4, device="cpu").shape == (4,)


def test_threat_random_start_takes_a_generator_on_another_device():
    x = torch.full((2, 1, 4, 4), 0.5, device="meta")
    for norm in ("linf", "l2"):
        start = ThreatModel(norm, 0.1).random_start(x, torch.Generator().manual_seed(0))
        assert start.device.type == "meta" and start.shape == x.shape
