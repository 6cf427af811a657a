"""Randomized networks (Gaussian noise, EOT, majority votes) and the gradient-masking audit: it fails
planted masked models and passes a PGD-trained one."""
import pytest
import torch
from torch import nn

from advlab import ThreatModel
from advlab.attacks import run_attack
from advlab.defenses import EOT, BitDepthReduction, GaussianNoise, majority_vote
from advlab.errors import InputError
from advlab.evaluate import AUDIT_CHECKS, gradient_masking_audit
from advlab.training import TrainConfig, load_or_train

SMALL = dict(dataset="mnist", model="small_cnn", epochs=2, train_subset=4000, batch_size=64, eval_subset=200)
T = ThreatModel("linf", 0.1)


class Temperature(nn.Module):
    """Logits × t: a softmax that saturates, so the cross-entropy's gradient underflows to zero."""

    def __init__(self, model, t):
        super().__init__()
        self.model, self.t = model, t

    def forward(self, x):
        return self.model(x) * self.t


@pytest.fixture(scope="module")
def models():
    standard, _ = load_or_train(TrainConfig(**SMALL), progress=False)
    robust, _ = load_or_train(TrainConfig(**SMALL, method="pgd", method_params={"norm": "linf", "eps": 0.1,
                                                                               "steps": 3}), progress=False)
    return standard, robust


@pytest.fixture(scope="module")
def small(mnist_test):
    return mnist_test.subset(60, seed=5, stratified=True)


def test_eot_with_one_draw_is_the_plain_attack_on_a_deterministic_model(models, small):
    x, y = small.images(), small.y
    plain = run_attack("pgd", models[0], x, y, threat=T, steps=5, generator=torch.Generator().manual_seed(1))
    eot = run_attack("pgd", EOT(models[0], 1), x, y, threat=T, steps=5, generator=torch.Generator().manual_seed(1))
    assert torch.equal(plain.x_adv, eot.x_adv)


