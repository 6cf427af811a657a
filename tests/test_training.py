"""Training and the checkpoint cache: keys, reuse, atomic writes, truncated files, bad configs."""
import pytest
import torch

from advlab.errors import InputError
from advlab.training import TrainConfig, load_or_train

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


def test_key_depends_on_every_field():
    base = TrainConfig(**TINY)
    assert base.key == TrainConfig(**TINY).key
    assert base.key != TrainConfig(**{**TINY, "seed": 1}).key
    assert base.key != TrainConfig(**{**TINY, "model_options": {"hidden": (64,)}}).key


def test_truncated_checkpoint_is_detected_and_retrained(tmp_path):
    cfg = TrainConfig(**TINY)
    _, info = load_or_train(cfg, cache_root=tmp_path, progress=False)
    path = cfg.checkpoint_path(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.warns(UserWarning, match="truncated or corrupt.*retraining"):
        _, again = load_or_train(cfg, cache_root=tmp_path, progress=False)
    assert again["trained"]
    assert path.stat().st_size == len(data) or path.stat().st_size > len(data) // 2
    _, third = load_or_train(cfg, cache_root=tmp_path, progress=False)
    assert not third["trained"]


def test_checkpoint_for_another_config_is_not_loaded(tmp_path):
    cfg, other = TrainConfig(**TINY), TrainConfig(**{**TINY, "seed": 7})
    load_or_train(other, cache_root=tmp_path, progress=False)
    cfg.checkpoint_path(tmp_path).write_bytes(other.checkpoint_path(tmp_path).read_bytes())
    with pytest.warns(UserWarning, match="another configuration"):
        _, info = load_or_train(cfg, cache_root=tmp_path, progress=False)
    assert info["trained"]


def test_adversarial_training_runs_the_attack(tmp_path):
    cfg = TrainConfig(**{**TINY, "adv_attack": "pgd", "adv_norm": "linf", "adv_eps": 0.1,
                         "adv_params": {"steps": 2}, "adv_fraction": 0.5})
    _, info = load_or_train(cfg, cache_root=tmp_path, progress=False)
    assert "adv_pgd_linf_0.1" in info["path"]


@pytest.mark.parametrize("change,match", [
    ({"model": "resnet"}, "unknown model"),
    ({"dataset": "imagenet"}, "unknown dataset"),
    ({"model_options": {"depth": 3}}, "unknown option"),
    ({"epochs": 1.5}, "epochs must be int"),
    ({"schedule": "step"}, "schedule"),
    ({"adv_attack": "pgd", "adv_norm": "linf", "adv_eps": -0.1}, "eps must be >= 0"),
    ({"adv_attack": "pgd", "adv_norm": "linf", "adv_eps": 0.1, "adv_params": {"stepz": 3}}, "unknown adv_params"),
    ({"adv_attack": "bim", "adv_norm": "linf", "adv_eps": 0.1}, "unknown attack"),
])
def test_bad_configs_are_clear_errors(change, match):
    with pytest.raises(InputError, match=match):
        TrainConfig(**{**TINY, **change})
