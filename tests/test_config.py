"""Chapter parameters and the command line: names and types checked before anything runs."""
import pytest

from advlab.chapters import CHAPTERS, get_chapter
from advlab.cli import main, parse_overrides
from advlab.chapters import chapter_config
from advlab.errors import InputError


def test_profiles_resolve_and_overrides_apply():
    ch = get_chapter("white-box")
    for profile in ("smoke", "quick", "paper"):
        assert set(ch.resolve(profile)) == set(ch.params)
    cfg = ch.resolve("quick", {"eps": 0.2, "n_test": None})
    assert cfg.eps == 0.2 and cfg.n_test == ch.profiles["quick"]["n_test"]


def test_int_is_accepted_for_float_and_lists_are_checked():
    cfg = get_chapter("white-box").resolve("smoke", {"eps": 1, "eps_grid": [0, 0.1]})
    assert isinstance(cfg.eps, float) and cfg.eps_grid == [0.0, 0.1]
    with pytest.raises(InputError, match=r"eps_grid.*list\[float\]"):
        get_chapter("white-box").resolve("smoke", {"eps_grid": ["a"]})


@pytest.mark.parametrize("over,match", [
    ({"epss": 0.2}, r"unknown parameter\(s\) \['epss'\].*Valid parameters: seed \(int >= 0\)"),
    ({"eps": "0.2"}, r"parameter 'eps' must be float, got '0.2'"),
    ({"n_test": 10.5}, "must be int"),
    ({"dataset": "svhn"}, r"must be one of \['mnist', 'fashion-mnist'\]"),
    ({"cifar_model": "resnet"}, r"in \['vgg11', 'vgg13', 'vgg16', 'vgg19'\]"),
])
def test_bad_parameters_list_the_valid_ones(over, match):
    with pytest.raises(InputError, match=match):
        get_chapter("white-box").resolve("smoke", over)


def test_unknown_profile():
    with pytest.raises(InputError, match="paper, quick, smoke"):
        get_chapter("white-box").resolve("fast")


def test_notebook_globals_with_an_unknown_injected_name_are_refused():
    import math

    ns = {"math": math, "profile": "smoke", "eps": None, "In": [], "_": 1, "epsilon": 0.1}
    with pytest.raises(InputError, match="epsilon"):
        chapter_config("white-box", ns)
    del ns["epsilon"]
    assert chapter_config("white-box", ns).profile == "smoke"
    frozen = chapter_config("white-box", ns)
    with pytest.raises(AttributeError):
        frozen.eps = 3


def test_cli_rejects_bad_parameters_before_executing(capsys):
    assert main(["run", "white-box", "--profile", "smoke", "-p", "epss", "0.2"]) == 2
    assert "unknown parameter(s) ['epss']" in capsys.readouterr().err
    assert main(["run", "white-box", "-p", "eps", "abc"]) == 2
    assert main(["run", "black-box"]) == 2


def test_overrides_parse_as_yaml():
    assert parse_overrides([("eps", "0.2"), ("eps_grid", "[0, 0.1]"), ("dataset", "mnist")]) == \
        {"eps": 0.2, "eps_grid": [0, 0.1], "dataset": "mnist"}


def test_every_chapter_has_the_three_profiles_and_a_notebook():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    for ch in CHAPTERS.values():
        assert set(ch.profiles) == {"smoke", "quick", "paper"}
        text = (root / "notebooks" / ch.notebook).read_text()
        assert 'tags=["parameters"]' in text
        for name in ch.params:
            assert f"\n{name} = None" in text, f"{ch.notebook} parameters cell lacks {name}"