def test_eot_batches_its_draws_and_averages_probabilities(models, small):
    calls = []

    class Spy(nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            calls.append(x.shape[0])
            return self.m(x)

    x = small.images()[:8]
    out = EOT(Spy(models[0]), 5)(x)
    assert calls == [40]  # one forward over draws × examples
    # identical draws (a deterministic model): the mean of equal probabilities is each of them
    assert torch.allclose(out, torch.log_softmax(models[0](x), 1), atol=1e-5)
    noisy = EOT(GaussianNoise(models[0], 0.2, seed=0), 4)(x)
    assert torch.allclose(noisy.exp().sum(1), torch.ones(8), atol=1e-5)


def test_gaussian_noise_is_seeded_and_leaves_the_global_rng_alone(models, small):
    x = small.images()[:4]
    state = torch.random.get_rng_state()
    a = GaussianNoise(models[0], 0.3, seed=3)
    first, second = a(x), a(x)
    assert not torch.equal(first, second)  # fresh noise at every call
    a.reseed(3)
    assert torch.equal(a(x), first) and torch.equal(GaussianNoise(models[0], 0.3, seed=3)(x), first)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(GaussianNoise(models[0], 0.0)(x), models[0](x))


def test_majority_vote(models, small):
    x = small.images()
    pred, share = majority_vote(models[0], x, draws=3)
    assert torch.equal(pred, models[0](x).argmax(1)) and (share == 1).all()
    pred, share = majority_vote(GaussianNoise(models[0], 0.5, seed=0), x, draws=7, batch_size=16)
    assert pred.shape == (len(x),) and ((share > 0) & (share <= 1)).all()


@pytest.mark.parametrize("make,match", [
    (lambda m: GaussianNoise(m, -0.1), "sigma"),
    (lambda m: EOT(m, 0), "draws"),
    (lambda m: majority_vote(m, torch.rand(2, 1, 28, 28), draws=0), "draws"),
])
def test_bad_randomization_arguments(models, make, match):
    with pytest.raises(InputError, match=match):
        make(models[0])


def test_audit_refuses_unknown_checks_and_missing_surrogates(models, small):
    with pytest.raises(InputError, match="unknown audit check 'gradient'"):
        gradient_masking_audit(models[1], small, T, checks=["gradient"])
    with pytest.raises(InputError, match="surrogate"):
        gradient_masking_audit(models[1], small, T, checks=["transfer"])
    with pytest.raises(InputError, match="threat model"):
        gradient_masking_audit(models[1], small, "linf")


def test_audit_passes_a_pgd_trained_model(models, small):
    audit = gradient_masking_audit(models[1], small, T, steps=10, queries=100, surrogate=models[0])
    assert list(audit.check) == list(AUDIT_CHECKS)
    verdicts = dict(zip(audit.check, audit.verdict))
    assert "fail" not in verdicts.values(), audit.to_string()
    assert verdicts["gradients"] == verdicts["unbounded"] == verdicts["iterative"] == "pass"
    assert verdicts["consistency"] == "pass"
    assert verdicts["draws"] == verdicts["eot"] == verdicts["bpda"] == "n/a"


@pytest.mark.parametrize("mask", ["bit-depth", "temperature"])
def test_audit_fails_planted_masked_models(models, small, mask):
    model = BitDepthReduction(models[0], bits=1) if mask == "bit-depth" else Temperature(models[0], 1e4)
    audit = gradient_masking_audit(model, small, T, steps=10, queries=100,
                                   checks=["gradients", "loss_ascent", "unbounded", "bpda"])
    verdicts = dict(zip(audit.check, audit.verdict))
    assert verdicts["gradients"] == verdicts["loss_ascent"] == verdicts["unbounded"] == "fail", audit.to_string()
    assert verdicts["bpda"] == ("pass" if mask == "bit-depth" else "n/a")  # 1-bit squeezing resists ε = 0.1


def test_bpda_check_fails_when_bpda_breaks_what_pgd_cannot(models, small):
    """3-bit squeezing at ε = 0.3: rounding hides the gradient, BPDA walks straight through it."""
    audit = gradient_masking_audit(BitDepthReduction(models[0], bits=3), small, ThreatModel("linf", 0.3),
                                   steps=10, checks=["bpda"])
    assert audit.verdict.iloc[0] == "fail", audit.to_string()


# -- masked models written as a user would write them, without advlab's wrappers ---------------------
class _Round(torch.autograd.Function):
    """An input quantiser with a zero backward: the gradient is cut, the forward looks harmless."""

    @staticmethod
    def forward(ctx, x):
        return torch.round(x * 3) / 3

    @staticmethod
    def backward(ctx, g):
        return torch.zeros_like(g)


class Quantise(torch.nn.Module):
    def forward(self, x):
        return _Round.apply(x)


class DetachedThreshold(torch.nn.Module):
    def forward(self, x):
        return (x.detach() > 0.5).float()


class _NoisyGradient(torch.autograd.Function):
    """The identity forward, a backward that adds noise: corrupted gradients, not zero ones."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return g + 10 * torch.randn_like(g)


class NoisyGradient(torch.nn.Module):
    def forward(self, x):
        return _NoisyGradient.apply(x)


class RandomShift(torch.nn.Module):
    """Shifts its input by up to two pixels at random on every call (the global RNG)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(torch.roll(x, int(torch.randint(-2, 3, (1,))), dims=3))


def test_masking_is_found_by_behaviour_not_by_class(models, small):
    """Issue 20: the draws and EOT checks ran only on advlab's GaussianNoise and BPDA only on its
    BitDepthReduction; a user's random shift read as deterministic, a user's quantiser as n/a."""
    from advlab.evaluate.audit import is_randomized, masking_stages

    net = models[0]
    x = small.images()[:16]
    torch.manual_seed(0)  # the shift draws from the global RNG
    assert not is_randomized(net, x) and is_randomized(RandomShift(net), x)
    assert masking_stages(torch.nn.Sequential(Quantise(), net), x) == ["0"]
    assert masking_stages(torch.nn.Sequential(torch.nn.Identity(), DetachedThreshold(), net), x) == ["1"]
    assert masking_stages(net, x) == [] and masking_stages(torch.nn.Sequential(NoisyGradient(), net), x) == []


@pytest.mark.parametrize("mask", ["quantiser", "detached threshold", "noisy gradient", "random shift"])
def test_audit_fails_masked_models_written_without_advlab(models, small, mask):
    base = models[0]
    model = {"quantiser": lambda: torch.nn.Sequential(Quantise(), base),
             "detached threshold": lambda: torch.nn.Sequential(DetachedThreshold(), base),
             "noisy gradient": lambda: torch.nn.Sequential(NoisyGradient(), base),
             "random shift": lambda: RandomShift(base)}[mask]()
    threat = ThreatModel("linf", 0.3)
    torch.manual_seed(0)  # the random shift draws from the global RNG
    audit = gradient_masking_audit(model, small, threat, steps=10, queries=100, draws=4)
    v = dict(zip(audit.check, audit.verdict))
    if mask in ("quantiser", "detached threshold"):
        assert v["gradients"] == "fail" and v["bpda"] == "fail", audit.to_string()  # BPDA breaks what PGD cannot
        assert "through 0" in dict(zip(audit.check, audit.evidence))["bpda"]
    elif mask == "noisy gradient":
        # not the black-box check alone; counted in examples, the black-box gap (8 of 60 at 100 queries) warns
        assert v["consistency"] == "fail" and v["black_box"] != "pass", audit.to_string()
    else:
        # randomness is said (and answered by EOT); finite differences across draws test nothing
        assert v["draws"] != "n/a" and v["eot"] != "n/a" and v["randomness"] == "warn", audit.to_string()
        assert v["consistency"] == "n/a", audit.to_string()


# -- the denoiser front-end -----------------------------------------------------------------------
TINY_CLF = dict(dataset="mnist", model="mlp", model_options={"hidden": (32,)}, epochs=1, train_subset=512,
                batch_size=64, eval_subset=100)


def test_denoiser_pipeline_is_differentiable_end_to_end_and_attacks_stay_in_the_ball(models, small):
    from advlab.defenses import Denoised, DnCNN
    torch.manual_seed(0)
    dn = DnCNN(1, depth=2, width=4).double().eval()
    patch = (0.25 + 0.5 * torch.rand(1, 1, 6, 6, dtype=torch.float64)).requires_grad_(True)
    assert torch.autograd.gradcheck(dn, (patch,), eps=1e-6)  # analytic = numerical Jacobian
    pipe = Denoised(DnCNN(1, depth=2, width=8).eval(), models[0])
    xs, ys = small.images(), small.y
    x_in = xs.clone().requires_grad_(True)
    torch.nn.functional.cross_entropy(pipe(x_in), ys).backward()
    assert x_in.grad.abs().sum() > 0  # the classifier's gradient reaches the input through the denoiser
    res = run_attack("pgd", pipe, xs, ys, threat=T, steps=3, generator=torch.Generator().manual_seed(0))
    assert T.contains(xs, res.x_adv).all() and 0 <= res.x_adv.min() and res.x_adv.max() <= 1


def test_denoiser_training_is_cached_and_reproducible(tmp_path, monkeypatch):
    from advlab.training.denoiser import DenoiserConfig, load_or_train_denoiser
    monkeypatch.setenv("ADVLAB_CACHE", str(tmp_path))
    cfg = DenoiserConfig(classifier=TrainConfig(**TINY_CLF), depth=1, width=4, epochs=1, train_subset=128)
    a, info = load_or_train_denoiser(cfg, progress=False)
    b, again = load_or_train_denoiser(cfg, progress=False)
    assert info["trained"] and not again["trained"] and "dncnn1-fgsm_linf_0.05-on-mlp" in info["path"]
    assert all(torch.equal(u, v) for u, v in zip(a.state_dict().values(), b.state_dict().values()))
    assert info["metrics"]["train_mse"] > 0 and not a.training


@pytest.mark.parametrize("change,match", [({"depth": 0}, "depth must be >= 1"), ({"eps": -0.1}, "eps must be >= 0"),
                                          ({"attack": "square"}, "bounded white-box"),
                                          ({"lr": 0.0}, "lr must be > 0")])
def test_bad_denoiser_configs(change, match):
    from advlab.training.denoiser import DenoiserConfig
    with pytest.raises(InputError, match=match):
        DenoiserConfig(classifier=TrainConfig(**TINY_CLF), **change)
    from advlab.defenses import DnCNN
    with pytest.raises(InputError, match="depth"):
        DnCNN(1, depth=0)
