"""Training and the checkpoint cache: keys, reuse, atomic writes, corrupt files, bad configs."""
import copy
import dataclasses
import os
import pickle

import pytest
import torch

from advlab import training
from advlab.errors import InputError
from advlab.training import TrainConfig, load_or_train, weights_digest

TINY = dict(dataset="mnist", model="mlp", model_options={"hidden": (32,)}, epochs=1, train_subset=512,
            batch_size=64, eval_subset=200)


def test_second_call_trains_nothing_and_returns_the_same_model(tmp_path):
    cfg = TrainConfig(**TINY)
    m1, info1 = load_or_train(cfg, cache_root=tmp_path, progress=False)
    m2, info2 = load_or_train(cfg, cache_root=tmp_path, progress=False)
    assert info1["trained"] and not info2["trained"]
    assert info2["metrics"] == info1["metrics"] and info2["config"] == cfg.to_dict()
    assert set(info2["versions"]) >= {"advlab", "torch", "python"}
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))
    assert not m2.training
    assert [p.name for p in (tmp_path / "models").iterdir()] == [cfg.checkpoint_path(tmp_path).name]


def test_same_config_same_weights_on_cpu_and_global_rng_untouched(tmp_path):
    state = torch.random.get_rng_state()
    a, _ = load_or_train(TrainConfig(**TINY), cache_root=tmp_path / "a", progress=False)
    assert torch.equal(torch.random.get_rng_state(), state)
    b, _ = load_or_train(TrainConfig(**TINY), cache_root=tmp_path / "b", progress=False)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


# another valid value for every field of TrainConfig
OTHER = {"dataset": "fashion-mnist", "model": "small_cnn", "model_options": {"hidden": (64,)}, "epochs": 2,
         "batch_size": 32, "lr": 0.1, "momentum": 0.8, "weight_decay": 1e-4, "schedule": "cosine",
         "label_smoothing": 0.1, "augment": True, "train_subset": 256, "seed": 1, "adv_attack": "fgsm",
         "adv_norm": "l2", "adv_eps": 0.5, "adv_params": {"steps": 3}, "adv_fraction": 0.5, "eval_subset": 100}
ADV = {"adv_attack": "pgd", "adv_norm": "linf", "adv_eps": 0.1}


def test_key_depends_on_every_field():
    fields = [f.name for f in dataclasses.fields(TrainConfig)]
    assert set(fields) == set(OTHER), "OTHER must name every TrainConfig field"
    base = TrainConfig(**TINY, **ADV)
    assert base.key == TrainConfig(**TINY, **ADV).key
    for name in fields:
        change = {name: OTHER[name]}
        if name == "model":
            change["model_options"] = {}
        if name == "adv_params":
            change["adv_attack"] = "pgd"
        cfg = TrainConfig(**{**TINY, **ADV, **change})
        assert cfg.key != base.key, f"the cache key ignores {name}"


def test_train_config_is_hashable_and_copies():
    """Defect 8: a TrainConfig with dict fields could not be hashed (or used as a dict key)."""
    a, b = TrainConfig(**TINY), TrainConfig(**TINY)
    assert hash(a) == hash(b) and len({a, b, TrainConfig(**{**TINY, "seed": 3})}) == 2
    assert copy.deepcopy(a) == a and pickle.loads(pickle.dumps(a)) == a
    assert TrainConfig(**{**TINY, "lr": 1}).lr == 1.0  # int for float, as the chapter schema coerces


def test_truncated_checkpoint_is_detected_and_retrained(tmp_path):
    cfg = TrainConfig(**TINY)
    model, info = load_or_train(cfg, cache_root=tmp_path, progress=False)
    path = cfg.checkpoint_path(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.warns(UserWarning, match="truncated or corrupt.*retraining"):
        again, info2 = load_or_train(cfg, cache_root=tmp_path, progress=False)
    assert info2["trained"]
    # retraining is deterministic: the checkpoint is whole again, with the same weights
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    third, info3 = load_or_train(cfg, cache_root=tmp_path, progress=False)
    assert not info3["trained"]


def test_flipped_weight_bytes_fail_the_digest_and_retrain(tmp_path):
    """Issue 7: bytes flipped inside a tensor (same size, still a valid zip) loaded silently before."""
    cfg = TrainConfig(**TINY)
    model, _ = load_or_train(cfg, cache_root=tmp_path, progress=False)
    path = cfg.checkpoint_path(tmp_path)
    data = bytearray(path.read_bytes())
    w = model.state_dict()["1.layers.1.weight"].contiguous().numpy().tobytes()[:64]
    at = bytes(data).find(w)
    assert at > 0
    data[at:at + 16] = bytes(b ^ 0xFF for b in data[at:at + 16])
    path.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="weights digest.*retraining"):
        again, info = load_or_train(cfg, cache_root=tmp_path, progress=False)
    assert info["trained"]
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


