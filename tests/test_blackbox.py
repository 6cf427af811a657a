"""Black-box attacks: the oracle's promise (no gradients, no weights, counted queries, a hard budget),
the Square attack's budgets, and agreement with torchattacks on the same model and examples."""
import pytest
import torch

from advlab import ThreatModel
from advlab.attacks import ATTACKS, QueryBudgetError, QueryOracle, run_attack
from advlab.attacks.blackbox import margin
from advlab.attacks.blackbox.square import _meta_kernel, _place, _take, p_schedule
from advlab.errors import InputError

BLACK_BOX = sorted(n for n, s in ATTACKS.items() if s.black_box)
CHEAP = {"square": {"queries": 20}, "nes": {"queries": 20, "samples": 8, "sigma": 0.01},
         "noise": {"draws": 20, "sigma": 0.3}, "transfer": {"source_params": {"steps": 3}},
         "onepixel": {"pixels": 2, "population": 6, "generations": 4}, "nattack": {"queries": 20, "population": 10},
         "hsja": {"queries": 20, "init_evals": 4, "steps": 2}}
SCORE_BASED = sorted(n for n, s in ATTACKS.items() if s.kind == "score-based" and "queries" in s.params())
THREATS_OF = {"hsja": [ThreatModel("l2", 1.0)]}
THREATS = [ThreatModel("linf", 0.1), ThreatModel("l2", 1.0)]


def _run(name, model, x, y, threat, output="logits", budget=None, **kw):
    params = {**CHEAP[name], **kw}
    threat = threat if ATTACKS[name].norms else None  # the one-pixel attack's budget is its pixel count
    if threat is not None and threat.norm not in ATTACKS[name].norms:
        threat = ThreatModel(ATTACKS[name].norms[0], threat.eps * 10)
    return run_attack(name, QueryOracle(model, output=output, budget=budget), x, y, threat=threat,
                      generator=torch.Generator().manual_seed(0), **params)


# -- the oracle -------------------------------------------------------------------------------------
def test_oracle_answers_in_each_output_mode_and_counts_per_example(mnist_model, batch):
    x = batch[0][:6]
    logits = mnist_model(x).detach()
    for output, check in [("logits", lambda a: torch.allclose(a, logits)),
                          ("probs", lambda a: torch.allclose(a, logits.softmax(1), atol=1e-6)),
                          ("top1", lambda a: torch.equal(a[0], logits.argmax(1))
                           and torch.allclose(a[1], logits.softmax(1).amax(1), atol=1e-6)),
                          ("label", lambda a: torch.equal(a, logits.argmax(1)))]:
        oracle = QueryOracle(mnist_model, output=output, budget=3)
        oracle.reset(6, x.device)
        assert check(oracle(x, torch.arange(6)))
        oracle(x[[0, 0, 2]], torch.tensor([0, 0, 2]))  # a population of two candidates for example 0
        assert oracle.queries.tolist() == [3, 1, 2, 1, 1, 1]
        with pytest.raises(QueryBudgetError, match=r"budget of 3 per example exceeded for example\(s\) \[0\]"):
            oracle(x[:1], torch.tensor([0]))
        assert oracle.queries.tolist() == [3, 1, 2, 1, 1, 1]  # a refused query is not answered or counted


def test_oracle_is_no_gradient_path(mnist_model, batch):
    x, y = batch
    oracle = QueryOracle(mnist_model, output="logits")
    oracle.reset(len(x), x.device)
    out = oracle(x.requires_grad_(True), torch.arange(len(x)))
    assert not out.requires_grad
    assert not any(hasattr(oracle, a) for a in ("model", "_model", "parameters", "state_dict"))


