"""IBP, CROWN and MILP: sound on random and adversarial points, CROWN tighter than IBP, MILP exact
against dense sampling, certified examples never fooled; IBP training; bad input."""
import itertools

import pytest
import torch
from torch import nn

from advlab.attacks import run_attack
from advlab.certify.bounds import BOUND_METHODS, bound_spec, certified, layers, margin_bounds, margin_lower
from advlab.certify.milp import _segments, exact_verification, refine_bounds
from advlab.errors import InputError
from advlab.models import Normalize, build_model
from advlab.threat import ThreatModel
from advlab.training import TrainConfig, load_or_train


def _bn_pool_net():
    """Every supported layer once: normalisation, conv, batch norm (eval), ReLU, average pooling."""
    g = torch.Generator().manual_seed(3)
    net = nn.Sequential(Normalize([0.5], [0.25]), nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.AvgPool2d(2), nn.Conv2d(4, 4, 3, padding="same"), nn.ReLU(), nn.AvgPool2d(2),
                        nn.Flatten(), nn.Linear(4 * 7 * 7, 16), nn.ReLU(), nn.Linear(16, 10))
    with torch.no_grad():
        bn = net[2]
        bn.running_mean.copy_(torch.randn(4, generator=g) * 0.1)
        bn.running_var.copy_(torch.rand(4, generator=g) + 0.5)
        bn.weight.copy_(torch.randn(4, generator=g))
        bn.bias.copy_(torch.randn(4, generator=g) * 0.1)
    return net.eval()


def _nets():
    torch.manual_seed(0)
    return {"mlp": build_model("mlp", "mnist", hidden=(32, 32)).eval(),
            "conv_small": build_model("conv_small", "mnist", width=0.5).eval(),
            "bn_pool": _bn_pool_net()}


NETS = _nets()


def _data(n=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=g) * 0.8 + 0.1, torch.randint(0, 10, (n,), generator=g)


def _margins(model, x, y):
    with torch.no_grad():
        z = model(x)
    return z.gather(1, y[:, None]) - z


def _pre_activations(model, x):
    out, z = [], x
    with torch.no_grad():
        for m in layers(model):
            if isinstance(m, nn.ReLU):
                out.append(z)
            z = m(z)
    return out


@pytest.mark.parametrize("name,norm,method", list(itertools.product(NETS, ("linf", "l2"), BOUND_METHODS)))
def test_bounds_contain_random_and_adversarial_points(name, norm, method):
    model = NETS[name]
    x, y = _data()
    threat = ThreatModel(norm, 0.02 if norm == "linf" else 0.3)
    b = margin_bounds(model, x, y, threat, method=method)
    g = torch.Generator().manual_seed(0)
    points = [threat.random_start(x, g) for _ in range(10)]
    points.append(x)
    # adversarial points: PGD towards every class's smallest margin (the bounds' tightest side)
    for target in range(3):
        t = torch.full_like(y, target)
        points.append(run_attack("pgd", model, x, t, threat=threat, steps=20, targeted=True, target=t,
                                 generator=g).x_adv)
    points.append(run_attack("pgd", model, x, y, threat=threat, steps=20, generator=g).x_adv)
    for p in points:
        assert threat.contains(x, p).all()
        m = _margins(model, p, y)
        assert (m >= b.lower - 1e-4).all() and (m <= b.upper + 1e-4).all()
        for (lo, hi), z in zip(b.layers, _pre_activations(model, p)):
            assert (z >= lo - 1e-4).all() and (z <= hi + 1e-4).all()
    assert torch.equal(b.lower.gather(1, y[:, None]), torch.zeros(len(y), 1))


@pytest.mark.parametrize("name", list(NETS))
def test_crown_tighter_than_ibp_on_average(name):
    x, y = _data()
    threat = ThreatModel("linf", 0.02)
    ibp = margin_bounds(NETS[name], x, y, threat, method="ibp")
    crown = margin_bounds(NETS[name], x, y, threat, method="crown")
    assert (crown.upper - crown.lower).mean() < (ibp.upper - ibp.lower).mean()


