"""The result cache: keys, tables on disk, shard-independent random streams, resumption, bad input."""
import warnings

import pandas as pd
import pytest
import torch

from advlab import distributed, results
from advlab.results import engine
from advlab.cache import CACHED_ONLY_ENV
from advlab.errors import CacheMiss, InputError
from advlab.precision import Autocast
from advlab.results import (DataSpec, Evaluation, Plan, block_seed, decode_table, encode_table, load_or_evaluate,
                            load_result)
from advlab.training import TrainConfig

MODEL = TrainConfig(dataset="mnist", model="small_cnn", epochs=1, train_subset=3000, eval_subset=500)  # conftest's


def _pgd(n=40, block=16, **kw):
    return Evaluation("attack", {"cnn": MODEL}, DataSpec("mnist", n=n, seed=3),
                      {"attack": "pgd", "threat": ["linf", 0.1], "steps": 3}, seed=5, block=block, **kw)


def _stable(df):
    return df.drop(columns=results.timing_columns(df))


def test_table_round_trip_is_exact():
    df = pd.DataFrame({"a": [1.0, float("nan"), 1 / 3], "b": [True, False, True], "c": pd.Series([1, 2, 3]),
                       "s": pd.Series(["x", "y", "z"], dtype="str"), "o": pd.Series(["p", None, "q"], dtype=object)})
    back = decode_table(encode_table(df))
    pd.testing.assert_frame_equal(back, df)


def test_block_seeds_are_distinct():
    seeds = {block_seed(s, b) for s in range(5) for b in range(100)}
    assert len(seeds) == 500 and all(0 <= s < 2**63 for s in seeds)


def test_result_is_cached_and_reloaded(tmp_path, monkeypatch, mnist_model):
    monkeypatch.setenv("ADVLAB_CACHE", str(tmp_path))
    ev = _pgd()
    first = load_or_evaluate(ev, progress=False)
    assert ev.path().exists()
    assert len(first) == 40 and sorted(first.block.unique()) == [0, 1, 2]
    monkeypatch.setenv(CACHED_ONLY_ENV, "1")  # a second call must not compute anything
    pd.testing.assert_frame_equal(load_or_evaluate(ev, progress=False), first)
    assert not list((ev.path().parent / ".parts").glob("*/*.pt"))  # the parts are gone once the table is whole


def test_tables_do_not_depend_on_how_blocks_are_shared(tmp_path, monkeypatch, mnist_model):
    """Rank r of K computes blocks r, r + K, ...: simulate 3 ranks one after another, each on its share."""
    monkeypatch.setenv("ADVLAB_CACHE", str(tmp_path / "one"))
    whole = load_or_evaluate(_pgd(), progress=False)
    ev = _pgd()
    data, models = ev.data.load(), engine._models(ev, "cpu", False)
    blocks = list(enumerate(ev.blocks(len(data))))
    parts = {}
    for rank in range(3):
        for b, rows in distributed.shard(blocks, distributed.Context(rank, 3)):
            parts[b] = engine._run_block(ev, models, data, b, rows)
    sharded = pd.concat([parts[b] for b in sorted(parts)], ignore_index=True)
    pd.testing.assert_frame_equal(_stable(decode_table(encode_table(sharded))), _stable(whole))


def test_random_streams_follow_blocks_not_batches(tmp_path, monkeypatch, mnist_model):
    """The random start of an example depends on its block and seed only: another seed changes it."""
    monkeypatch.setenv("ADVLAB_CACHE", str(tmp_path))
    a = load_or_evaluate(_pgd(), progress=False)
    b = load_or_evaluate(_pgd().__class__(**{**_pgd().__dict__, "seed": 6}), progress=False)
    assert not a.linf.equals(b.linf)


