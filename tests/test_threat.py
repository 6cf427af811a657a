"""Geometry of the threat model: projection, steps, random starts, bad arguments."""
import math

import pytest
import torch

from advlab import ThreatModel
from advlab.errors import InputError


@pytest.fixture(params=["linf", "l2"])
def threat(request):
    return ThreatModel(request.param, 0.3 if request.param == "linf" else 1.5)


def _x(n=16, seed=0):
    return torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed))


def test_projection_lands_in_ball_and_box_and_is_idempotent(threat):
    x = _x()
    far = x + 5 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    p = threat.project(x, far)
    assert threat.contains(x, p).all()
    assert torch.equal(threat.project(x, p), p)


def test_projection_leaves_feasible_points_alone(threat):
    x = _x() * 0.5 + 0.25
    inside = threat.project(x, x + 0.01 * torch.randn(x.shape, generator=torch.Generator().manual_seed(2)))
    assert torch.allclose(threat.project(x, inside), inside)


def test_linf_projection_is_the_euclidean_projection_onto_the_intersection():
    t = ThreatModel("linf", 0.1)
    x = _x()
    z = x + torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    lo, hi = (x - 0.1).clamp(0, 1), (x + 0.1).clamp(0, 1)
    assert torch.allclose(t.project(x, z), torch.minimum(torch.maximum(z, lo), hi))


def test_l2_projection_scales_onto_the_sphere():
    t = ThreatModel("l2", 0.5)
    x = torch.full((4, 1, 5, 5), 0.5)
    d = torch.randn(x.shape, generator=torch.Generator().manual_seed(4)) * 0.02
    d = d / d.flatten(1).norm(dim=1).view(-1, 1, 1, 1) * 2.0  # norm 2 > eps, stays in the box after scaling
    p = t.project(x, x + d)
    assert torch.allclose(t.distance(x, p), torch.full((4,), 0.5), atol=1e-6)
    assert torch.allclose((p - x), d * 0.25, atol=1e-6)  # same direction


def test_steepest_ascent_directions():
    g = torch.randn(5, 1, 4, 4, generator=torch.Generator().manual_seed(5))
    assert torch.equal(ThreatModel("linf", 1.0).direction(g), g.sign())
    d = ThreatModel("l2", 1.0).direction(g)
    assert torch.allclose(d.flatten(1).norm(dim=1), torch.ones(5))
    # the direction maximises <g, d> over the unit ball: equals the dual norm of g
    assert torch.allclose((g * d).flatten(1).sum(1), g.flatten(1).norm(dim=1), atol=1e-5)
    assert torch.equal(ThreatModel("l2", 1.0).direction(torch.zeros(2, 1, 3, 3)), torch.zeros(2, 1, 3, 3))