def test_zero_eps_bounds_are_the_margins_and_linear_nets_are_exact():
    model = NETS["mlp"]
    x, y = _data()
    for method in ("ibp", "crown"):
        b = margin_bounds(model, x, y, ThreatModel("linf", 0.0), method=method)
        assert torch.allclose(b.lower, _margins(model, x, y), atol=1e-4)
        assert torch.allclose(b.upper, _margins(model, x, y), atol=1e-4)
    lin = nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).eval()
    eps = 0.05  # inputs in [0.1, 0.9]: the ball stays inside the box, extremes at the corners
    c = torch.eye(10)[:3]
    b = bound_spec(lin, x, ThreatModel("linf", eps), c, method="ibp")
    w = c @ lin[1].weight
    centre = lin(x)[:, :3]
    assert torch.allclose(b.lower, centre - eps * w.abs().sum(1), atol=1e-4)
    b2 = bound_spec(lin, x, ThreatModel("l2", eps), c, method="crown")
    assert torch.allclose(b2.upper, centre + eps * w.norm(dim=1), atol=1e-4)


def test_memory_chunks_do_not_change_bounds(monkeypatch):
    from advlab.certify import bounds as mod
    x, y = _data()
    threat = ThreatModel("linf", 0.02)
    full = margin_bounds(NETS["conv_small"], x, y, threat)
    monkeypatch.setattr(mod, "MAX_ELEMENTS", 10_000)
    chunked = margin_bounds(NETS["conv_small"], x, y, threat)
    assert torch.allclose(full.lower, chunked.lower, atol=1e-5)


def test_bounds_leave_the_model_alone():
    model = build_model("conv_small", "mnist").train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = _data()
    margin_bounds(model, x, y, ThreatModel("linf", 0.01))
    assert model.training and all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert all(p.grad is None for p in model.parameters())


def test_bad_input_is_a_clear_error():
    x, y = _data()
    with pytest.raises(InputError, match=r"Tanh \(at 2\)"):
        margin_bounds(nn.Sequential(nn.Flatten(), nn.Linear(784, 8), nn.Tanh(), nn.Linear(8, 10)), x, y,
                      ThreatModel("linf", 0.1))
    with pytest.raises(InputError, match="MaxPool2d"):  # the MILP encodes sequential networks only
        exact_verification(build_model("small_cnn", "mnist"), x, y, ThreatModel("linf", 0.1))
    bn = nn.Sequential(nn.Flatten(), nn.Linear(784, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 10)).train()
    with pytest.raises(InputError, match="batch statistics"):
        layers(bn)
    with pytest.raises(InputError, match="eps"):
        ThreatModel("linf", -0.1)
    with pytest.raises(InputError, match="bound method"):
        margin_bounds(NETS["mlp"], x, y, ThreatModel("linf", 0.1), method="deeppoly")
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        margin_bounds(NETS["mlp"], x + 1, y, ThreatModel("linf", 0.1))
    with pytest.raises(InputError, match="specification"):
        bound_spec(NETS["mlp"], x, ThreatModel("linf", 0.1), torch.ones(2, 3, 7))
    with pytest.raises(InputError, match="L∞"):
        exact_verification(NETS["mlp"], x, y, ThreatModel("l2", 0.1))


def _toy(seed=1, width=12):
    """A 2-D three-class ReLU network whose decision regions cross the unit square many times."""
    g = torch.Generator().manual_seed(seed)
    net = nn.Sequential(nn.Linear(2, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 3))
    with torch.no_grad():
        for m, scale in zip(net[::2], (20, 1, 1)):  # a steep first layer: many linear regions
            m.weight.copy_(scale * torch.randn(m.weight.shape, generator=g) / m.in_features ** 0.5)
            m.bias.copy_(scale * torch.randn(m.bias.shape, generator=g) / 2)
    return net.eval()