@pytest.mark.parametrize("name", BLACK_BOX)
@pytest.mark.parametrize("threat", THREATS, ids=str)
def test_no_backward_pass_and_no_parameter_read(name, threat, mnist_model, batch, monkeypatch):
    """The black-box promise: the attack gets answers only. Any backward pass or any access to the
    model's parameters during the attack fails the test."""
    x, y = batch

    class Sealed(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, z):
            return self.inner(z)

        def parameters(self, *a, **k):
            raise AssertionError("a parameter was read")

        named_parameters = state_dict = buffers = parameters

    def no_backward(*a, **k):
        raise AssertionError("a backward pass ran")

    monkeypatch.setattr(torch.autograd, "grad", no_backward)
    monkeypatch.setattr(torch.autograd, "backward", no_backward)
    monkeypatch.setattr(torch.Tensor, "backward", no_backward)
    if name == "transfer":  # the surrogate is the attacker's own model: its gradients are allowed
        monkeypatch.undo()
        CHEAP["transfer"]["surrogate"] = mnist_model
    res = _run(name, Sealed(mnist_model), x, y, threat)
    assert res.backwards == 0 and (threat.contains(x, res.x_adv).all() if ATTACKS[name].norms else True)


@pytest.mark.parametrize("name", BLACK_BOX)
@pytest.mark.parametrize("threat", THREATS, ids=str)
def test_queries_are_counted_exactly_and_stop_once_fooled(name, threat, mnist_model, batch):
    x, y = batch
    calls = torch.zeros(len(x), dtype=torch.long)

    def counting(z):  # identify each query's example by its clean image's nearest neighbour
        d = torch.cdist(z.flatten(1), x.flatten(1))
        calls.index_add_(0, d.argmin(1), torch.ones(len(z), dtype=torch.long))
        return mnist_model(z)

    res = _run(name, counting, x, y, threat, budget=20, **({"surrogate": mnist_model} if name == "transfer" else {}))
    calls -= 1  # the framework's final evaluation of the result is no query
    if name == "hsja":  # its queries start at uniform noise, far from every clean image: compare totals
        assert res.queries.sum() == calls.sum()
    else:
        assert torch.equal(res.queries, calls)
    assert res.queries.max() <= 20
    # an example stops once fooled, or when its next step would not fit in the budget (NES: 1 + 2 × 9)
    last_full = {"nes": 19, "onepixel": 18}.get(name, 20)
    if name == "transfer":
        assert res.queries.sum() == 0
        return
    if name in ("nes", "hsja"):  # their first query is x itself: a misclassified input stops there
        wrong = mnist_model(x).argmax(1) != y
        assert wrong.any() and (res.queries[wrong] == 1).all()
    if name == "hsja":  # it walks the boundary until the budget cannot pay for the next stage
        assert torch.equal(res.x_adv[wrong], x[wrong])
        return
    assert ((res.queries < last_full) <= res.success).all()


@pytest.mark.parametrize("name", BLACK_BOX)
def test_model_untouched_and_same_generator_same_result(name, mnist_model, batch):
    x, y = batch
    mnist_model.train()
    before = [p.detach().clone() for p in mnist_model.parameters()]
    extra = {"surrogate": mnist_model} if name == "transfer" else {}
    a = _run(name, mnist_model, x, y, THREATS[0], **extra)
    b = _run(name, mnist_model, x, y, THREATS[0], **extra)
    assert mnist_model.training and all(torch.equal(p, q) for p, q in zip(before, mnist_model.parameters()))
    mnist_model.eval()
    assert torch.equal(a.x_adv, b.x_adv) and torch.equal(a.queries, b.queries)


@pytest.mark.parametrize("name", SCORE_BASED)
def test_bad_input_is_a_clear_error(name, mnist_model, batch):
    x, y = batch
    t = THREATS[0]
    with pytest.raises(InputError, match=r"black-box attack: pass the model inside QueryOracle"):
        run_attack(name, mnist_model, x, y, threat=t)
    with pytest.raises(InputError, match="needs an oracle answering (logits or probs|probs or logits); "
                                         "this one answers 'label'"):
        run_attack(name, QueryOracle(mnist_model, output="label"), x, y, threat=t, queries=5)
    for budget in (0, -3, 2.5):
        with pytest.raises(InputError, match="budget must be a positive integer"):
            QueryOracle(mnist_model, budget=budget)
    with pytest.raises(InputError, match="queries must be a positive integer"):
        run_attack(name, QueryOracle(mnist_model), x, y, threat=t, queries=0)
    with pytest.raises(InputError, match="needs a query budget"):
        run_attack(name, QueryOracle(mnist_model), x, y, threat=t)
    with pytest.raises(InputError, match="unknown oracle output"):
        QueryOracle(mnist_model, output="scores")
    with pytest.raises(InputError, match="it needs the model itself, not a QueryOracle"):
        run_attack("pgd", QueryOracle(mnist_model), x, y, threat=t)


