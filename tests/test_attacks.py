"""Attacks: closed forms on a linear model, invariants, agreement with torchattacks, bad input."""
import copy

import pytest
import torch
import torch.nn.functional as F

from advlab import ThreatModel
from advlab.attacks import ATTACKS, attack_params, fgsm, get_attack, pgd, run_attack
from advlab.errors import InputError

# Cheap settings for the invariant tests, per attack, and the norms each attack takes.
CHEAP = {"fgsm": {}, "pgd": {"steps": 3}, "apgd": {"steps": 5}, "apgd-t": {"steps": 5, "targets": 2},
         "deepfool": {"steps": 5},
         "cw": {"steps": 5, "binary_search_steps": 2}, "mifgsm": {"steps": 3}}
NORMS = {"cw": ["l2"]}


def _linear_batch(n=8):
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, 3, 4, 4, generator=g) * 0.6 + 0.2, torch.zeros(n, dtype=torch.long)


def _threat(name):
    return ThreatModel(NORMS.get(name, ["linf"])[0], 0.1)


# -- closed forms ---------------------------------------------------------------------------------
def test_fgsm_linf_on_a_linear_model_is_the_sign_of_the_weight_difference(linear_model):
    x, y = _linear_batch()
    w = linear_model.w.detach()
    out = fgsm(linear_model, x, y, threat=ThreatModel("linf", 0.1)).x_adv
    expected = (x + 0.1 * (w[1] - w[0]).sign().view(1, 3, 4, 4)).clamp(0, 1)
    assert torch.allclose(out, expected, atol=1e-7)


def test_fgsm_l2_on_a_linear_model_is_the_normalised_weight_difference(linear_model):
    x, y = _linear_batch()
    d = (linear_model.w[1] - linear_model.w[0]).detach()
    out = fgsm(linear_model, x, y, threat=ThreatModel("l2", 0.1)).x_adv
    assert torch.allclose(out, x + 0.1 * (d / d.norm()).view(1, 3, 4, 4), atol=1e-6)


@pytest.mark.parametrize("norm,eps", [("linf", 0.15), ("l2", 0.3)])
def test_pgd_reaches_the_optimal_attack_on_a_linear_model(linear_model, norm, eps):
    """For logits Wx + b the loss is monotone in the margin (w_1 - w_0)·x, so the optimum over
    ball ∩ box is known: each pixel pushed by ε toward sign(w_1 - w_0) and clipped (L∞), or a move
    of length ε along w_1 - w_0 (L2; here the box does not bind)."""
    # float64: in float32, 1 - p_y rounds once p_y ≈ 1 and the CE gradient loses its direction.
    linear_model = linear_model.double()
    with torch.no_grad():
        linear_model.b.copy_(torch.tensor([20.0, 0.0]))  # not fooled within ε (margin moves by ≤ 8)
    x, y = _linear_batch()
    x = x.double()
    d = (linear_model.w[1] - linear_model.w[0]).detach().view(1, 3, 4, 4)
    if norm == "linf":
        optimum = (x + eps * d.sign()).clamp(0, 1)
    else:
        optimum = x + eps * d / d.norm()
    # From a random start the L2 iterate turns toward the optimum by a factor ≈ ε/(ε+step) per step.
    out = pgd(linear_model, x, y, threat=ThreatModel(norm, eps), steps=100, step_size=eps / 4,
              generator=torch.Generator().manual_seed(0)).x_adv
    assert torch.allclose(out, optimum, atol=2e-3 * eps)


# -- invariants -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(CHEAP))
@pytest.mark.parametrize("norm,eps", [("linf", 0.1), ("l2", 1.0)])
def test_result_is_inside_ball_and_box(name, norm, eps, mnist_model, batch):
    if norm not in NORMS.get(name, ["linf", "l2"]):
        pytest.skip(f"{name} has no {norm} version")
    x, y = batch
    threat = ThreatModel(norm, eps)
    res = run_attack(name, mnist_model, x, y, threat=threat, generator=torch.Generator().manual_seed(0), **CHEAP[name])
    assert threat.contains(x, res.x_adv).all()
    assert not res.x_adv.requires_grad
    assert res.forwards >= len(x) and res.backwards >= len(x)