def test_milp_is_exact_against_dense_sampling():
    """On a 2-D input the whole set can be gridded: MILP says robust iff no grid point (nor any
    other point) is misclassified, and its counterexamples are misclassified points of the set."""
    model = _toy()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(24, 2, generator=g) * 0.6 + 0.2
    with torch.no_grad():
        y = model(x).argmax(1)
    threat = ThreatModel("linf", 0.05)
    rows = exact_verification(model, x, y, threat, progress=False)
    assert set(rows.verdict) <= {"robust", "not robust"} and {"robust", "not robust"} <= set(rows.verdict)
    t = torch.linspace(-1, 1, 201)
    grid = torch.stack(torch.meshgrid(t, t, indexing="ij"), -1).view(-1, 2) * threat.eps
    crown = certified(margin_bounds(model, x, y, threat), y)
    for i, row in rows.iterrows():
        pts = (x[i] + grid).clamp(0, 1)
        with torch.no_grad():
            fooled = (model(pts).argmax(1) != y[i]).any()
        if row.verdict == "robust":
            assert not fooled
        else:
            cex = row.counterexample
            assert threat.contains(x[i:i + 1], cex).all()
            m = _margins(model, cex, y[i:i + 1])
            assert (m <= 1e-4).any()
            assert not crown[i]  # CROWN never certifies a non-robust example
        if fooled:
            assert row.verdict == "not robust"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    cfg = dict(dataset="mnist", model="mlp", model_options={"hidden": (24, 24)}, epochs=3, train_subset=6000,
               eval_subset=200)
    std, _ = load_or_train(TrainConfig(**cfg), cache_root=root, progress=False)
    ibp, info = load_or_train(TrainConfig(**cfg, method="ibp", method_params={"eps": 0.1, "warmup": 0.05, "ramp": 0.4}),
                              cache_root=root, progress=False)
    return std, ibp, info


def test_certified_examples_survive_apgd_and_milp(trained, batch):
    std, ibp, _ = trained
    x, y = batch
    threat = ThreatModel("linf", 0.05)
    for model in (std, ibp):
        for method in ("ibp", "crown"):
            cert = certified(margin_bounds(model, x, y, threat, method=method), y)
            res = run_attack("apgd", model, x, y, threat=threat, steps=20, generator=torch.Generator().manual_seed(0))
            assert not (cert & res.success).any()
        rows = exact_verification(model, x[:12], y[:12], threat, time_limit=20, progress=False)
        robust = torch.tensor((rows.verdict == "robust").to_numpy())
        assert not (cert[:12] & ~robust).any()  # CROWN ≤ MILP
        assert not (robust & res.success[:12]).any()  # MILP ≤ APGD
        assert (rows.verdict != "undecided").all()


def test_ibp_training_certifies_more_than_standard_training(trained, batch):
    std, ibp, info = trained
    x, y = batch
    threat = ThreatModel("linf", 0.05)
    c_std = certified(margin_bounds(std, x, y, threat, method="ibp"), y).float().mean()
    c_ibp = certified(margin_bounds(ibp, x, y, threat, method="ibp"), y).float().mean()
    assert c_ibp > c_std + 0.2
    assert info["metrics"]["forwards"] > 2 * info["metrics"]["train_examples"] * 2  # the bound pass is counted


def test_ibp_method_parameters_are_checked():
    base = dict(dataset="mnist", model="mlp", method="ibp")
    with pytest.raises(InputError, match="needs eps"):
        TrainConfig(**base)
    with pytest.raises(InputError, match="kappa"):
        TrainConfig(**base, method_params={"eps": 0.1, "kappa": 1.5})
    with pytest.raises(InputError, match="warmup \\+ ramp"):
        TrainConfig(**base, method_params={"eps": 0.1, "warmup": 0.6, "ramp": 0.6})
    assert TrainConfig(**base, method_params={"eps": 0.1}).threat == ThreatModel("linf", 0.1)


