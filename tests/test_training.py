"""Training and the checkpoint cache: keys, reuse, atomic writes, corrupt files, bad configs."""
import copy
import dataclasses
import math
import os
import pickle

import pytest
import torch

from advlab import ThreatModel, training
from advlab.errors import InputError
from advlab.training import TrainConfig, load_or_train, methods, weights_digest

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
         "label_smoothing": 0.1, "augment": True, "train_subset": 256, "seed": 1, "method": "fgsm",
         "method_params": {"norm": "linf", "eps": 0.2}, "init": TrainConfig(**TINY), "monitor": 100,
         "eval_subset": 100, "precision": "bf16"}
ADV = {"method": "pgd", "method_params": {"norm": "linf", "eps": 0.1}}


def test_key_depends_on_every_field():
    fields = [f.name for f in dataclasses.fields(TrainConfig)]
    assert set(fields) == set(OTHER), "OTHER must name every TrainConfig field"
    base = TrainConfig(**TINY, **ADV)
    assert base.key == TrainConfig(**TINY, **ADV).key
    for name in fields:
        change = {name: OTHER[name]}
        if name == "model":
            change["model_options"] = {}
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


def test_adversarial_training_attacks_the_configured_fraction_in_eval_mode(tmp_path, monkeypatch):
    """The inner maximisation runs on the configured share of every batch, with the model in eval mode."""
    calls = []
    real = methods.pgd_inner

    def spy(model, x, y, threat, steps, step_size, random_start, generator):
        calls.append((x.shape[0], threat, steps, step_size, model.training))
        return real(model, x, y, threat, steps, step_size, random_start, generator)

    monkeypatch.setattr(methods, "pgd_inner", spy)
    cfg = TrainConfig(**{**TINY, "method": "pgd", "method_params": {"norm": "linf", "eps": 0.1, "steps": 2,
                                                                    "fraction": 0.5}})
    adv_model, info = load_or_train(cfg, cache_root=tmp_path, progress=False)
    assert "pgd_linf_0.1" in info["path"]
    assert len(calls) == 512 // 64  # every batch of every epoch
    assert {c[0] for c in calls} == {32}  # half of each batch of 64
    assert calls[0][1] == ThreatModel("linf", 0.1) and calls[0][2] == 2 and calls[0][3] == pytest.approx(0.125)
    metrics = info["metrics"]
    assert metrics["forwards"] == 512 + 2 * 256 and metrics["backwards"] == 512 + 2 * 256
    plain, _ = load_or_train(TrainConfig(**TINY), cache_root=tmp_path, progress=False)
    assert not all(torch.equal(a, b) for a, b in zip(adv_model.state_dict().values(), plain.state_dict().values()))


def test_inner_maximisation_leaves_parameters_gradients_and_mode_alone():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10), torch.nn.BatchNorm1d(10))
    model.train()
    before = copy.deepcopy(model.state_dict())
    x, y = torch.rand(8, 1, 28, 28), torch.arange(8)
    x_adv = methods.pgd_inner(model, x, y, ThreatModel("linf", 0.1), 3, 0.05, True, torch.Generator().manual_seed(0))
    assert model.training and all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BN statistics too
    assert ThreatModel("linf", 0.1).contains(x, x_adv).all() and 0 <= x_adv.min() and x_adv.max() <= 1


@pytest.mark.parametrize("method,params", [
    ("fgsm", {"eps": 0.1}), ("fgsm_rs", {"eps": 0.1}), ("trades", {"eps": 0.1, "steps": 2}),
    ("mixed", {"eps_linf": 0.1, "eps_l2": 1.0, "steps": 2}),
    ("mixed", {"eps_linf": 0.1, "eps_l2": 1.0, "steps": 2, "strategy": "alternate"}),
    ("noise", {"sigma": 0.25}), ("deepfool", {"steps": 3, "scale": 2.0}),
])
def test_every_method_trains_reproducibly(tmp_path, method, params):
    cfg = TrainConfig(**{**TINY, "train_subset": 320, "method": method, "method_params": params})
    a, info = load_or_train(cfg, cache_root=tmp_path / "a", progress=False)
    b, _ = load_or_train(cfg, cache_root=tmp_path / "b", progress=False)
    assert all(torch.equal(u, v) for u, v in zip(a.state_dict().values(), b.state_dict().values()))
    m = info["metrics"]
    assert m["forwards"] >= 320 and m["backwards"] >= 320 and len(m["history"]) == 1
    assert math.isfinite(m["train_loss"])


def test_fine_tuning_starts_from_the_base_model(tmp_path):
    base = TrainConfig(**TINY)
    tuned = TrainConfig(**{**TINY, "lr": 0.025, "schedule": "constant", "init": base, "method": "fgsm",
                           "method_params": {"eps": 0.1}})
    model_base, _ = load_or_train(base, cache_root=tmp_path, progress=False)
    model, info = load_or_train(tuned, cache_root=tmp_path, progress=False)
    assert "finetuned" in info["path"] and info["config"]["init"] == base.to_dict()
    # one epoch of fine-tuning moves the weights, but stays close to the base (a fresh model would not)
    fresh, _ = load_or_train(TrainConfig(**{**TINY, "seed": 5}), cache_root=tmp_path, progress=False)
    w, w0, wf = (m.state_dict()["1.layers.1.weight"] for m in (model, model_base, fresh))
    assert 0 < (w - w0).norm() < (wf - w0).norm()
    with pytest.raises(InputError, match="same dataset, model"):
        TrainConfig(**{**TINY, "model": "small_cnn", "model_options": {}, "init": base})