def test_margin_is_negative_exactly_when_fooled():
    z = torch.tensor([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0]])
    y = torch.tensor([0, 0])
    assert margin(z, y).tolist() == [2.0, -2.0]
    assert margin(z, torch.tensor([1, 1]), targeted=True).tolist() == [2.0, -1.0]


# -- the Square attack's pieces -----------------------------------------------------------------------
def test_p_schedule_halves_at_the_papers_iterations():
    assert [p_schedule(0.8, it, 10000) for it in (0, 10, 11, 50, 51, 200, 201, 9000, 10000)] == \
        [0.8, 0.8, 0.4, 0.4, 0.2, 0.2, 0.1, 0.8 / 512, 0.8 / 512]
    assert p_schedule(0.8, 100, 1000) == 0.8 / 16  # rescaled to the budget: iteration 1000 of 10,000


def test_meta_kernel_is_two_opposite_unit_bumps():
    k = _meta_kernel(7, "cpu")
    assert torch.isclose(k.norm(), torch.tensor(1.0))
    assert (k[:3] > 0).all() and (k[3:] < 0).all()  # rows 0-2 one bump, rows 3-6 the other
    assert torch.isclose(k[:3].norm(), k[3:].norm())  # each bump carries half the energy


def test_window_place_and_take_are_inverse():
    g = torch.Generator().manual_seed(0)
    patch = torch.randn(4, 3, 5, 5, generator=g)
    top, left = torch.tensor([0, 3, 7, 2]), torch.tensor([1, 0, 7, 6])
    canvas = _place(patch, top, left, 12, 12)
    assert torch.equal(_take(canvas, top, left, 5), patch)
    assert torch.isclose(canvas.abs().sum(), patch.abs().sum())


@pytest.mark.parametrize("norm,eps,p_init", [("linf", 0.1, 0.3), ("l2", 1.5, 0.3)])
def test_square_matches_torchattacks(norm, eps, p_init, mnist_model, mnist_test):
    """Robust accuracy within a few points of torchattacks' Square at the same budget and p."""
    torchattacks = pytest.importorskip("torchattacks")
    sub = mnist_test.subset(150, seed=3)
    x, y = sub.images(), sub.y
    ours = run_attack("square", QueryOracle(mnist_model, output="logits", budget=200), x, y,
                      threat=ThreatModel(norm, eps), p_init=p_init, generator=torch.Generator().manual_seed(0))
    atk = torchattacks.Square(mnist_model, norm={"linf": "Linf", "l2": "L2"}[norm], eps=eps, n_queries=200,
                              p_init=p_init, seed=0)
    theirs = (mnist_model(atk(x, y)).argmax(1) == y).float().mean().item()
    acc = (ours.pred == y).float().mean().item()
    assert abs(acc - theirs) <= 0.06, (acc, theirs)
    assert ThreatModel(norm, eps).contains(x, ours.x_adv).all()