@pytest.mark.parametrize("name", list(NETS))
def test_alpha_crown_is_never_looser_than_crown_and_tighter_on_average(name):
    x, y = _data()
    threat = ThreatModel("linf", 0.02)
    crown = margin_bounds(NETS[name], x, y, threat, method="crown", upper=False).lower
    alpha = margin_bounds(NETS[name], x, y, threat, method="alpha_crown", upper=False).lower
    assert (alpha >= crown).all() and (alpha - crown).mean() > 0


def test_crown_ibp_sits_between_ibp_and_crown_and_trains():
    """CROWN-IBP: CROWN's backward pass from IBP's intermediate bounds, so at least as tight as IBP on
    the margins' average and no tighter than CROWN (whose intermediate bounds are tighter); its
    bound is differentiable in the parameters, which is what CROWN-IBP training needs."""
    model = NETS["mlp"]
    x, y = _data()
    threat = ThreatModel("linf", 0.02)
    ibp, cibp, crown = (margin_bounds(model, x, y, threat, method=m, upper=False).lower.mean()
                        for m in ("ibp", "crown_ibp", "crown"))
    assert ibp < cibp <= crown + 1e-5
    lower = margin_lower(model, x, y, threat, "crown_ibp")
    grad, = torch.autograd.grad(lower.sum(), model[1].layers[1].weight)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    with pytest.raises(InputError, match="training bound"):
        margin_lower(model, x, y, threat, "crown")


def test_lp_refined_bounds_are_sound_and_never_looser():
    """Tjeng et al.'s LP tightening of the intermediate bounds: inside CROWN's, containing every
    pre-activation reached by random and adversarial points; the MILP's verdicts do not change."""
    model = _toy(seed=2, width=16)
    x = torch.rand(6, 2, generator=torch.Generator().manual_seed(4)) * 0.6 + 0.2
    with torch.no_grad():
        y = model(x).argmax(1)
    threat = ThreatModel("linf", 0.08)
    with torch.no_grad():
        segs = _segments(layers(model), x[:1])
    for i in range(len(x)):
        xi, yi = x[i:i + 1], y[i:i + 1]
        b = margin_bounds(model, xi, yi, threat, method="crown", upper=False)
        pre = [(lo.flatten().double().numpy(), hi.flatten().double().numpy()) for lo, hi in b.layers]
        lo, hi = (t.flatten().double().numpy() for t in threat.bounds(xi))
        tight, lps = refine_bounds(segs, pre, lo, hi)
        assert lps > 0 or all(((l0 >= 0) | (u0 <= 0)).all() for l0, u0 in pre[1:])
        pts = torch.cat([(xi + (torch.rand(400, 2, generator=torch.Generator().manual_seed(i)) * 2 - 1)
                          * threat.eps).clamp(0, 1), xi])
        for (l0, u0), (l1, u1), z in zip(pre, tight, _pre_activations(model, pts)):
            assert (l1 >= l0).all() and (u1 <= u0).all()
            z = z.double().numpy()
            assert (z >= l1 - 1e-5).all() and (z <= u1 + 1e-5).all()
    plain = exact_verification(model, x, y, threat, refine="none", progress=False)
    refined = exact_verification(model, x, y, threat, refine="lp", progress=False)
    assert list(plain.verdict) == list(refined.verdict)
    assert (refined.binaries <= refined.binaries_crown).all()
    with pytest.raises(InputError, match="refine"):
        exact_verification(model, x, y, threat, refine="sometimes")


def test_crown_ibp_training_runs_and_is_checked():
    base = dict(dataset="mnist", model="mlp", method="crown_ibp")
    with pytest.raises(InputError, match="beta_start"):
        TrainConfig(**base, method_params={"eps": 0.1, "beta_start": 2.0})
    model, info = load_or_train(TrainConfig(**base, model_options={"hidden": (16,)}, epochs=1, train_subset=1000,
                                            eval_subset=100, method_params={"eps": 0.1}), progress=False)
    # the CROWN-IBP pass is counted beside the interval pass
    assert info["metrics"]["forwards"] > 3 * info["metrics"]["train_examples"]
