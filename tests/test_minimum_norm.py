"""DeepFool, Carlini-Wagner and APGD: closed forms, success flags, and the reference implementations."""
import pytest
import torch

from advlab import ThreatModel
from advlab.attacks import apgd, apgd_t, carlini_wagner_l2, deepfool, pgd
from advlab.errors import InputError


def _near_boundary(linear_model, n=6):
    """Points in the middle of the box, a small margin away from the boundary of a 2-class linear model."""
    linear_model = linear_model.double()
    x = torch.full((n, 3, 4, 4), 0.5, dtype=torch.float64)
    x += 0.05 * torch.rand(x.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    with torch.no_grad():
        z = linear_model(x)
        linear_model.b.copy_(torch.tensor([0.0, 0.0], dtype=torch.float64))
        margin = (linear_model(x)[:, 0] - linear_model(x)[:, 1])
        linear_model.b.copy_(torch.tensor([0.5 - margin.mean().item(), 0.0], dtype=torch.float64))
    y = linear_model(x).argmax(1)
    return linear_model, x, y, z


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_deepfool_finds_the_exact_distance_to_a_linear_boundary(linear_model, norm):
    """For f_1 − f_0 = <w, x> + b the minimal perturbation has norm |f_1 − f_0| / ‖w‖_q; DeepFool
    reaches the boundary in one step and overshoots it by the factor 1.02."""
    model, x, y, _ = _near_boundary(linear_model)
    w = (model.w[1] - model.w[0]).detach()
    logits = model(x).detach()
    gap = (logits[:, 1] - logits[:, 0]).abs()
    dual = w.norm(p=2) if norm == "l2" else w.norm(p=1)
    res = deepfool(model, x, y, norm=norm)
    dist = ThreatModel(norm, 1.0).distance(x, res.x_adv)
    assert res.success.all()
    assert torch.allclose(dist, 1.02 * (gap + 1e-4) / dual, rtol=1e-6)
    # clean, one step, the forward that sees the label changed, the evaluation of the result
    assert res.forwards == 4 * len(x)


def test_deepfool_leaves_misclassified_examples_alone(mnist_model, batch):
    x, y = batch
    wrong = mnist_model(x).argmax(1) != y
    res = deepfool(mnist_model, x, y)
    assert torch.equal(res.x_adv[wrong], x[wrong])
    assert res.success[wrong].all()


def test_deepfool_with_a_threat_projects_and_reports_honestly(mnist_model, batch):
    x, y = batch
    t = ThreatModel("l2", 0.5)
    res = deepfool(mnist_model, x, y, threat=t)
    assert t.contains(x, res.x_adv).all()
    assert torch.equal(res.success, mnist_model(res.x_adv).argmax(1) != y)


def test_cw_failures_are_the_clean_input_and_successes_are_misclassified(mnist_model, batch):
    x, y = batch
    res = carlini_wagner_l2(mnist_model, x, y, steps=20, binary_search_steps=2, initial_const=0.01)
    assert (~res.success).any()
    assert torch.equal(res.x_adv[~res.success], x[~res.success])
    assert (mnist_model(res.x_adv[res.success]).argmax(1) != y[res.success]).all()
    assert res.x_adv.min() >= 0 and res.x_adv.max() <= 1


def test_cw_binary_search_helps(mnist_model, batch):
    x, y = batch
    one = carlini_wagner_l2(mnist_model, x, y, steps=30, binary_search_steps=1, initial_const=0.01)
    many = carlini_wagner_l2(mnist_model, x, y, steps=30, binary_search_steps=4, initial_const=0.01)
    assert many.success.sum() > one.success.sum()


def test_cw_targeted_reaches_targets(mnist_model, batch):
    x, y = batch
    target = (y + 1) % 10
    res = carlini_wagner_l2(mnist_model, x, y, steps=50, lr=0.1, binary_search_steps=3, initial_const=1.0,
                            targeted=True, target=target)
    assert res.success.float().mean() > 0.5
    assert (mnist_model(res.x_adv[res.success]).argmax(1) == target[res.success]).all()


def test_cw_rejects_linf_and_bad_constants(mnist_model, batch):
    x, y = batch
    with pytest.raises(InputError, match=r"cw supports the norms \['l2'\], got a linf threat model"):
        carlini_wagner_l2(mnist_model, x, y, threat=ThreatModel("linf", 0.1))
    with pytest.raises(InputError, match="initial_const"):
        carlini_wagner_l2(mnist_model, x, y, initial_const=0.0)


def test_apgd_is_at_least_as_strong_as_pgd(mnist_model, mnist_test):
    sub = mnist_test.subset(300, seed=5)
    x, y = sub.images(), sub.y
    t = ThreatModel("linf", 0.1)
    acc = lambda z: (mnist_model(z).argmax(1) == y).float().mean().item()
    a = apgd(mnist_model, x, y, threat=t, steps=50, generator=torch.Generator().manual_seed(0))
    p = pgd(mnist_model, x, y, threat=t, steps=50, step_size=0.01, generator=torch.Generator().manual_seed(0))
    assert acc(a.x_adv) <= acc(p.x_adv) + 1 / 300
    assert torch.equal(a.success, mnist_model(a.x_adv).argmax(1) != y)
    assert t.contains(x, a.x_adv).all()


# -- the reference implementations (torchattacks), same model and parameters ----------------------
@pytest.fixture(scope="module")
def sample(mnist_test):
    sub = mnist_test.subset(100, seed=6)
    return sub.images(), sub.y


def test_cw_matches_torchattacks_at_the_same_parameters(mnist_model, sample):
    torchattacks = pytest.importorskip("torchattacks")
    x, y = sample
    ours = carlini_wagner_l2(mnist_model, x, y, steps=30, initial_const=1.0, binary_search_steps=1, abort_early=False)
    theirs = torchattacks.CW(mnist_model, c=1.0, kappa=0, steps=30, lr=0.01)(x, y)
    fooled = mnist_model(theirs).argmax(1) != y
    assert ours.success.sum() >= fooled.sum()
    both = ours.success & fooled
    d_ours = (ours.x_adv - x).flatten(1).norm(dim=1)[both]
    d_theirs = (theirs - x).flatten(1).norm(dim=1)[both]
    assert d_ours.median() <= d_theirs.median() + 1e-3


def test_deepfool_beats_torchattacks(mnist_model, sample):
    torchattacks = pytest.importorskip("torchattacks")
    x, y = sample
    ours = deepfool(mnist_model, x, y, steps=50, overshoot=0.02)
    theirs = torchattacks.DeepFool(mnist_model, steps=50, overshoot=0.02)(x, y)
    fooled = mnist_model(theirs).argmax(1) != y
    assert ours.success.sum() >= fooled.sum()
    both = ours.success & fooled
    d_ours = (ours.x_adv - x).flatten(1).norm(dim=1)[both]
    d_theirs = (theirs - x).flatten(1).norm(dim=1)[both]
    assert d_ours.median() <= d_theirs.median() * 1.01


def test_apgd_matches_torchattacks(mnist_model, sample):
    torchattacks = pytest.importorskip("torchattacks")
    x, y = sample
    acc = lambda z: (mnist_model(z).argmax(1) == y).float().mean().item()
    for loss in ("ce", "dlr"):
        theirs = torchattacks.APGD(mnist_model, norm="Linf", eps=0.1, steps=100, loss=loss, seed=0)(x, y)
        ours = apgd(mnist_model, x, y, threat=ThreatModel("linf", 0.1), loss=loss,
                    generator=torch.Generator().manual_seed(0)).x_adv
        assert acc(ours) <= acc(theirs) + 0.01


def test_apgd_t_matches_torchattacks(mnist_model, sample):
    """APGD-T (targeted DLR towards the 9 highest other classes) against torchattacks' APGDT, same budget."""
    torchattacks = pytest.importorskip("torchattacks")
    x, y = sample
    t = ThreatModel("linf", 0.1)
    acc = lambda z: (mnist_model(z).argmax(1) == y).float().mean().item()
    theirs = torchattacks.APGDT(mnist_model, norm="Linf", eps=0.1, steps=20, n_classes=10, seed=0)(x, y)
    ours = apgd_t(mnist_model, x, y, threat=t, steps=20, generator=torch.Generator().manual_seed(0))
    assert acc(ours.x_adv) <= acc(theirs) + 0.01 and t.contains(x, ours.x_adv).all()
    dlr = apgd(mnist_model, x, y, threat=t, steps=20, loss="dlr", generator=torch.Generator().manual_seed(0))
    assert ours.success.float().mean() >= dlr.success.float().mean() - 0.02  # the targets add to the untargeted DLR