@pytest.mark.parametrize("name", sorted(CHEAP))
def test_model_parameters_mode_and_gradients_are_untouched(name, mnist_model, batch):
    x, y = batch
    model = copy.deepcopy(mnist_model)
    model.train()
    model[1].classifier.eval()  # a mixed-mode model: every submodule's own mode must come back
    before = {k: v.clone() for k, v in model.state_dict().items()}
    modes = [m.training for m in model.modules()]
    run_attack(name, model, x, y, threat=_threat(name), **CHEAP[name])
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert [m.training for m in model.modules()] == modes
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("name", sorted(CHEAP))
def test_same_generator_same_result(name, mnist_model, batch):
    x, y = batch
    a, b = (run_attack(name, mnist_model, x, y, threat=_threat(name),
                       generator=torch.Generator().manual_seed(5), **CHEAP[name]).x_adv for _ in range(2))
    assert torch.equal(a, b)


@pytest.mark.parametrize("name,params", [("fgsm", {}), ("pgd", {"steps": 3, "random_start": False}),
                                         ("deepfool", {}), ("cw", {"steps": 10, "binary_search_steps": 2})])
def test_batch_size_invariance(name, params, mnist_model, batch):
    x, y = batch
    t = _threat(name)
    whole = run_attack(name, mnist_model, x, y, threat=t, **params).x_adv
    parts = torch.cat([run_attack(name, mnist_model, x[i:i + 16], y[i:i + 16], threat=t, **params).x_adv
                       for i in range(0, len(x), 16)])
    assert torch.allclose(whole, parts, atol=1e-6)


def test_eps_zero_changes_nothing(mnist_model, batch):
    x, y = batch
    for name in CHEAP:
        norm = NORMS.get(name, ["linf"])[0]
        out = run_attack(name, mnist_model, x, y, threat=ThreatModel(norm, 0.0), **CHEAP[name]).x_adv
        assert torch.equal(out, x)


def test_pgd_is_at_least_as_strong_as_fgsm(mnist_model, mnist_test):
    sub = mnist_test.subset(300, seed=2)
    x, y = sub.images(), sub.y
    t = ThreatModel("linf", 0.15)
    acc = {n: (mnist_model(run_attack(n, mnist_model, x, y, threat=t, **p).x_adv).argmax(1) == y).float().mean().item()
           for n, p in [("fgsm", {}), ("pgd", {"steps": 10})]}
    assert acc["pgd"] <= acc["fgsm"]


def test_pgd_restarts_keep_each_examples_worst_case(mnist_model, batch):
    x, y = batch
    t = ThreatModel("linf", 0.1)
    res = pgd(mnist_model, x, y, threat=t, steps=5, restarts=3, generator=torch.Generator().manual_seed(0))
    fooled = mnist_model(res.x_adv).argmax(1) != y
    assert torch.equal(fooled, res.success)
    one = pgd(mnist_model, x, y, threat=t, steps=5, restarts=1, generator=torch.Generator().manual_seed(0))
    assert fooled.sum() >= (mnist_model(one.x_adv).argmax(1) != y).sum()
    # each restart: 5 steps and one evaluation; then one evaluation of the returned batch
    assert res.forwards == (3 * (5 + 1) + 1) * len(x) and res.backwards == 3 * 5 * len(x)


