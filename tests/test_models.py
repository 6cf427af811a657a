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


def test_a_readers_architecture_is_keyed_without_running_its_module(tmp_path, monkeypatch):
    """The digest of ``module:function`` is the defining file's, found without importing the reader's
    module (a module with side effects is not run when a model is declared); a re-exported function is
    followed to the file that defines it."""
    import sys

    from advlab.models.external import architecture_digest
    pkg = tmp_path / "readers"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "nets.py").write_text("import pathlib\npathlib.Path(__file__).with_name('RAN').write_text('x')\n\n"
                                 "def build():\n    return None\n")
    (pkg / "again.py").write_text("from .nets import build\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    first = architecture_digest("readers.nets:build")
    assert len(first) == 64 and not (pkg / "RAN").exists() and "readers.nets" not in sys.modules
    (pkg / "nets.py").write_text((pkg / "nets.py").read_text() + "\n# edited\n")
    assert architecture_digest("readers.nets:build") != first
    assert architecture_digest("readers.again:build") == architecture_digest("readers.nets:build")
    assert architecture_digest("small_cnn") is None