def test_random_start_is_inside_and_seeded(threat):
    x = _x()
    a = threat.random_start(x, torch.Generator().manual_seed(7))
    b = threat.random_start(x, torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    assert threat.contains(x, a).all()
    assert not torch.equal(a, x)


def test_l2_random_start_has_a_uniform_radius_and_direction():
    # radius uniform in [0, eps] (median eps/2), direction uniform on the sphere (mean ≈ 0)
    t = ThreatModel("l2", 0.4)
    x = torch.full((4000, 1, 2, 2), 0.5)  # no coordinate moves by more than 0.4, so no clipping
    start = t.random_start(x, torch.Generator().manual_seed(8))
    r = t.distance(x, start)
    assert (r <= 0.4 + 1e-6).all()
    assert abs(r.median().item() - 0.2) < 0.01
    unit = (start - x).flatten(1) / r[:, None]
    assert unit.mean(0).abs().max() < 0.05


@pytest.mark.parametrize("eps", [-0.1, float("nan"), "0.1", True])
def test_bad_eps_is_an_error(eps):
    with pytest.raises(InputError, match="eps"):
        ThreatModel("linf", eps)


def test_unknown_norm_lists_valid_ones():
    with pytest.raises(InputError, match="l2, linf"):
        ThreatModel("l1", 0.1)


def test_str_states_norm_eps_and_pixel_range():
    assert str(ThreatModel("linf", 0.1)) == "L∞ ball, ε = 0.1, pixels in [0, 1]"
    assert math.isinf(ThreatModel("linf", 0.1).p)


def test_geometry_needs_no_radius_and_the_ball_uses_it():
    from advlab.threat import L2, LINF, geometry, perturbation_norms

    g = torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    assert geometry("l2") is L2 and geometry("linf") is LINF
    assert torch.allclose(L2.norm(L2.direction(g)), torch.ones(3))
    assert torch.equal(LINF.direction(g), g.sign())
    assert torch.allclose(LINF.dual_norm(g), g.flatten(1).abs().sum(1))
    assert torch.allclose(LINF.norm(LINF.normalize(g)), torch.ones(3))
    t = ThreatModel("l2", 0.5)
    assert t.geometry is L2 and torch.equal(t.direction(g), L2.direction(g))
    sizes = perturbation_norms(torch.zeros_like(g), g)
    assert torch.allclose(sizes["l2"], L2.norm(g)) and torch.allclose(sizes["linf"], LINF.norm(g))
    with pytest.raises(InputError, match="finite"):
        ThreatModel("l2", float("inf"))


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_bounds_are_the_box_of_ball_and_pixels(norm):
    x = torch.rand(4, 1, 5, 5, generator=torch.Generator().manual_seed(2))
    t = ThreatModel(norm, 0.2)
    lo, hi = t.bounds(x)
    assert (lo >= 0).all() and (hi <= 1).all() and (lo <= x).all() and (x <= hi).all()
    for _ in range(5):  # every point of ball ∩ box lies in the box
        p = t.project(x, x + torch.randn_like(x))
        assert (p >= lo - 1e-7).all() and (p <= hi + 1e-7).all()
    if norm == "linf":  # exact: the corners are in the set
        assert t.contains(x, lo).all() and t.contains(x, hi).all()


# -- per-channel units: ε read after the model's normalisation (x - mean) / std --------------------
STD = (0.2470, 0.2435, 0.2616)  # CIFAR-10's


def _cifar_like(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(4 * 8 * 8, 10))
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = net.eval()
        for p in net.parameters():
            torch.nn.init.normal_(p, std=0.3)
    return net, torch.rand(n, 3, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g)


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("attack", ["fgsm", "pgd", "apgd"])
def test_a_uniform_scale_is_the_pixel_ball_of_eps_times_scale(norm, attack):
    """s = (c, c, c) is the pixel ball of radius ε·c: the same attack gives the same inputs."""
    from advlab.attacks import run_attack

    net, x, y = _cifar_like()
    eps, c = (0.03, 0.25) if norm == "linf" else (0.5, 0.25)
    params = {} if attack == "fgsm" else {"steps": 5}
    a = run_attack(attack, net, x, y, threat=ThreatModel(norm, eps, scale=(c, c, c)),
                   generator=torch.Generator().manual_seed(1), **params).x_adv
    b = run_attack(attack, net, x, y, threat=ThreatModel(norm, eps * c),
                   generator=torch.Generator().manual_seed(1), **params).x_adv
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_per_channel_units_move_each_channel_by_its_own_eps():
    from advlab.attacks import run_attack

    net, x, y = _cifar_like()
    x = x * 0.5 + 0.25  # away from the box, so the ball's extent is visible
    threat = ThreatModel("linf", 0.06, scale=STD)
    x_adv = run_attack("fgsm", net, x, y, threat=threat).x_adv
    assert threat.contains(x, x_adv).all()
    extent = (x_adv - x).abs().amax(dim=(0, 2, 3))
    torch.testing.assert_close(extent, 0.06 * torch.tensor(STD), atol=1e-6, rtol=0)
    lo, hi = threat.bounds(x)
    torch.testing.assert_close((hi - x).amax(dim=(0, 2, 3)), 0.06 * torch.tensor(STD), atol=1e-6, rtol=0)
    assert "per channel" in str(threat) and threat.label == "linf 0.06 ×s"
    far = x + 0.06 * torch.tensor(STD).view(1, 3, 1, 1) * 1.01
    assert not threat.contains(x, far.clamp(0, 1)).any()


def test_scaled_threats_are_checked():
    net, x, y = _cifar_like()
    with pytest.raises(InputError, match="positive finite"):
        ThreatModel("linf", 0.1, scale=(0.2, 0.0, 0.3))
    with pytest.raises(InputError, match="3 channels"):
        ThreatModel("linf", 0.1, scale=STD).project(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 4))
    from advlab.attacks import run_attack
    from advlab.attacks.blackbox import QueryOracle

    from advlab.certify import margin_bounds

    with pytest.raises(InputError, match="bounds are computed in pixel units"):
        margin_bounds(net, x, y, ThreatModel("linf", 0.1, scale=STD))
    with pytest.raises(InputError, match="pixel units only"):
        run_attack("square", QueryOracle(net, output="logits", budget=10), x, y,
                   threat=ThreatModel("linf", 0.1, scale=STD))


def test_the_per_channel_scale_is_made_once_per_device_and_dtype():
    """A tensor from the tuple on every call was a host-to-device copy per attack step on a GPU."""
    t = ThreatModel("linf", 0.03, scale=(0.2, 0.3, 0.4))
    x = torch.rand(2, 3, 4, 4)
    assert t._s(x) is t._s(x.clone())
    assert t._s(x.double()) is not t._s(x) and t._s(x.double()).dtype == torch.float64
    assert t == ThreatModel("linf", 0.03, scale=(0.2, 0.3, 0.4)) and hash(t) == hash(ThreatModel("linf", 0.03,
                                                                                               scale=(0.2, 0.3, 0.4)))