def test_monitor_keeps_the_best_epoch_and_flags_catastrophic_overfitting(tmp_path, monkeypatch):
    """A held-out PGD accuracy that collapses is reported and the best epoch's weights are kept.

    The collapse is planted through the monitor (a real catastrophic-overfitting run is the
    chapter's and ``tests/test_defenses_chapter.py``'s subject); what is tested here is the
    bookkeeping: the warning, the flag, the epoch, and which weights come back.
    """
    script = iter([0.6, 0.7, 0.1])
    states = []
    from advlab.training import monitor as room
    real = room.held_out_accuracy

    def planted(model, held, threat, seed):
        states.append(copy.deepcopy(model.state_dict()))
        v = next(script)
        return {**real(model, held, threat, seed), "holdout_pgd": v, "holdout_fgsm": v}

    monkeypatch.setattr(room, "held_out_accuracy", planted)
    cfg = TrainConfig(**{**TINY, "epochs": 3, "monitor": 64, **ADV})
    with pytest.warns(UserWarning, match="catastrophic overfitting.*at epoch 3.*keeping epoch 2"):
        model, info = load_or_train(cfg, cache_root=tmp_path, progress=False)
    m = info["metrics"]
    assert m["catastrophic_overfitting"] and m["overfitting_epoch"] == 3 and m["best_epoch"] == 2
    assert [h["holdout_pgd"] for h in m["history"]] == [0.6, 0.7, 0.1]
    assert all(torch.equal(states[1][k], v) for k, v in model.state_dict().items())


def test_overfitting_is_a_pgd_collapse_or_an_fgsm_pgd_gap():
    h = [{"epoch": 1, "holdout_fgsm": 0.5, "holdout_pgd": 0.4}, {"epoch": 2, "holdout_fgsm": 0.6, "holdout_pgd": 0.5},
         {"epoch": 3, "holdout_fgsm": 0.6, "holdout_pgd": 0.29}, {"epoch": 4, "holdout_fgsm": 0.9, "holdout_pgd": 0.59}]
    assert training.overfitting_epochs(h) == [3]
    assert training.overfitting_epochs(h[:2]) == []
    # a model that beats the single step but not PGD from the start (FGSM training at a large ε)
    assert training.overfitting_epochs([{"epoch": 1, "holdout_fgsm": 0.45, "holdout_pgd": 0.05}]) == [1]
    # early adversarial training: weak under PGD but not collapsed
    assert training.overfitting_epochs([{"epoch": 1, "holdout_fgsm": 0.7, "holdout_pgd": 0.18}]) == []


def test_monitor_examples_are_held_out_of_training(tmp_path):
    cfg = TrainConfig(**{**TINY, "train_subset": None, "monitor": 500, **ADV})
    from advlab.training.monitor import split_held_out
    train_set, held = split_held_out(cfg, "cpu")
    assert len(held) == 500 and len(train_set) == 60000 - 500
    assert not set(held.indices.tolist()) & set(train_set.indices.tolist())


@pytest.mark.parametrize("change,match", [
    ({"model": "resnet"}, "unknown model"),
    ({"dataset": "imagenet"}, "unknown dataset"),
    ({"model_options": {"depth": 3}}, "unknown option"),
    ({"epochs": 1.5}, "epochs must be int"),
    ({"train_subset": 0}, "train_subset must be a positive int"),
    ({"lr": float("nan")}, "lr must be a finite float"),
    ({"schedule": "step"}, "schedule"),
    ({"method": "bim"}, "unknown training method 'bim'"),
    ({"method": "pgd", "method_params": {"norm": "linf"}}, "'pgd' needs eps"),
    ({"method": "fgsm_rs"}, "'fgsm_rs' needs eps"),
    ({"method": "pgd", "method_params": {"norm": "linf", "eps": -0.1}}, "eps must be a finite number >= 0"),
    ({"method": "pgd", "method_params": {"norm": "linf", "eps": 0.1, "beta": 6.0}}, r"\['beta'\] do not apply to"),
    ({"method": "standard", "method_params": {"eps": 0.1}}, "do not apply to training method 'standard'"),
    ({"method": "pgd", "method_params": {"norm": "l3", "eps": 0.1}}, "unknown pgd.norm"),
    ({"method": "pgd", "method_params": {"norm": "linf", "eps": 0.1, "fraction": 1.5}}, r"fraction .* \[0, 1\]"),
    ({"method": "pgd", "method_params": {"norm": "linf", "eps": 0.1, "fraction": -0.5}}, r"fraction .* \[0, 1\]"),
    ({"method": "mixed", "method_params": {"eps_linf": 0.1, "eps_l2": 1.0, "strategy": "min"}}, "strategy"),
    ({"method": "noise", "method_params": {"sigma": -0.1}}, "sigma must be"),
    ({"monitor": 100}, "'standard' has none"),
    ({"init": "base"}, "init must be a TrainConfig"),
])
def test_bad_configs_are_clear_errors(change, match):
    with pytest.raises(InputError, match=match):
        TrainConfig(**{**TINY, **change})