def test_targeted_attacks_move_toward_the_target(mnist_model, batch):
    x, y = batch
    target = (y + 1) % 10
    t = ThreatModel("linf", 0.3)  # the standard MNIST budget
    ce = lambda z: F.cross_entropy(mnist_model(z), target, reduction="none")
    for name, p in [("fgsm", {}), ("pgd", {"steps": 10})]:
        adv = run_attack(name, mnist_model, x, y, threat=t, targeted=True, target=target, **p).x_adv
        assert (ce(adv) < ce(x)).float().mean() > 0.9
    adv = pgd(mnist_model, x, y, threat=t, steps=40, targeted=True, target=target).x_adv
    hit = mnist_model(adv).argmax(1) == target
    assert hit.float().mean() > 0.5


# -- an independent implementation ----------------------------------------------------------------
def test_fgsm_matches_torchattacks_image_for_image(mnist_model, mnist_test):
    torchattacks = pytest.importorskip("torchattacks")
    sub = mnist_test.subset(200, seed=3)
    x, y = sub.images(), sub.y
    ours = fgsm(mnist_model, x, y, threat=ThreatModel("linf", 0.1)).x_adv
    theirs = torchattacks.FGSM(mnist_model, eps=0.1)(x, y)
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_pgd_robust_accuracy_matches_torchattacks(mnist_model, mnist_test):
    torchattacks = pytest.importorskip("torchattacks")
    sub = mnist_test.subset(500, seed=4)
    x, y = sub.images(), sub.y
    torch.manual_seed(0)  # torchattacks draws its random start from the global RNG
    theirs = torchattacks.PGD(mnist_model, eps=0.1, alpha=0.01, steps=10, random_start=True)(x, y)
    ours = pgd(mnist_model, x, y, threat=ThreatModel("linf", 0.1), steps=10, step_size=0.01,
               generator=torch.Generator().manual_seed(0)).x_adv
    acc = lambda z: (mnist_model(z).argmax(1) == y).float().mean().item()
    assert abs(acc(ours) - acc(theirs)) <= 0.01 or acc(ours) < acc(theirs)
    torch.manual_seed(0)
    theirs = torchattacks.PGDL2(mnist_model, eps=1.5, alpha=0.15, steps=10, random_start=True)(x, y)
    ours = pgd(mnist_model, x, y, threat=ThreatModel("l2", 1.5), steps=10, step_size=0.15,
               generator=torch.Generator().manual_seed(0)).x_adv
    assert abs(acc(ours) - acc(theirs)) <= 0.01 or acc(ours) < acc(theirs)


# -- bad input ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(n for n, s in ATTACKS.items() if not s.black_box))
def test_bad_inputs_are_clear_errors(name, mnist_model, batch):
    x, y = batch
    t = _threat(name)
    p = CHEAP.get(name, {})
    with pytest.raises(InputError, match=r"shape \(N, C, H, W\)"):
        run_attack(name, mnist_model, x[0], y, threat=t, **p)
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        run_attack(name, mnist_model, x * 2, y, threat=t, **p)
    with pytest.raises(InputError, match="floating-point"):
        run_attack(name, mnist_model, (x * 255).to(torch.uint8), y, threat=t, **p)
    with pytest.raises(InputError, match=r"y must have shape"):
        run_attack(name, mnist_model, x, y[:3], threat=t, **p)
    with pytest.raises(InputError, match="needs target labels" if ATTACKS[name].targeted else "untargeted only"):
        run_attack(name, mnist_model, x, y, threat=t, targeted=True, **p)
    with pytest.raises(InputError, match="targeted=False"):
        run_attack(name, mnist_model, x, y, threat=t, target=y, **p)
    with pytest.raises(InputError, match="unknown parameter"):
        run_attack(name, mnist_model, x, y, threat=t, epsilon=0.1)
    with pytest.raises(InputError, match="ThreatModel"):
        run_attack(name, mnist_model, x, y, threat=0.1, **p)


def test_unknown_attack_lists_the_registry():
    with pytest.raises(InputError, match="deepfool, fgsm, .*pgd"):
        get_attack("fsgm")
    assert set(attack_params("pgd")) >= {"threat", "steps", "step_size", "restarts", "generator"}