# -- evaluation --------------------------------------------------------------------------------------
def test_rows_carry_queries_and_curves_come_from_one_run(mnist_model, mnist_test):
    from advlab.evaluate import accuracy, evaluate_attack, query_summary, success_by_queries

    sub = mnist_test.subset(60, seed=8)
    rows = evaluate_attack(mnist_model, sub, attack="square", threat=ThreatModel("linf", 0.15), budget=40,
                           queries=40, p_init=0.3, seed=0, batch_size=25, progress=False)
    assert rows.queries.between(1, 40).all() and rows.backwards.eq(0).all()
    curve = success_by_queries(rows, [1, 5, 10, 20, 40])
    assert curve.rate.is_monotonic_increasing
    ok = rows[rows.clean_correct]
    assert curve.rate.iloc[-1] == pytest.approx(ok.success.mean())
    assert curve.rate.iloc[-1] == pytest.approx(1 - accuracy(rows).accuracy.item() / rows.clean_correct.mean())
    s = query_summary(rows).iloc[0]
    assert s["fooled"] == int(ok.success.sum()) and s["median_low"] <= s["median"] <= s["median_high"]
    assert s["mean_low"] <= s["mean"] <= s["mean_high"]
    with pytest.raises(InputError, match="budget and output describe a black-box oracle; pgd is a bounded"):
        evaluate_attack(mnist_model, sub, attack="pgd", threat=ThreatModel("linf", 0.1), budget=10, progress=False)


def test_median_interval_covers_the_median():
    from advlab.evaluate import median_interval

    g = torch.Generator().manual_seed(0)
    hits = 0
    for _ in range(400):
        v = torch.randn(31, generator=g).numpy()
        _, lo, hi = median_interval(v)
        hits += lo <= 0.0 <= hi
    assert hits / 400 >= 0.93


def test_noise_and_nes_bad_input(mnist_model, batch):
    x, y = batch
    with pytest.raises(InputError, match="sigma must be >= 0"):
        run_attack("noise", QueryOracle(mnist_model, output="label"), x, y, sigma=-0.1)
    with pytest.raises(InputError, match="draws must be a positive integer"):
        run_attack("noise", QueryOracle(mnist_model, output="label"), x, y, draws=0)
    with pytest.raises(InputError, match="samples must be even"):
        run_attack("nes", QueryOracle(mnist_model), x, y, threat=THREATS[0], queries=10, samples=5)
    with pytest.raises(InputError, match="sigma must be > 0"):
        run_attack("nes", QueryOracle(mnist_model), x, y, threat=THREATS[0], queries=10, sigma=0.0)


def test_noise_worst_of_k_draws_is_at_least_one_draw(mnist_model, mnist_test):
    sub = mnist_test.subset(200, seed=4)
    x, y = sub.images(), sub.y
    acc = {k: (_run("noise", mnist_model, x, y, None, output="label", draws=k).pred == y).float().mean().item()
           for k in (1, 10)}
    assert acc[10] <= acc[1] < (mnist_model(x).argmax(1) == y).float().mean().item() + 0.02
    res = _run("noise", mnist_model, x, y, None, output="label", draws=10)
    d = (res.x_adv - x).flatten(1)
    assert d.norm(dim=1).max() > 1.0  # unbounded noise: the rows report its size, no ε bounds it
    assert torch.equal(res.queries[res.success & (mnist_model(x).argmax(1) == y)] >= 1,
                       torch.ones_like(res.queries[res.success & (mnist_model(x).argmax(1) == y)], dtype=torch.bool))


def test_nes_estimate_points_along_the_gradient(linear_model):
    """On a linear model the NES estimate of the margin's gradient is close in direction to the true one."""
    from advlab.attacks.blackbox.nes import score_loss

    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 4, 4, generator=g) * 0.5 + 0.25
    y = linear_model(x).argmax(1)
    oracle = QueryOracle(linear_model, output="logits")
    oracle.reset(1, x.device)
    u = torch.randn(200, 3, 4, 4, generator=g)
    u = torch.cat([u, -u])
    sigma = 1e-3
    l = score_loss(oracle(x + sigma * u, torch.zeros(400, dtype=torch.long)), y.repeat(400), "logits", "margin",
                   False)
    est = (l.view(-1, 1, 1, 1) * u).sum(0) / (400 * sigma)
    w = linear_model.w.detach()
    true = (w[1 - y] - w[y]).view(3, 4, 4)  # ascending −margin = f_other − f_y
    cos = torch.nn.functional.cosine_similarity(est.flatten(), true.flatten(), dim=0)
    assert cos > 0.5


