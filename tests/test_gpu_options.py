"""GPU efficiency options, checked on CPU: each is honoured, and none changes a CPU result."""
import pytest
import torch

from advlab import ThreatModel
from advlab.attacks import run_attack
from advlab.data import copy_to
from advlab.models import build_model, to_device

SYNCS = ("item", "tolist", "__bool__", "__int__", "__float__")


def test_channels_last_only_on_cuda_by_default():
    torch.manual_seed(0)
    model = build_model("small_cnn", "mnist")
    x = torch.rand(8, 1, 28, 28)
    ref = model(x)
    cpu = to_device(model, "cpu")
    conv = cpu[1].features[0].weight
    assert conv.is_contiguous() and torch.equal(cpu(x), ref)  # the default leaves CPU results alone
    forced = to_device(model, "cpu", channels_last=True)
    assert forced[1].features[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(forced(x), ref, atol=1e-5)
    mlp = to_device(build_model("mlp", "mnist"), "cpu", channels_last=True)  # no convolution: unchanged
    assert all(p.is_contiguous() for p in mlp.parameters())


def test_host_to_gpu_transfers_are_pinned(monkeypatch):
    t = torch.arange(6)
    assert not copy_to(t, "cpu").is_pinned()
    calls = []
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda self: calls.append("pin") or self)
    real_to = torch.Tensor.to

    def fake_to(self, *args, **kwargs):
        calls.append(("to", str(args[0]), kwargs.get("non_blocking")))
        return real_to(self, "cpu")
    monkeypatch.setattr(torch.Tensor, "to", fake_to)
    copy_to(t, "cuda")
    assert calls == ["pin", ("to", "cuda", True)]


def _syncs(monkeypatch, fn) -> int:
    """Host-device synchronisations (a tensor read on the host) during ``fn()``."""
    count = [0]
    for name in SYNCS:
        real = getattr(torch.Tensor, name)

        def counted(self, *a, _real=real, **k):
            count[0] += 1
            return _real(self, *a, **k)
        monkeypatch.setattr(torch.Tensor, name, counted)
    try:
        fn()
    finally:
        monkeypatch.undo()
    return count[0]


@pytest.mark.parametrize("attack,params", [
    ("pgd", {"threat": ThreatModel("linf", 0.1)}), ("pgd", {"threat": ThreatModel("l2", 1.0)}),
    ("mifgsm", {"threat": ThreatModel("linf", 0.1)}), ("apgd", {"threat": ThreatModel("linf", 0.1)}),
    ("cw", {"binary_search_steps": 1}), ("deepfool", {}),
])
def test_no_host_sync_per_attack_step(monkeypatch, mnist_model, batch, attack, params):
    """The number of host reads does not grow with the number of steps (none inside the loop)."""
    x, y = batch
    counts = [_syncs(monkeypatch, lambda s=s: run_attack(attack, mnist_model, x, y, steps=s,
                                                         generator=torch.Generator().manual_seed(0), **params))
              for s in (3, 9)]
    assert counts[0] == counts[1], f"{attack}: {counts[0]} host reads at 3 steps, {counts[1]} at 9"


def test_sync_counter_sees_host_reads(monkeypatch):
    t = torch.ones(3)
    assert _syncs(monkeypatch, lambda: [t.sum().item(), bool(t.all()), float(t[0]), t.tolist()]) == 4