def test_pgd_rejects_bad_budgets(mnist_model, batch):
    x, y = batch
    with pytest.raises(InputError, match="steps"):
        pgd(mnist_model, x, y, threat=ThreatModel("linf", 0.1), steps=0)
    with pytest.raises(InputError, match="step_size"):
        pgd(mnist_model, x, y, threat=ThreatModel("linf", 0.1), step_size=-1.0)
    with pytest.raises(InputError, match="schedule"):
        pgd(mnist_model, x, y, threat=ThreatModel("linf", 0.1), schedule="linear")
    with pytest.raises(InputError, match="unknown loss 'hinge'; valid: ce, dlr"):
        pgd(mnist_model, x, y, threat=ThreatModel("linf", 0.1), loss="hinge")


def test_pgd_cosine_schedule_and_dlr_loss_stay_in_budget(mnist_model, batch):
    x, y = batch
    t = ThreatModel("l2", 1.0)
    for kw in ({"schedule": "cosine"}, {"loss": "dlr"}):
        res = pgd(mnist_model, x, y, threat=t, steps=5, generator=torch.Generator().manual_seed(0), **kw)
        assert t.contains(x, res.x_adv).all()


# -- registry, labels, counting -------------------------------------------------------------------
def test_registry_records_kind_and_norms():
    assert {n: (s.kind, s.norms) for n, s in ATTACKS.items()} == {
        "fgsm": ("bounded", ("linf", "l2")), "pgd": ("bounded", ("linf", "l2")), "apgd": ("bounded", ("linf", "l2")),
        "apgd-t": ("bounded", ("linf", "l2")),
        "deepfool": ("minimum-norm", ("l2", "linf")), "cw": ("minimum-norm", ("l2",)),
        "square": ("score-based", ("linf", "l2")), "nes": ("score-based", ("linf", "l2")),
        "noise": ("decision-based", ("linf", "l2")), "mifgsm": ("bounded", ("linf", "l2")),
        "transfer": ("transfer", ("linf", "l2")), "onepixel": ("score-based", ()),
        "nattack": ("score-based", ("linf", "l2")), "hsja": ("decision-based", ("l2",))}
    assert ATTACKS["square"].outputs == ("logits", "probs") and ATTACKS["pgd"].outputs == ()
    assert get_attack("deepfool").norm_for(None, {"norm": "linf"}) == "linf"
    assert get_attack("deepfool").norm_for(None, {}) == "l2"  # what it minimises by default
    assert get_attack("cw").norm_for(None, {}) == "l2"


def test_bounded_attacks_need_a_threat(mnist_model, batch):
    x, y = batch
    with pytest.raises(InputError, match="pgd is a bounded attack: pass threat"):
        run_attack("pgd", mnist_model, x, y, steps=2)


@pytest.mark.parametrize("name", sorted(CHEAP))
@pytest.mark.parametrize("dtype", [torch.int16, torch.int32, torch.uint8])
def test_narrow_integer_labels_give_the_int64_result(name, dtype, mnist_model, batch):
    """Defect 2 / issue 7: int16 and int32 labels passed the checks, then crashed inside PyTorch."""
    x, y = batch
    t, p = _threat(name), CHEAP[name]
    a = run_attack(name, mnist_model, x, y, threat=t, generator=torch.Generator().manual_seed(0), **p)
    b = run_attack(name, mnist_model, x, y.to(dtype), threat=t, generator=torch.Generator().manual_seed(0), **p)
    assert torch.equal(a.x_adv, b.x_adv) and torch.equal(a.success, b.success)