def test_nes_beats_noise_and_trails_white_box_pgd(mnist_model, mnist_test):
    sub = mnist_test.subset(100, seed=5)
    x, y = sub.images(), sub.y
    t = ThreatModel("linf", 0.1)
    acc = lambda r: (r.pred == y).float().mean().item()
    nes_acc = acc(run_attack("nes", QueryOracle(mnist_model, output="probs", budget=500), x, y, threat=t, sigma=0.01,
                             generator=torch.Generator().manual_seed(0)))
    pgd_acc = acc(run_attack("pgd", mnist_model, x, y, threat=t, steps=20, generator=torch.Generator().manual_seed(0)))
    clean = (mnist_model(x).argmax(1) == y).float().mean().item()
    assert pgd_acc <= nes_acc + 0.02 and nes_acc < clean - 0.05


# -- transfer and obfuscated gradients ------------------------------------------------------------------
def test_transfer_spends_no_query_and_replays_the_surrogates_examples(mnist_model, batch):
    from advlab.training import TrainConfig, load_or_train

    x, y = batch
    mlp, _ = load_or_train(TrainConfig(dataset="mnist", model="mlp", epochs=1, train_subset=3000, eval_subset=500),
                           progress=False)
    t = ThreatModel("linf", 0.15)
    res = run_attack("transfer", QueryOracle(mnist_model, output="label"), x, y, threat=t, surrogate=mlp,
                     source_attack="pgd", source_params={"steps": 5}, generator=torch.Generator().manual_seed(1))
    white = run_attack("pgd", mlp, x, y, threat=t, steps=5, generator=torch.Generator().manual_seed(1))
    assert torch.equal(res.x_adv, white.x_adv) and res.queries.sum() == 0
    assert torch.equal(res.pred, mnist_model(res.x_adv).argmax(1))
    with pytest.raises(InputError, match="transfer needs surrogate"):
        run_attack("transfer", QueryOracle(mnist_model), x, y, threat=t)
    with pytest.raises(InputError, match="bounded white-box attack, got 'deepfool'"):
        run_attack("transfer", QueryOracle(mnist_model), x, y, threat=t, surrogate=mlp, source_attack="deepfool")


def test_bit_depth_reduction_masks_gradients_and_bpda_restores_them(mnist_model, mnist_test):
    from advlab.defenses import BitDepthReduction, bpda

    sub = mnist_test.subset(150, seed=6)
    x, y = sub.images(), sub.y
    squeezed = BitDepthReduction(mnist_model, bits=1)
    through = bpda(squeezed)
    assert torch.equal(squeezed(x), through(x)) and through.model is squeezed.model  # same forward, shared weights
    xr = x.clone().requires_grad_(True)
    torch.nn.functional.cross_entropy(squeezed(xr), y).backward()
    assert xr.grad.abs().max() == 0  # the rounding hides the gradient
    xr.grad = None
    torch.nn.functional.cross_entropy(through(xr), y).backward()
    assert xr.grad.abs().max() > 0
    t = ThreatModel("linf", 0.3)
    acc = lambda z: (squeezed(z).argmax(1) == y).float().mean().item()
    plain = acc(run_attack("pgd", squeezed, x, y, threat=t, steps=10, generator=torch.Generator().manual_seed(0)).x_adv)
    with_bpda = acc(run_attack("pgd", through, x, y, threat=t, steps=10,
                               generator=torch.Generator().manual_seed(0)).x_adv)
    square = run_attack("square", QueryOracle(squeezed, output="logits", budget=200), x, y, threat=t, p_init=0.3,
                        generator=torch.Generator().manual_seed(0))
    assert with_bpda < plain - 0.1 and (square.pred == y).float().mean().item() < plain - 0.1


