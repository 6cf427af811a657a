"""The adaptive evaluation against defenses written as a reader writes them (tests/masked_nets.py, no
advlab classes): at the smoke profile's budgets its robust accuracy is within 10 points of an adaptive
attack written here for each, and the audit flags each; an undefended and a PGD-trained model pass,
their numbers within 3 points of the former cascade, and every verdict is the same under five seeds."""
import pytest
import torch

from advlab import ThreatModel
from advlab.attacks import run_attack
from advlab.chapters import defenses, targets
from advlab.data import load_dataset
from advlab.defenses import EOT
from advlab.evaluate import evaluate_attack, gradient_masking_audit, probe, robust_evaluation, worst_case
from advlab.models import predict
from advlab.training import load_or_train
from masked_nets import (InputDropout, MedianRound, NumpyRoundTrip, PartialDetach, ResizePad, Scaled,
                         StraightThroughOf, ThermometerNet, ZeroBackward)

pytestmark = [pytest.mark.slow,
              pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")]
T = ThreatModel("linf", 0.3)
CFG = defenses.CHAPTER.resolve("smoke", {})
BUDGET = dict(steps=CFG.apgd_steps, targets=CFG.apgd_targets, queries=CFG.square_queries,
              escalation_queries=CFG.escalation_queries, eot_draws=CFG.eot_draws)
AUDIT = dict(steps=CFG.audit_steps, queries=CFG.square_queries, draws=CFG.eot_draws)


@pytest.fixture(scope="module")
def nets():
    cf = defenses.mnist_configs(CFG)
    return {name: load_or_train(c, progress=False)[0] for name, c in
            (("standard", cf["standard"]), ("PGD", cf["PGD-L∞"]),
             ("surrogate", targets.surrogate_config(CFG, "mnist")))}


@pytest.fixture(scope="module")
def test_set():
    return load_dataset("mnist", "test").subset(CFG.n_test, seed=CFG.seed, stratified=True)


def first(data, k):
    return data.subset(k, seed=CFG.seed, stratified=True)  # as DataSpec.within draws it


MASKED = {
    "median filter + rounding in forward": lambda n: MedianRound(n),
    "numpy round trip": lambda n: NumpyRoundTrip(n),
    "partial detach at a threshold": lambda n: PartialDetach(n),
    "autograd Function with a zero backward": lambda n: ZeroBackward(n),
    "thermometer encoding, TorchScript": lambda n: torch.jit.script(ThermometerNet(n)),
    "logits × 1e4": lambda n: Scaled(n),
    "test-time dropout": lambda n: InputDropout(n),
    "random resize and pad": lambda n: ResizePad(n),
}


def adaptive_attack(name, model, net, data, seed=0):
    """The attack written for each defense: BPDA through the masking (the network's gradient at the
    defended input), EOT over the randomness, the logits unscaled; then Square with 1,000 queries on what
    survives. Robust accuracy (correct clean and under both)."""
    x, y = data.images(), data.y
    if name in ("test-time dropout", "random resize and pad"):
        approx = EOT(model, 8)
    elif name == "logits × 1e4":
        approx = net
    else:
        approx = StraightThroughOf(model, net)
    gen = torch.Generator().manual_seed(seed)
    x_adv = run_attack("pgd", approx, x, y, threat=T, steps=40, restarts=2, generator=gen).x_adv
    robust = (predict(model, x) == y) & (predict(model, x_adv) == y)
    left = robust.nonzero().squeeze(1)
    if left.numel():
        sq = evaluate_attack(model, data.take(left), attack="square", threat=T, budget=1000, output="logits",
                             seed=seed, progress=False)
        robust[left[torch.as_tensor(~sq.robust.to_numpy())]] = False
    return float(robust.float().mean())


@pytest.mark.parametrize("name", list(MASKED))
def test_masked_models_are_evaluated_adaptively_and_flagged(nets, test_set, name):
    torch.manual_seed(0)  # the random defenses draw from the global generator
    model = MASKED[name](nets["standard"]).eval()
    rows = robust_evaluation({name: model}, test_set, [T], surrogate=nets["surrogate"], seed=0, progress=False,
                             **BUDGET)
    reported = float(rows.robust.mean())
    truth = adaptive_attack(name, model, nets["standard"], test_set)
    assert reported <= truth + 0.10, (name, reported, truth, rows.fooled_by.value_counts().to_dict())
    assert rows.robust.le(rows.cascade_robust).all()  # escalation only ever removes robust examples
    audit = gradient_masking_audit(model, first(test_set, CFG.audit_n), T, surrogate=nets["surrogate"], **AUDIT)
    flagged = audit[audit.verdict.isin(["warn", "fail"])]
    assert len(flagged), audit.to_string()
    if name not in ("test-time dropout", "random resize and pad", "logits × 1e4"):
        assert rows.escalated.all() and "fail" in set(audit.verdict), audit.to_string()


@pytest.mark.parametrize("which", ["standard", "PGD"])
def test_honest_models_pass_and_keep_their_numbers(nets, test_set, which):
    model = nets[which]
    rows = robust_evaluation(model, test_set, [T], surrogate=nets["surrogate"], seed=0, progress=False, **BUDGET)
    assert not rows.escalated.any() and (rows.masking == "none").all()
    former = worst_case(model, test_set, threat=T, seed=0, progress=False, attacks={  # the cascade before issue 29
        "APGD-CE": ("apgd", {"steps": CFG.apgd_steps}), "APGD-DLR": ("apgd", {"steps": CFG.apgd_steps, "loss": "dlr"}),
        "Square": ("square", {"budget": 50, "output": "logits"})})
    assert rows.robust.mean() <= former.robust.mean() + 1e-9  # never weaker
    assert former.robust.mean() - rows.robust.mean() <= 0.03 + 1e-9
    audit = gradient_masking_audit(model, first(test_set, CFG.audit_n), T, surrogate=nets["surrogate"], **AUDIT)
    assert set(audit.verdict) <= {"pass", "n/a"}, audit.to_string()


@pytest.mark.parametrize("which", ["standard", "PGD", "partial detach at a threshold", "logits × 1e4",
                                   "test-time dropout"])
def test_the_verdict_does_not_move_with_the_audit_seed(nets, test_set, which):
    model = nets[which] if which in nets else MASKED[which](nets["standard"]).eval()
    verdicts = set()
    for seed in range(5):
        torch.manual_seed(seed)
        audit = gradient_masking_audit(model, first(test_set, CFG.audit_n), T, surrogate=nets["surrogate"],
                                       seed=seed, **AUDIT)
        verdicts.add("fail" if "fail" in set(audit.verdict) else "warn" if "warn" in set(audit.verdict) else "pass")
    assert len(verdicts) == 1, verdicts


def test_the_probe_localises_what_it_can(nets, test_set):
    net = nets["standard"]
    x = first(test_set, 16)
    assert probe(net, x).flags == []
    inside = probe(PartialDetach(net), x)
    assert inside.flags == ["partial gradients"] and "inside the model's own forward" in inside.where
    seq = probe(torch.nn.Sequential(torch.nn.Identity(), ZeroBackward(torch.nn.Identity()), net), x)
    assert seq.stages == ["1"] and "gradient-cutting stages" in seq.flags
    assert probe(InputDropout(net), x).randomized


def test_minimum_norm_attacks_run_on_a_model_without_a_gradient_path(nets, test_set):
    from advlab.chapters import your_model
    from advlab.evaluate import minimal_norms

    data = first(test_set, 10)
    attacks = {"DeepFool-L2": ("deepfool", {"steps": 5}), "CW-L2": ("cw", {"steps": 5, "binary_search_steps": 1})}
    rows = minimal_norms({"numpy": NumpyRoundTrip(nets["standard"]), "net": nets["standard"]}, data, attacks,
                         progress=False)
    numpy_rows = rows[rows.model == "numpy"]
    assert not numpy_rows.gradient.any() and rows[rows.model == "net"].gradient.all()
    assert not numpy_rows[numpy_rows.attack == "DeepFool-L2"].success.any()  # it cannot move, and says why
    assert "numpy has no input gradient" in your_model.gradient_text(rows)
    assert your_model.gradient_text(rows[rows.model == "net"]) == ""