def test_killed_run_resumes_with_missing_blocks_only(tmp_path, monkeypatch, mnist_model):
    monkeypatch.setenv("ADVLAB_CACHE", str(tmp_path))
    ev = _pgd()
    calls = []
    real = engine._run_block

    def dying(ev_, models, data, b, rows, inputs=None):
        if b == 2 and not calls.count("resumed"):
            raise KeyboardInterrupt  # the process is killed in its third block
        calls.append(b)
        return real(ev_, models, data, b, rows, inputs)

    monkeypatch.setattr(engine, "_run_block", dying)
    with pytest.raises(KeyboardInterrupt):
        load_or_evaluate(ev, progress=False)
    assert not ev.path().exists()  # no partial table in the cache
    assert not list(tmp_path.rglob("*.tmp"))
    assert calls == [0, 1]
    calls.append("resumed")
    table = load_or_evaluate(ev, progress=False)
    assert calls == [0, 1, "resumed", 2]  # blocks 0 and 1 were not recomputed
    monkeypatch.setattr(engine, "_run_block", real)
    fresh = load_or_evaluate(ev, cache_root=tmp_path / "fresh", progress=False)
    pd.testing.assert_frame_equal(_stable(table), _stable(fresh))


def test_foreign_or_corrupt_result_is_recomputed(tmp_path, monkeypatch, mnist_model):
    monkeypatch.setenv("ADVLAB_CACHE", str(tmp_path))
    ev = _pgd(n=16)
    table = load_or_evaluate(ev, progress=False)
    path = ev.path()
    obj = torch.load(path, weights_only=True)
    obj["evaluation"]["kernels"] = "another-version"  # written by other library code, same file name
    torch.save(obj, path)
    with pytest.warns(UserWarning, match="another evaluation or library version"):
        again = load_or_evaluate(ev, progress=False)
    pd.testing.assert_frame_equal(_stable(again), _stable(table))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.warns(UserWarning, match="truncated or corrupt"):
        load_or_evaluate(ev, progress=False)
    obj = torch.load(path, weights_only=True)
    obj["table"]["data"]["robust"][0] ^= True  # a flipped value that still unpickles
    torch.save(obj, path)
    with pytest.warns(UserWarning, match="digest"):
        load_or_evaluate(ev, progress=False)


def test_key_covers_configuration_and_code(monkeypatch):
    base = _pgd()
    others = [_pgd(n=41), _pgd(block=8), _pgd(precision="bf16"),
              Evaluation("attack", {"cnn": MODEL}, base.data, {**base.params, "steps": 4}, seed=5, block=16),
              Evaluation("attack", {"cnn": TrainConfig(**{**MODEL.to_dict(), "seed": 1})}, base.data, base.params,
                         seed=5, block=16)]
    key = base.key
    assert len({key} | {e.key for e in others}) == 1 + len(others)
    monkeypatch.setattr(results.spec, "kernel_hash", lambda kind: "changed")
    assert _pgd().key != key


def _edit(path, text="\n\ndef _edited():\n    return 1\n"):
    path.write_text(path.read_text() + text)