def test_one_pixel_changes_at_most_k_pixels_and_matches_torchattacks(mnist_model, mnist_test):
    torchattacks = pytest.importorskip("torchattacks")
    sub = mnist_test.subset(100, seed=3)
    x, y = sub.images(), sub.y
    keep = mnist_model(x).argmax(1) == y
    x, y = x[keep], y[keep]
    for pixels in (1, 3):
        res = run_attack("onepixel", QueryOracle(mnist_model, output="probs"), x, y, pixels=pixels, population=30,
                         generations=10, generator=torch.Generator().manual_seed(0))
        changed = ((res.x_adv - x).abs().sum(1) > 0).flatten(1).sum(1)
        assert changed.max() <= pixels and res.queries.max() <= 30 * 11
        theirs = torchattacks.OnePixel(mnist_model, pixels=pixels, steps=10, popsize=10, inf_batch=128)(x, y)
        rate_theirs = (mnist_model(theirs).argmax(1) != y).float().mean().item()
        assert abs(res.success.float().mean().item() - rate_theirs) <= 0.06


def test_one_pixel_bad_input(mnist_model, batch):
    x, y = batch
    with pytest.raises(InputError, match="pixels must be a positive integer"):
        run_attack("onepixel", QueryOracle(mnist_model), x, y, pixels=0)
    with pytest.raises(InputError, match="answering probs or logits; this one answers 'label'"):
        run_attack("onepixel", QueryOracle(mnist_model, output="label"), x, y)
    with pytest.raises(InputError, match="pass the model inside QueryOracle"):
        run_attack("onepixel", mnist_model, x, y)
    with pytest.raises(InputError, match=r"onepixel supports the norms \[\]"):
        run_attack("onepixel", QueryOracle(mnist_model), x, y, threat=THREATS[0])


def test_one_pixel_respects_the_oracle_budget(mnist_model, batch):
    x, y = batch
    res = run_attack("onepixel", QueryOracle(mnist_model, budget=25), x, y, population=8, generations=50)
    assert res.queries.max() <= 24  # the initial population and two generations of 8 fit in 25
    with pytest.raises(InputError, match="a population of 40 needs 40 queries per example; the oracle allows 25"):
        run_attack("onepixel", QueryOracle(mnist_model, budget=25), x, y, population=40)


def test_nattack_finds_adversarial_examples_on_natural_images():
    """On images away from the pixel bounds (where tanh space moves pixels freely), NATTACK fools a
    linear model: the search distribution's mean moves against the margin."""
    torch.manual_seed(0)
    w = torch.randn(10, 3 * 8 * 8, generator=torch.Generator().manual_seed(1))
    model = lambda z: z.flatten(1) @ w.T
    x = 0.25 + 0.5 * torch.rand(40, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    y = model(x).argmax(1)
    t = ThreatModel("linf", 0.05)
    res = run_attack("nattack", QueryOracle(model, output="probs", budget=600), x, y, threat=t, population=30,
                     generator=torch.Generator().manual_seed(3))
    assert t.contains(x, res.x_adv).all() and res.success.float().mean() > 0.5


def test_hsja_shrinks_the_perturbation_with_more_queries_and_keeps_the_budget(mnist_model, mnist_test):
    sub = mnist_test.subset(40, seed=3)
    x, y = sub.images(), sub.y
    keep = mnist_model(x).argmax(1) == y
    x, y = x[keep], y[keep]
    med = {}
    for q in (300, 1500):
        res = run_attack("hsja", QueryOracle(mnist_model, output="label", budget=q), x, y,
                         generator=torch.Generator().manual_seed(0))
        assert res.success.all() and res.queries.max() <= q
        med[q] = (res.x_adv - x).flatten(1).norm(dim=1).median().item()
    white = run_attack("deepfool", mnist_model, x, y)
    assert med[1500] < med[300] and med[1500] > 0.8 * (white.x_adv - x).flatten(1).norm(dim=1).median().item()
    t = ThreatModel("l2", 1.0)
    res = run_attack("hsja", QueryOracle(mnist_model, output="top1", budget=300), x, y, threat=t,
                     generator=torch.Generator().manual_seed(0))
    assert t.contains(x, res.x_adv).all()