@pytest.mark.parametrize("name", sorted(CHEAP))
def test_labels_outside_the_models_classes_are_clear_errors(name, mnist_model, batch):
    x, y = batch
    for bad in (y.clone().fill_(10), y.clone().fill_(-1)):
        with pytest.raises(InputError, match=r"labels in \[0, 10\) for a model with 10 logits"):
            run_attack(name, mnist_model, x, bad, threat=_threat(name), **CHEAP[name])
    with pytest.raises(InputError, match="integer class labels"):
        run_attack(name, mnist_model, x, y.float(), threat=_threat(name), **CHEAP[name])


@pytest.mark.parametrize("name", sorted(CHEAP))
def test_every_attack_fills_success_from_its_returned_inputs(name, mnist_model, batch):
    x, y = batch
    res = run_attack(name, mnist_model, x, y, threat=_threat(name), generator=torch.Generator().manual_seed(0),
                     **CHEAP[name])
    pred = mnist_model(res.x_adv).argmax(1)
    assert res.success.dtype == torch.bool and torch.equal(res.pred, pred) and torch.equal(res.success, pred != y)


def test_passes_are_counted_by_the_wrapper_exactly():
    """A model that counts its own calls and input gradients agrees with the attack's accounting."""
    seen = {"fwd": 0, "bwd": 0}

    class Counting(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(16, 3)

        def forward(self, x):
            seen["fwd"] += x.shape[0]
            if x.requires_grad:
                x.register_hook(lambda g: seen.__setitem__("bwd", seen["bwd"] + g.shape[0]))
            return self.lin(x.flatten(1))

    model = Counting()
    x = torch.rand(5, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    y = torch.zeros(5, dtype=torch.long)
    for name, params in [("pgd", {"steps": 4, "restarts": 2}), ("apgd", {"steps": 6}), ("fgsm", {}),
                         ("deepfool", {"steps": 3, "candidates": 3}),
                         ("cw", {"steps": 4, "binary_search_steps": 2, "abort_early": False})]:
        seen.update(fwd=0, bwd=0)
        res = run_attack(name, model, x, y, threat=ThreatModel("l2", 0.5), generator=torch.Generator().manual_seed(0),
                         **params)
        assert (res.forwards, res.backwards) == (seen["fwd"], seen["bwd"]), name


def test_deepfool_refuses_a_norm_that_contradicts_its_threat(mnist_model, batch):
    """Defect 4: deepfool silently ignored norm= when a threat was given."""
    x, y = batch
    with pytest.raises(InputError, match="norm='l2' and a linf threat model"):
        run_attack("deepfool", mnist_model, x, y, threat=ThreatModel("linf", 0.1), norm="l2", steps=2)
    res = run_attack("deepfool", mnist_model, x, y, threat=ThreatModel("linf", 0.1), norm="linf", steps=2)
    assert ThreatModel("linf", 0.1).contains(x, res.x_adv).all()


def test_pgd_docstring_states_its_random_start():
    """Defect 10: the docstring said the L2 start was uniform in the ball; it is a uniform radius."""
    doc = " ".join(pgd.__doc__.split())
    assert "Start uniformly inside the ball" not in doc
    assert "radius drawn uniformly in [0, ε]" in doc


def test_mifgsm_matches_torchattacks_image_for_image(mnist_model, mnist_test):
    torchattacks = pytest.importorskip("torchattacks")
    sub = mnist_test.subset(100, seed=7)
    x, y = sub.images(), sub.y
    ours = run_attack("mifgsm", mnist_model, x, y, threat=ThreatModel("linf", 0.1), steps=10, decay=1.0).x_adv
    theirs = torchattacks.MIFGSM(mnist_model, eps=0.1, alpha=0.01, steps=10, decay=1.0)(x, y)
    # torchattacks normalises by the mean |gradient|, we by the sum: the same direction up to float
    # rounding, which can flip the sign of a momentum entry that is almost zero (2 pixels of 78,400)
    assert ((ours - theirs).abs() > 1e-5).float().mean() < 1e-4
    acc = lambda z: (mnist_model(z).argmax(1) == y).float().mean().item()
    assert acc(ours) == acc(theirs)