def test_an_edit_recomputes_exactly_the_tables_it_can_change(tmp_path, monkeypatch):
    """A table is keyed by the code its kind can reach, followed by name: editing the MILP or the
    certificate kinds' module moves their tables only; the PGD table stays cached. An attack's module
    moves every table that can run attacks; a comment moves nothing."""
    import shutil

    from advlab import source
    pkg = tmp_path / "advlab"
    shutil.copytree(source.PACKAGE, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(source, "PACKAGE", pkg)
    data = DataSpec("mnist", n=20, seed=3)
    tables = {"pgd": _pgd(), "bounds": Evaluation("bounds", {"cnn": MODEL}, data, {"threat": ["linf", 0.1]}),
              "noise": Evaluation("noise", {"cnn": MODEL}, data, {"sigmas": [0.1], "draws": 2}),
              "audit": Evaluation("audit", {"cnn": MODEL}, data, {"threat": ["linf", 0.1], "steps": 3, "queries": 10,
                                                                "draws": 2}, block=20)}

    def keys():
        results.spec._kernel_hash.cache_clear()
        return {name: ev.key for name, ev in tables.items()}

    before = keys()
    _edit(pkg / "certify" / "milp.py", "\n# a comment\n")
    assert keys() == before
    for edited, moved in (("certify/milp.py", {"bounds"}), ("results/kinds/certificates.py", {"bounds"}),
                          ("results/kinds/noise.py", {"noise"}), ("evaluate/audit.py", {"audit"}),
                          ("attacks/blackbox/square.py", {"pgd", "audit", "noise", "bounds"})):
        _edit(pkg / edited)
        after = keys()
        assert {n for n in after if after[n] != before[n]} == moved, edited
        before = after


def test_cached_only_refuses_to_compute(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVLAB_CACHE", str(tmp_path))
    monkeypatch.setenv(CACHED_ONLY_ENV, "1")
    with pytest.raises(CacheMiss, match="advlab precompute"):
        load_or_evaluate(_pgd(), progress=False)
    from advlab.training import load_or_train
    with pytest.raises(CacheMiss, match="checkpoint"):
        load_or_train(MODEL, progress=False)


def test_bad_declarations():
    with pytest.raises(InputError, match="evaluation kind"):
        Evaluation("attak", {"cnn": MODEL}, DataSpec("mnist"))
    with pytest.raises(InputError, match="precision"):
        _pgd(precision="fp16")
    with pytest.raises(InputError, match="JSON"):
        Evaluation("attack", {"cnn": MODEL}, DataSpec("mnist"), {"attack": "pgd", "threat": object()})
    with pytest.raises(InputError, match="TrainConfig"):
        Evaluation("attack", {"cnn": "small_cnn"}, DataSpec("mnist"))
    with pytest.raises(InputError, match="block"):
        _pgd(block=0)
    with pytest.raises(InputError, match="positive int"):
        DataSpec("mnist", n=0)
    with pytest.raises(InputError):
        DataSpec("imagenet")


def test_more_processes_than_examples(tmp_path, monkeypatch, mnist_model):
    monkeypatch.setenv("ADVLAB_CACHE", str(tmp_path))
    monkeypatch.setattr(engine, "context", lambda: distributed.Context(0, 5))
    monkeypatch.setattr(engine, "broadcast_from_main", lambda obj: obj)
    with pytest.raises(InputError, match="5 processes for an evaluation of 4 examples"):
        load_or_evaluate(_pgd(n=4), progress=False)


def test_bf16_precision_is_honoured(tmp_path, monkeypatch, mnist_model):
    """precision="bf16" runs the model's convolutions in bf16 (its logits move in the last bits);
    the default fp32 leaves the model as it is."""
    monkeypatch.setenv("ADVLAB_CACHE", str(tmp_path))
    ev = _pgd(n=16)
    plain = engine._models(ev, "cpu", False)["cnn"]
    fast = engine._models(Evaluation(**{**ev.__dict__, "precision": "bf16"}), "cpu", False)["cnn"]
    assert isinstance(fast, Autocast) and not isinstance(plain, Autocast)
    seen = []
    fast.model[1].features[0].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    x = ev.data.load().images()
    logits, fp32 = fast(x), plain(x)
    assert seen == [torch.bfloat16] and logits.dtype == torch.float32
    assert not torch.equal(logits, fp32) and torch.allclose(logits, fp32, atol=0.1, rtol=0.05)
    assert (logits.argmax(1) == fp32.argmax(1)).float().mean() > 0.9
    table = load_or_evaluate(Evaluation(**{**ev.__dict__, "precision": "bf16"}), progress=False)
    assert len(table) == 16 and (table.linf <= 0.1 + 1e-6).all()


def test_plan_lists_each_model_once(mnist_model):
    ev = _pgd()
    plan = Plan(trainings={"cnn": MODEL}, evaluations={"a": ev, "b": _pgd(n=20)})
    assert list(plan.all_trainings()) == ["cnn"]
    assert plan.smallest() == 20
    with pytest.raises(InputError, match="planned evaluation"):
        plan.result("c")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert set(plan.status().columns) == {"item", "what", "cached"}


def test_exact_verification_reads_its_inputs(tmp_path, monkeypatch):
    """The MILP decides only the first `head` examples the certificates and attacks leave open."""
    monkeypatch.setenv("ADVLAB_CACHE", str(tmp_path))
    mlp = TrainConfig(dataset="mnist", model="mlp", model_options={"hidden": [20]}, epochs=1, train_subset=1000,
                      eval_subset=100)
    data = DataSpec("mnist", n=12, seed=1)
    threat = ["linf", 0.02]
    bounds = Evaluation("bounds", {"m": mlp}, data, {"threat": threat}, block=5)
    attacks = Evaluation("robust", {"m": mlp}, data, {"threats": [threat], "steps": 5, "queries": 20}, block=5)
    exact = Evaluation("exact", {"m": mlp}, data, {"threat": threat, "time_limit": 5.0, "head": 7}, block=5,
                       inputs={"certificates": bounds, "attacks": attacks})
    table = load_or_evaluate(exact, progress=False)
    cert, att = load_result(bounds), load_result(attacks)
    assert cert is not None and att is not None  # the inputs were computed and cached first
    assert list(table.example) == list(cert.example)
    head, certified = table.index < 7, (cert.ibp | cert.crown).to_numpy()
    assert table.exact[~head].isna().all() and table.exact[head].notna().all()
    assert (table.exact[head & certified] == "robust").all()
    assert (table.exact[head & ~att.robust.to_numpy()] == "not robust").all()
    solved = table.milp_seconds.notna()
    assert (solved == (head & att.robust.to_numpy() & ~certified)).all()
    assert exact.key != Evaluation(**{**exact.__dict__, "inputs": {"certificates": bounds, "attacks": bounds}}).key
    with pytest.raises(InputError, match="takes inputs"):
        Evaluation("exact", {"m": mlp}, data, exact.params)
    with pytest.raises(InputError, match="takes no inputs"):
        Evaluation("bounds", {"m": mlp}, data, {"threat": threat}, inputs={"x": bounds})
    with pytest.raises(InputError, match="same examples"):
        Evaluation("exact", {"m": mlp}, DataSpec("mnist", n=5), exact.params, inputs=exact.inputs)


def test_precompute_reports_what_it_did(tmp_path, monkeypatch):
    """A corrupt checkpoint or table is replaced, and the status table says "computed" for it."""
    monkeypatch.setenv("ADVLAB_CACHE", str(tmp_path))
    cfg = TrainConfig(dataset="mnist", model="mlp", epochs=1, train_subset=256, eval_subset=100, batch_size=64,
                      schedule="cyclic")
    ev = Evaluation("clean", {"mlp": cfg}, DataSpec("mnist", n=8, seed=0), {}, block=8)
    plan = Plan(trainings={"mlp": cfg}, evaluations={"clean": ev})
    assert list(plan.precompute(progress=False).was) == ["computed", "computed"]
    assert list(plan.precompute(progress=False).was) == ["cached", "cached"]
    for path in (cfg.checkpoint_path(), ev.path()):
        path.write_bytes(path.read_bytes()[:100])  # truncated: there, but not a valid file
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "retraining", "recomputing": their own tests check them
        assert list(plan.precompute(progress=False).was) == ["computed", "computed"]


# -- model recipes, sub-subsets, whole-table inputs, kept inputs ------------------------------------
def test_model_spec_wraps_the_trained_model_and_keys_its_wrappers(tmp_path, monkeypatch, mnist_model):
    from advlab.defenses import EOT, BitDepthReduction, GaussianNoise
    from advlab.evaluate import evaluate_attack
    from advlab.results import ModelSpec

    squeezed = ModelSpec(MODEL, [["bits", {"bits": 2}]])
    assert squeezed.key != ModelSpec(MODEL, [["bits", {"bits": 3}]]).key != MODEL.key
    assert isinstance(squeezed.build(mnist_model), BitDepthReduction)
    eot = ModelSpec(MODEL, [["noise", {"sigma": 0.1}], ["eot", {"draws": 3}]]).build(mnist_model)
    assert isinstance(eot, EOT) and isinstance(eot.model, GaussianNoise)
    monkeypatch.setenv("ADVLAB_CACHE", str(tmp_path))
    ev = Evaluation("attack", {"squeezed": squeezed}, DataSpec("mnist", n=20, seed=3),
                    {"attack": "pgd", "threat": ["linf", 0.1], "steps": 3}, seed=5, block=32)
    table = load_or_evaluate(ev, progress=False)
    data = ev.data.load()
    direct = evaluate_attack(BitDepthReduction(mnist_model, bits=2), data, attack="pgd",
                             threat=results.threat_of(["linf", 0.1]), steps=3, seed=block_seed(5, 0), progress=False)
    assert table.robust.tolist() == direct.robust.tolist() and table.linf.tolist() == direct.linf.tolist()
    plan = Plan(evaluations={"squeezed": ev})
    assert list(plan.all_trainings().values()) == [MODEL]  # the recipe's training is planned


def test_bad_model_specs():
    from advlab.results import ModelSpec

    with pytest.raises(InputError, match="unknown model wrapper .bit."):
        ModelSpec(MODEL, [["bit", {"bits": 2}]])
    with pytest.raises(InputError, match="wrapper 'eot'"):
        ModelSpec(MODEL, [["eot", {"samples": 2}]])
    with pytest.raises(InputError, match="JSON"):
        ModelSpec(MODEL, [["noise", {"sigma": object()}]])
    with pytest.raises(InputError, match="TrainConfig"):
        ModelSpec("small_cnn")
    with pytest.raises(InputError, match="trained on its dataset"):
        Evaluation("clean", {"cnn": MODEL}, DataSpec("cifar10", n=10))


def test_random_wrappers_draw_from_the_block_stream(tmp_path, monkeypatch, mnist_model):
    """A noisy model's table does not depend on which blocks one process computed before."""
    from advlab.results import ModelSpec

    monkeypatch.setenv("ADVLAB_CACHE", str(tmp_path))
    ev = Evaluation("clean", {"noisy": ModelSpec(MODEL, [["noise", {"sigma": 0.5}]])}, DataSpec("mnist", n=40, seed=3),
                    seed=1, block=16)
    data, models = ev.data.load(), engine._models(ev, "cpu", False)
    blocks = list(enumerate(ev.blocks(len(data))))
    forward = [engine._run_block(ev, models, data, b, rows) for b, rows in blocks]
    backward = [engine._run_block(ev, models, data, b, rows) for b, rows in reversed(blocks)][::-1]
    for a, b in zip(forward, backward):
        pd.testing.assert_frame_equal(a, b)


def test_sub_subset_is_drawn_from_the_subset():
    spec = DataSpec("mnist", n=60, seed=2)
    sub = spec.within(12).load()
    assert len(sub) == 12 and set(sub.indices.tolist()) <= set(spec.load().indices.tolist())
    assert torch.equal(sub.indices, spec.load().subset(12, seed=2, stratified=True).indices)
    with pytest.raises(InputError, match="cannot exceed n"):
        DataSpec("mnist", n=10, sub=20)


def test_matched_sweep_attacks_at_the_noise_medians(tmp_path, monkeypatch, mnist_model):
    from advlab.evaluate import noise_summary

    monkeypatch.setenv("ADVLAB_CACHE", str(tmp_path))
    data = DataSpec("mnist", n=24, seed=3)
    noise = Evaluation("noise", {"cnn": MODEL}, data, {"sigmas": [0.1, 0.3], "draws": 2}, block=10)
    ev = Evaluation("matched_sweep", {"cnn": MODEL}, data,
                    {"attacks": {"pgd": {"steps": 2}}, "norm": "l2", "eps_grid": [0.5]}, block=10,
                    inputs={"noise": noise})
    table = load_or_evaluate(ev, progress=False)
    medians = noise_summary(load_or_evaluate(noise, progress=False)).median_l2
    assert set(table.eps) == {0.5, *medians} and len(table) == 24 * 3
    with pytest.raises(InputError, match="same examples"):
        Evaluation("matched_sweep", {"cnn": MODEL}, DataSpec("mnist", n=30, seed=3),
                   {"attacks": {"pgd": {}}, "norm": "l2", "eps_grid": [0.5]}, inputs={"noise": noise})


def test_kept_adversarial_inputs_are_rebuilt_exactly(mnist_model):
    from advlab.attacks import run_attack
    from advlab.evaluate import adversarial_inputs, evaluate_attack
    from advlab.models import predict
    from advlab.threat import ThreatModel

    data = DataSpec("mnist", n=30, seed=4).load()
    threat = ThreatModel("linf", 0.15)
    rows = evaluate_attack(mnist_model, data, attack="pgd", threat=threat, steps=5, seed=1, keep_inputs=4,
                           batch_size=8, progress=False)
    x_adv, kept = adversarial_inputs(rows, data)
    assert len(kept) == 4 and kept.clean_correct.all()
    assert rows.changed.notna().sum() == 4 and rows.changed.notna().idxmax() == rows.clean_correct.idxmax()
    assert predict(mnist_model, x_adv).tolist() == kept.adv_pred.tolist()
    pos = [data.indices.tolist().index(e) for e in kept.example]
    assert threat.contains(data.images()[pos], x_adv).all()
    # the same attack's own output, byte for byte (same generator stream: the first batch)
    first = data.take(torch.arange(8))
    res = run_attack("pgd", mnist_model, first.images(), first.y, threat=threat, steps=5,
                     generator=torch.Generator().manual_seed(1))
    in_first = [p for p in pos if p < 8]
    assert torch.equal(x_adv[:len(in_first)], res.x_adv[in_first])
    with pytest.raises(InputError, match="keep_inputs"):
        evaluate_attack(mnist_model, data, attack="fgsm", threat=threat, keep_inputs=-1)
    with pytest.raises(InputError, match="kept no adversarial inputs"):
        adversarial_inputs(rows.drop(columns="changed"), data)


def test_transferred_attack_is_crafted_on_the_source_only(tmp_path, monkeypatch, mnist_model):
    from advlab.defenses import BitDepthReduction
    from advlab.evaluate import evaluate_attack
    from advlab.results import ModelSpec

    monkeypatch.setenv("ADVLAB_CACHE", str(tmp_path))
    ev = Evaluation("transferred", {"plain": MODEL, "squeezed": ModelSpec(MODEL, [["bits", {"bits": 2}]])},
                    DataSpec("mnist", n=16, seed=3), {"source": "plain", "source_attack": "fgsm",
                                                      "threat": ["linf", 0.2]}, block=16)
    table = load_or_evaluate(ev, progress=False)
    assert set(table.model) == {"squeezed"} and set(table.attack) == {"transfer"}
    direct = evaluate_attack(BitDepthReduction(mnist_model, bits=2), ev.data.load(), attack="transfer",
                             threat=results.threat_of(["linf", 0.2]), surrogate=mnist_model, source_attack="fgsm",
                             output="logits", progress=False)
    assert table.robust.tolist() == direct.robust.tolist()
    with pytest.raises(InputError, match="unknown source model"):
        load_or_evaluate(Evaluation("transferred", {"plain": MODEL}, DataSpec("mnist", n=4, seed=3),
                                    {"source": "plian", "source_attack": "fgsm", "threat": ["linf", 0.2]}),
                         progress=False)


def test_plan_reads_only_what_it_declares(tmp_path, monkeypatch, mnist_model):
    monkeypatch.setenv("ADVLAB_CACHE", str(tmp_path))
    plan = Plan(trainings={"digits cnn": MODEL}, evaluations={"pgd": _pgd(n=8)})
    pd.testing.assert_frame_equal(plan.result(plan.evaluations["pgd"], progress=False),
                                  plan.result("pgd", progress=False))
    with pytest.raises(InputError, match="not in the plan"):
        plan.result(_pgd(n=9), progress=False)
    records = plan.records("digits")
    assert list(records) == ["cnn"] and records["cnn"]["config"] == MODEL.to_dict()
    assert list(plan.model_table("digits").index) == ["cnn"]
    with pytest.raises(InputError, match="no planned training in group 'cifar'"):
        plan.records("cifar")


def test_a_render_only_run_never_trains_a_denoiser(tmp_path, monkeypatch):
    from advlab.results import DenoisedModel, ModelSpec
    from advlab.training.denoiser import DenoiserConfig

    monkeypatch.setenv("ADVLAB_CACHE", str(tmp_path))
    monkeypatch.setenv(CACHED_ONLY_ENV, "1")
    dn = DenoiserConfig(classifier=MODEL, eps=0.1, depth=2, width=8, epochs=1, train_subset=64)
    squeezed = ModelSpec(DenoisedModel(dn), [["bits", {"bits": 3}]])  # wrappers go on any source
    plan = Plan(evaluations={"dn": Evaluation("clean", {"dn": DenoisedModel(dn), "squeezed dn": squeezed},
                                              DataSpec("mnist", n=8))})
    assert list(plan.all_denoisers().values()) == [dn]
    with pytest.raises(CacheMiss, match="no cached denoiser"):
        plan.records("denoiser")
    assert not dn.checkpoint_path().exists()


def test_random_networks_are_declared_like_models_and_never_trained(tmp_path, monkeypatch):
    """The cost of a certificate is timed on seeded random weights: planned and cached like the rest."""
    from advlab.chapters import certification
    from advlab.results import RandomNet

    monkeypatch.setenv("ADVLAB_CACHE", str(tmp_path))
    a, b = RandomNet("conv_small", "mnist", {"width": 0.25}, seed=1), RandomNet("conv_small", "mnist", {"width": 0.25})
    assert a.key != b.key and a.key == RandomNet("conv_small", "mnist", {"width": 0.25}, seed=1).key
    wa, wb = a.build("cpu").state_dict(), RandomNet("conv_small", "mnist", {"width": 0.25}, seed=1).build("cpu")
    assert all(torch.equal(v, wb.state_dict()[k]) for k, v in wa.items())
    with pytest.raises(InputError, match="unknown option"):
        RandomNet("conv_small", "mnist", {"depth": 3})
    ev = Evaluation("bound_cost", {"0.25": a, "0.5": RandomNet("conv_small", "mnist", {"width": 0.5}, seed=1)},
                    DataSpec("mnist", n=20, seed=0).within(4), {"threat": ["linf", 0.1]}, block=4)
    plan = Plan(evaluations={"cost": ev})
    assert plan.all_trainings() == {}
    table = certification.bound_cost(plan.result("cost", progress=False))
    assert list(table.index) == [0.25, 0.5] and table.ReLUs.iloc[0] < table.ReLUs.iloc[1]
    assert table["CROWN per example"].str.endswith(" ms").all()
    assert not (tmp_path / "models").exists()  # nothing was trained


def test_a_kinds_parameters_are_checked_when_it_is_declared():
    """A misspelt parameter used to fail inside a block, after a precompute's earlier items had run."""
    data = DataSpec("mnist", n=8, seed=0)
    with pytest.raises(InputError, match=r"unknown parameter\(s\) \['step'\] for evaluation kind 'robust' "
                                         r"\(did you mean steps\?\); valid: \[.*'escalation_queries'.*\]"):
        Evaluation("robust", {"cnn": MODEL}, data, {"threats": [["linf", 0.1]], "step": 10})
    with pytest.raises(InputError, match=r"needs parameter\(s\) \['threats'\]"):
        Evaluation("robust", {"cnn": MODEL}, data, {"steps": 10})
    # a **params kind hands the rest to the attack, whose own parameters decide
    with pytest.raises(InputError, match=r"unknown parameter\(s\) \['stepz'\] for attack 'pgd'"):
        Evaluation("attack", {"cnn": MODEL}, data, {"attack": "pgd", "threat": ["linf", 0.1], "stepz": 3})
    with pytest.raises(InputError, match="unknown attack"):
        Evaluation("attack", {"cnn": MODEL}, data, {"attack": "pgdd", "threat": ["linf", 0.1], "steps": 3})
    ok = Evaluation("attack", {"cnn": MODEL}, data, {"attack": "square", "threat": ["linf", 0.1], "budget": 50,
                                                     "output": "logits", "p_init": 0.3})
    assert ok.params["budget"] == 50


def test_defaults_are_part_of_the_declaration_and_its_key():
    """The key names every option: a default written out is the same table, another value another."""
    data = DataSpec("mnist", n=8, seed=0)
    bare = Evaluation("bounds", {"cnn": MODEL}, data, {"threat": ["linf", 0.1]})
    assert bare.params == {"threat": ["linf", 0.1], "methods": ["ibp", "crown"], "unsupported": "error",
                           "max_relus": None, "alpha_steps": 20, "alpha_lr": 0.25}
    spelled = Evaluation("bounds", {"cnn": MODEL}, data, {"threat": ["linf", 0.1], "alpha_steps": 20})
    assert spelled.key == bare.key
    keys = {bare.key, Evaluation("bounds", {"cnn": MODEL}, data, {"threat": ["linf", 0.1], "alpha_steps": 50}).key,
            Evaluation("bounds", {"cnn": MODEL}, data, {"threat": ["linf", 0.1], "alpha_lr": 0.1}).key,
            _pgd().key, _pgd(cuda_graphs=True).key}
    assert len(keys) == 5
    with pytest.raises(InputError, match="cuda_graphs must be True or False"):
        _pgd(cuda_graphs="yes")


def test_a_whole_subset_kind_refuses_a_smaller_block():
    """The audit's accuracies and ρ_adv's FGSM ε are statistics of the whole subset: cut into blocks they
    would silently be other numbers."""
    audit = {"threat": ["linf", 0.1], "steps": 5, "queries": 100, "draws": 2}
    Evaluation("audit", {"cnn": MODEL}, DataSpec("mnist", n=20, seed=0), audit, block=20)
    with pytest.raises(InputError, match="'audit' computes over its whole subset at once: declare block >= 20"):
        Evaluation("audit", {"cnn": MODEL}, DataSpec("mnist", n=20, seed=0), audit, block=16)
    with pytest.raises(InputError, match="block >= 10000"):  # n=None: the whole split
        Evaluation("rho_adv", {"cnn": MODEL}, DataSpec("mnist"), {"deepfool": {}, "fgsm_rate": 0.9}, block=256)
    Evaluation("audit", {"cnn": MODEL}, DataSpec("mnist", n=500, seed=0).within(20), audit, block=20)


def test_certificates_are_declared_in_fp32_only():
    for kind, params in (("bounds", {"threat": ["linf", 0.1]}),
                         ("smoothing", {"sigma": 0.25, "n0": 10, "n": 100, "alpha": 0.001})):
        with pytest.raises(InputError, match=f"'{kind}' accepts precision fp32 only, got 'bf16'"):
            Evaluation(kind, {"cnn": MODEL}, DataSpec("mnist", n=8), params, precision="bf16")
    _pgd(precision="bf16")  # an attack may run in bf16 (a speed option)


def test_the_engine_runs_blocks_with_the_declared_cuda_graphs(monkeypatch):
    from advlab.attacks import graphs

    seen = []
    real = results.EVALUATION_KINDS["clean"].fn
    monkeypatch.setitem(results.EVALUATION_KINDS, "clean", results.Kind(
        "clean", lambda models, data, **kw: (seen.append(graphs._DECLARED.get()), real(models, data, **kw))[1], ""))
    monkeypatch.setenv(graphs.GRAPHS_ENV, "1")  # the environment no longer decides for a declared table
    ev = Evaluation("clean", {"m": MODEL}, DataSpec("mnist", n=4, seed=0), {}, block=4)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    engine._run_block(ev, {"m": net}, ev.data.load(), 0, range(0, 4))
    engine._run_block(Evaluation(**{**ev.__dict__, "cuda_graphs": True}), {"m": net}, ev.data.load(), 0, range(0, 4))
    assert seen == [False, True] and graphs._DECLARED.get() is None
