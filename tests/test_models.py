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


def test_bare_weights_of_a_registered_sequential_net_are_not_taken_for_an_advlab_model(tmp_path):
    """conv_small is an nn.Sequential: its bare weights start with `0.` too; only Normalize's buffers
    (`0.mean`, `0.std`) mark an advlab model, which takes pixels already."""
    from advlab.models.external import load_model_file

    torch.manual_seed(0)
    full = build_model("conv_small", "mnist").eval()
    torch.save(full.state_dict(), tmp_path / "advlab.pt")
    torch.save(full[1].state_dict(), tmp_path / "bare.pt")
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(load_model_file(tmp_path / "advlab.pt", "mnist", "conv_small")(x), full(x))
        bare = load_model_file(tmp_path / "bare.pt", "mnist", "conv_small")
        torch.testing.assert_close(bare(x), full[1](x))  # no normalisation added: the reader's pixels as given
