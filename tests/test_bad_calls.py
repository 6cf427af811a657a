"""Library calls a new user got wrong (issue: the third trial), each a clear InputError before any work."""
import pytest
import torch

from advlab import ThreatModel
from advlab.attacks import QueryOracle, one_pixel, pgd, square
from advlab.certify import certify, margin_bounds
from advlab.defenses import BitDepthReduction
from advlab.errors import InputError
from advlab.models import MODELS, build_model
from advlab.training import TrainConfig

LINF = ThreatModel("linf", 0.1)


@pytest.fixture(scope="module")
def mlp():
    torch.manual_seed(0)
    return build_model("mlp", "mnist").eval()


def test_margin_bounds_refuse_bad_batches(mlp, batch):
    x, y = batch
    with pytest.raises(InputError, match=r"y must hold class labels in \[0, 10\).*found labels in \[0, 12\]"):
        margin_bounds(mlp, x[:4], torch.tensor([0, 1, 2, 12]), LINF)
    with pytest.raises(InputError, match=r"the model cannot take x of shape \(4, 28, 28\)"):
        margin_bounds(mlp, x[:4, 0], y[:4], LINF)  # the channel dimension missing
    with pytest.raises(InputError, match="empty batch"):
        margin_bounds(mlp, x[:0], y[:0], LINF)


@pytest.mark.parametrize("call", ["pgd", "certify", "margin_bounds"])
def test_float64_inputs_are_refused_saying_what_to_pass(call, mlp, batch):
    x, y = batch[0][:4].double(), batch[1][:4]
    with pytest.raises(InputError, match=r"x is torch.float64 but the model computes in torch.float32: "
                                         r"pass x.to\(torch.float32\)"):
        {"pgd": lambda: pgd(mlp, x, y, threat=LINF, steps=1),
         "certify": lambda: certify(mlp, x, sigma=0.25, n0=2, n=4),
         "margin_bounds": lambda: margin_bounds(mlp, x, y, LINF)}[call]()


def test_model_on_another_device_than_the_data(mlp, batch):
    x, y = batch[0][:4], batch[1][:4]
    elsewhere = build_model("mlp", "mnist").to("meta")  # a device the data is not on
    with pytest.raises(InputError, match="the model is on meta but x is on cpu"):
        pgd(elsewhere, x, y, threat=LINF, steps=1)
    with pytest.raises(InputError, match=r"the oracle's model cannot take x \(torch.float32 on cpu\)"):
        square(QueryOracle(elsewhere, output="logits", budget=10), x, y, threat=LINF)


def test_a_misspelt_attack_parameter_names_the_valid_ones(mlp, batch):
    x, y = batch
    with pytest.raises(InputError, match=r"unknown parameter\(s\) \[.step.\] for attack .pgd. \(did you mean .*"
                                         r"steps.*\); valid: \["):
        pgd(mlp, x[:4], y[:4], threat=LINF, step=3)


def test_values_accepted_before_and_failing_late(mlp, batch):
    with pytest.raises(InputError, match=r"BitDepthReduction wraps a model: BitDepthReduction\(model, bits=...\)"):
        BitDepthReduction(0)
    x, y = batch
    with pytest.raises(InputError, match="population of at least 4, got 2"):
        one_pixel(QueryOracle(mlp, output="probs"), x[:2], y[:2], population=2)
    for field, value in (("lr", -1), ("lr", 0), ("momentum", -1), ("momentum", 1), ("weight_decay", -1e-4),
                         ("label_smoothing", 1.0)):
        with pytest.raises(InputError, match=f"TrainConfig.{field}"):
            TrainConfig(dataset="mnist", model="mlp", **{field: value})


def test_ibp_training_refuses_networks_it_cannot_bound_before_training():
    """TrainConfig(model="vgg11", method="ibp") failed 14 s into training on batch norm."""
    ibp = {"method": "ibp", "method_params": {"eps": 0.1}}
    with pytest.raises(InputError, match=r"cannot bound this network: it has batch norm \(at 1.features.1\)"):
        TrainConfig(dataset="cifar10", model="vgg11", **ibp)
    trainable = [m for m in ("mlp", "conv_small", "small_cnn", "lenet5", "vgg11") if _accepts(m, ibp)]
    # max pooling has a relaxation of its own: only batch norm is refused
    assert trainable == ["mlp", "conv_small", "small_cnn", "lenet5"] and set(trainable) <= set(MODELS)


def _accepts(model, ibp):
    try:
        TrainConfig(dataset="mnist", model=model, **ibp)
        return True
    except InputError:
        return False