def test_weights_digest_sees_one_changed_value():
    sd = {"w": torch.zeros(3, 3), "b": torch.ones(3)}
    d = weights_digest(sd)
    sd["w"][1, 1] = 1e-30
    assert weights_digest(sd) != d


def test_interrupted_save_leaves_no_temporary_and_stale_ones_are_removed(tmp_path, monkeypatch):
    cfg = TrainConfig(**TINY)
    path = cfg.checkpoint_path(tmp_path)
    path.parent.mkdir(parents=True)
    stale = path.with_name(f".{path.name}.999999999.tmp")  # a process that no longer runs
    stale.write_bytes(b"half")
    legacy = path.with_name(f"{path.name}.abc123.tmp")  # the naming of earlier versions, an hour old
    legacy.write_bytes(b"half")
    os.utime(legacy, (0, 0))

    def killed(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", killed)
    with pytest.raises(KeyboardInterrupt):
        load_or_train(cfg, cache_root=tmp_path, progress=False)
    assert sorted(p.name for p in path.parent.iterdir()) == []
    monkeypatch.undo()
    load_or_train(cfg, cache_root=tmp_path, progress=False)
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask():
    m = os.umask(0)
    os.umask(m)
    return m


def test_checkpoint_for_another_config_is_not_loaded(tmp_path):
    cfg, other = TrainConfig(**TINY), TrainConfig(**{**TINY, "seed": 7})
    load_or_train(other, cache_root=tmp_path, progress=False)
    cfg.checkpoint_path(tmp_path).write_bytes(other.checkpoint_path(tmp_path).read_bytes())
    with pytest.warns(UserWarning, match="another configuration"):
        _, info = load_or_train(cfg, cache_root=tmp_path, progress=False)
    assert info["trained"]


def test_adversarial_training_runs_the_attack_on_the_configured_fraction(tmp_path, monkeypatch):
    """Defect 1: the old test passed with adversarial training switched off (it read the path only)."""
    calls = []
    real = training.run_attack

    def spy(name, model, x, y, **params):
        calls.append((name, x.shape[0], params["threat"]))
        return real(name, model, x, y, **params)

    monkeypatch.setattr(training, "run_attack", spy)
    cfg = TrainConfig(**{**TINY, **ADV, "adv_params": {"steps": 2}, "adv_fraction": 0.5})
    adv_model, info = load_or_train(cfg, cache_root=tmp_path, progress=False)
    assert "adv_pgd_linf_0.1" in info["path"]
    assert len(calls) == 512 // 64  # every batch of every epoch
    assert {c[0] for c in calls} == {"pgd"} and {c[1] for c in calls} == {32}  # half of each batch of 64
    assert calls[0][2].eps == 0.1 and calls[0][2].norm == "linf"
    plain, _ = load_or_train(TrainConfig(**TINY), cache_root=tmp_path, progress=False)
    assert not all(torch.equal(a, b) for a, b in zip(adv_model.state_dict().values(), plain.state_dict().values()))


@pytest.mark.parametrize("change,match", [
    ({"model": "resnet"}, "unknown model"),
    ({"dataset": "imagenet"}, "unknown dataset"),
    ({"model_options": {"depth": 3}}, "unknown option"),
    ({"epochs": 1.5}, "epochs must be int"),
    ({"train_subset": 0}, "train_subset must be a positive int"),
    ({"lr": float("nan")}, "lr must be a finite float"),
    ({"schedule": "step"}, "schedule"),
    ({"adv_attack": "pgd", "adv_norm": "linf", "adv_eps": -0.1}, "eps must be >= 0"),
    ({"adv_attack": "pgd", "adv_norm": "linf", "adv_eps": 0.1, "adv_params": {"stepz": 3}}, "unknown adv_params"),
    ({"adv_attack": "bim", "adv_norm": "linf", "adv_eps": 0.1}, "unknown attack"),
])
def test_bad_configs_are_clear_errors(change, match):
    with pytest.raises(InputError, match=match):
        TrainConfig(**{**TINY, **change})
