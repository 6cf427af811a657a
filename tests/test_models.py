"""Models: shapes, normalisation as the first layer, clear errors."""
import pytest
import torch

from advlab.errors import InputError
from advlab.models import MODELS, Normalize, build_model

SMALL = {"wide_resnet": {"depth": 10, "widen_factor": 1}, "vgg11": {"width": 0.125}, "vgg13": {"width": 0.125},
         "vgg16": {"width": 0.125}, "vgg19": {"width": 0.125}, "preact_resnet18": {"width": 0.125}}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_maps_pixels_to_logits(name):
    dataset = "mnist" if name in ("mlp", "small_cnn", "lenet5") else "cifar10"
    m = build_model(name, dataset, **SMALL.get(name, {}))
    assert isinstance(m[0], Normalize)
    shape = (1, 28, 28) if dataset == "mnist" else (3, 32, 32)
    assert m(torch.rand(3, *shape)).shape == (3, 10)


def test_report_mlp_is_784_512_10():
    m = build_model("mlp", "mnist")
    assert sum(p.numel() for p in m.parameters()) == 407_050  # the MNIST report's parameter count


def test_normalize_uses_dataset_statistics():
    m = build_model("small_cnn", "cifar10")
    assert torch.allclose(m[0].mean.flatten(), torch.tensor([0.4914, 0.4822, 0.4465]))


def test_errors_list_valid_names_and_options():
    with pytest.raises(InputError, match="valid: .*lenet5"):
        build_model("resnet50", "mnist")
    with pytest.raises(InputError, match="width"):
        build_model("vgg11", "cifar10", depth=3)
    with pytest.raises(InputError, match="32×32"):
        build_model("vgg11", "mnist")
    with pytest.raises(InputError, match="6n"):
        build_model("wide_resnet", "cifar10", depth=12)
