"""The "Your model" chapter: a reader's model loaded three ways and judged end to end, the book's own
model reproducing the defenses chapter, a planted masked model caught, and every bad input refused."""
import textwrap
import warnings

import pandas as pd
import pytest
import torch
from torch import nn

from advlab.chapters import defenses, get_chapter, your_model
from advlab.cli import absolute_paths
from advlab.data import dataset_spec
from advlab.defenses import EOT
from advlab.errors import CheckpointError, InputError
from advlab.models import build_model
from advlab.models.external import load_model_file
from advlab.results import ModelFile, ModelSpec

pytestmark = pytest.mark.book  # the checkout's chapters, notebooks or README: not in the library's run

CHAPTER = get_chapter("your-model")
# a small run: what each test needs is the chapter's whole plan, not its scale
SMALL = dict(n_test=20, n_clean=100, apgd_steps=5, square_queries=20, n_minimal=10, cw_steps=10, cw_search_steps=1,
             audit_n=10, audit_steps=2, eot_draws=2, certificates=["ibp", "crown", "smoothing"], smoothing_n=200,
             n_smooth=10, references=["none"], threats=["linf 0.1", "l2 1"])

# the small CNN again, written the way a reader writes a network: no advlab import, no normalisation layer
NETS = textwrap.dedent('''
    import torch
    from torch import nn


    def small_cnn():
        return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))


    class Quantise(torch.autograd.Function):
        """Rounding to 1 bit with a zero backward: the masked gradient a reader may not know they have."""

        @staticmethod
        def forward(ctx, x):
            return (x > 0.5).float()

        @staticmethod
        def backward(ctx, g):
            return torch.zeros_like(g)


    class Binarise(nn.Module):
        def forward(self, x):
            return Quantise.apply(x)


    def quantised():
        return nn.Sequential(Binarise(), small_cnn())


    class Jitter(nn.Module):
        def forward(self, x):
            return x + 0.05 * torch.randn_like(x)


    def jittered():
        return nn.Sequential(Jitter(), small_cnn())


    def five_classes():
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 5))


    def not_a_module():
        return 3


    def cifar_net():
        return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 32 * 32, 10))


    class Residual(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
            self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)

        def forward(self, x):
            return torch.relu(x + self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))


    class TinyResNet(nn.Module):
        """A ResNet as a reader writes one: residual blocks with batch norm, functional ReLU and pooling."""

        def __init__(self, c=8):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, c, 3, stride=2, padding=1), nn.BatchNorm2d(c), nn.ReLU(),
                                      nn.AvgPool2d(2))
            self.blocks = nn.Sequential(Residual(c), Residual(c))
            self.head = nn.Linear(c, 10)

        def forward(self, x):
            x = self.blocks(self.stem(x))
            return self.head(torch.nn.functional.adaptive_avg_pool2d(x, 1).flatten(1))
''')


@pytest.fixture(scope="module")
def files(tmp_path_factory, mnist_model):
    """The trained small CNN saved three ways, plus the reader's module of networks on sys.path."""
    import sys

    d = tmp_path_factory.mktemp("models")
    (d / "reader_nets.py").write_text(NETS)
    sys.path.insert(0, str(d))
    net = mnist_model[1]  # the network behind advlab's Normalize layer
    # nn.Sequential numbering of the reader's flat network: features 0-5, classifier 6-9
    flat = {}
    for k, v in net.state_dict().items():
        part, idx, rest = k.split(".", 2)
        flat[f"{int(idx) + (6 if part == 'classifier' else 0)}.{rest}"] = v
    torch.save(mnist_model.state_dict(), d / "advlab.pt")  # an advlab model's state dict (Normalize inside)
    torch.save(flat, d / "reader.pt")
    torch.save({f"1.{k}": v for k, v in flat.items()}, d / "quantised.pt")
    torch.save({f"1.{k}": v for k, v in flat.items()}, d / "jittered.pt")
    with warnings.catch_warnings():  # torch.jit is deprecated for new code, and still how models are shipped
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(mnist_model).save(str(d / "model.ts"))
    yield d
    sys.path.remove(str(d))


def _cfg(**overrides):
    return CHAPTER.resolve("smoke", {**SMALL, **overrides})


WAYS = {"registered": dict(model="advlab.pt", architecture="small_cnn"),
        "module:function": dict(model="reader.pt", architecture="reader_nets:small_cnn", normalization="dataset"),
        "torchscript": dict(model="model.ts", architecture="torchscript")}


@pytest.mark.parametrize("way", WAYS)
def test_a_model_brought_three_ways_runs_end_to_end(files, way, mnist_model, mnist_test):
    params = {**WAYS[way], "model": str(files / WAYS[way]["model"])}
    cfg = _cfg(**params)
    plan = your_model.plan(cfg)
    status = plan.precompute(progress=False)
    assert set(status.item) >= {"card", "clean", "robust", "minimal_norms", "audit", "bounds linf 0.1", "smoothing"}
    model = plan.evaluations["robust"].models[your_model.YOURS]
    assert isinstance(model, ModelFile) and len(model.sha256) == 64
    # the same weights however they came: the same predictions as the trained model
    clean = plan.result("clean", progress=False)
    data = mnist_test.take(torch.tensor(clean.example.to_numpy()))
    with torch.no_grad():
        assert (mnist_model(data.images()).argmax(1).numpy() == clean.pred.to_numpy()).all()
    card = your_model.card_table(plan.result("card", progress=False), cfg, model)
    assert card.loc["parameters"].iat[0] == f"{sum(p.numel() for p in mnist_model.parameters()):,}"
    bounds = your_model.bound_summary(your_model.bound_tables(plan), cfg)
    if way == "torchscript":  # fx cannot follow a TorchScript module: said, not skipped
        assert "TorchScript" in bounds
    else:  # the small CNN's 37,760 ReLUs are over the profile's crown_max_relus: IBP runs, CROWN says why not
        assert bounds.loc[("linf 0.1", "IBP"), "n"] == cfg.n_test
        assert bounds.loc[("linf 0.1", "CROWN"), "certified (%)"] == "not run (crown_max_relus)"
        assert "37,760 ReLUs" in your_model.bounds_text(bounds, your_model.bound_tables(plan))
    text = your_model.verdict(cfg, plan.result("card", progress=False), plan.result("robust", progress=False),
                              plan.result("audit", progress=False), bounds)
    assert "L∞ ε = 0.1" in text and "L2 ε = 1" in text and "upper bounds" in text
    assert your_model.command(cfg).startswith("advlab run your-model --profile smoke -p model ")


def test_the_three_ways_give_the_same_table(files):
    """Equal weights, equal examples and seeds: equal robust rows, whichever way the model came."""
    tables = []
    for params in WAYS.values():
        plan = your_model.plan(_cfg(**{**params, "model": str(files / params["model"])}))
        tables.append(plan.result("robust", progress=False).drop(columns=["seconds"]))
    for t in tables[1:]:
        pd.testing.assert_frame_equal(tables[0], t)


def test_a_cached_result_follows_the_file_not_its_path(files, tmp_path):
    a = ModelFile(str(files / "reader.pt"), "mnist", "reader_nets:small_cnn")
    copy = tmp_path / "elsewhere.pt"
    copy.write_bytes((files / "reader.pt").read_bytes())
    assert ModelFile(str(copy), "mnist", "reader_nets:small_cnn").key == a.key
    state = torch.load(copy, weights_only=True)
    state["9.bias"] = state["9.bias"] + 1.0
    torch.save(state, copy)
    assert ModelFile(str(copy), "mnist", "reader_nets:small_cnn").key != a.key


def test_the_book_model_reproduces_the_defenses_chapter():
    """Same model, threats, budgets, examples and seeds: the defenses chapter's rows, example for example."""
    cfg = CHAPTER.resolve("smoke")
    ours = your_model.plan(cfg)
    theirs = defenses.plan(defenses.CHAPTER.resolve("smoke"))
    assert ours.evaluations["robust"].models[your_model.YOURS] == theirs.evaluations["mnist_robust"].models["PGD-L∞"]
    mine = ours.result("robust", progress=False).drop(columns=["model", "seconds"])
    book = theirs.result("mnist_robust", progress=False)
    book = book[book.model == "PGD-L∞"].drop(columns=["model", "seconds"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(mine, book)
    audit = ours.result("audit", progress=False)
    book_audit = theirs.result("audit mnist", progress=False)
    book_audit = book_audit[book_audit.model.str.endswith(": PGD-L∞")]
    assert list(audit.verdict) == list(book_audit.verdict) and list(audit.evidence) == list(book_audit.evidence)


def test_a_planted_masked_model_fails_the_audit_and_the_verdict_says_so(files):
    cfg = _cfg(model=str(files / "quantised.pt"), architecture="reader_nets:quantised", certificates=["none"],
               threats=["linf 0.3"], audit_n=20, audit_steps=5)
    plan = your_model.plan(cfg)
    audit = plan.result("audit", progress=False).set_index("check")
    # BPDA through the quantiser beats PGD; on 20 examples the gap is counted, and 3 of 20 warns
    assert audit.loc["gradients", "verdict"] == "fail", audit.to_string()
    assert audit.loc["bpda", "verdict"] in ("warn", "fail") and "through 0" in audit.loc["bpda", "evidence"], \
        audit.to_string()
    text = your_model.verdict(cfg, plan.result("card", progress=False), plan.result("robust", progress=False),
                              audit.reset_index(), your_model.bound_summary({}, cfg))
    assert "The gradient-masking audit fails" in text and "gradients" in text
    robust = plan.result("robust", progress=False)
    assert robust.escalated.all() and (robust.robust <= robust.cascade_robust).all()
    assert "the evaluation escalated" in text and "overstated robust accuracy by" in text


def test_a_random_model_is_said_and_attacked_through_eot(files):
    """The file is probed once; a random one goes behind the ordinary `eot` wrapper, as a trained one would."""
    with pytest.warns(UserWarning, match="EOT over 2 draws"):
        spec = your_model.your_model(_cfg(model=str(files / "jittered.pt"), architecture="reader_nets:jittered",
                                          eot_draws=2))
    assert isinstance(spec, ModelSpec) and spec.wrappers == (("eot", {"draws": 2}),) and spec.source.randomized
    model = spec.build(spec.source.build("cpu"))
    assert isinstance(model, EOT) and model.draws == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not ModelFile(str(files / "reader.pt"), "mnist", "reader_nets:small_cnn").randomized


def test_a_readers_model_behind_wrappers_is_planned_like_a_trained_one(files, tmp_path, monkeypatch):
    """A ModelFile is a model source like a TrainConfig: behind `bits` and `eot` it is declared, checked once
    by the plan, keyed by file and wrappers, trains nothing, and evaluates."""
    from advlab.results import DataSpec, Evaluation, Plan, requirements

    monkeypatch.setenv("ADVLAB_CACHE", str(tmp_path))
    file = ModelFile(str(files / "reader.pt"), "mnist", "reader_nets:small_cnn", normalization=None)
    wrapped = ModelSpec(file, [["bits", {"bits": 4}], ["eot", {"draws": 2}]])
    assert wrapped.key != file.key and requirements(wrapped) == () and requirements(file) == ()
    ev = Evaluation("clean", {"mine": wrapped, "bare": file}, DataSpec("mnist", n=16, seed=0), block=16)
    plan = Plan(evaluations={"clean": ev})
    assert plan.all_trainings() == {} and file._probe  # checked by the plan, before any work
    rows = plan.result("clean", progress=False)
    assert set(rows.model) == {"mine", "bare"} and len(rows) == 32


@pytest.mark.parametrize("case, error, match", [
    ("missing", InputError, "does not exist"),
    ("mismatch", InputError, "do not match architecture 'lenet5'"),
    ("classes", InputError, r"must return \(N, 10\) class scores"),
    ("shape", InputError, "fails on MNIST inputs of shape"),
    ("pickled", CheckpointError, "weights_only"),
    ("truncated", CheckpointError, "cannot load weights"),
    ("not torchscript", InputError, "not a TorchScript file"),
    ("unknown architecture", InputError, "unknown architecture 'resnet9000'"),
    ("no module", InputError, "cannot import 'no_such_package.nets'"),
    ("not a module", InputError, "returned int, not an nn.Module"),
    ("normalization", InputError, "normalization needs 1 means"),
    ("twice normalised", InputError, "normalising its inputs again"),
])
def test_bad_models_are_refused_before_any_work(files, tmp_path, case, error, match):
    path, arch, kw = files / "reader.pt", "reader_nets:small_cnn", {}
    if case == "missing":
        path = tmp_path / "nothing.pt"
    elif case == "mismatch":
        arch = "lenet5"
    elif case == "classes":
        path = tmp_path / "five.pt"
        torch.save(nn.Sequential(nn.Flatten(), nn.Linear(784, 5)).state_dict(), path)
        arch = "reader_nets:five_classes"
    elif case == "shape":
        path = tmp_path / "cifar.pt"
        torch.save(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 32 * 32, 10)).state_dict(),
                   path)
        arch = "reader_nets:cifar_net"
    elif case == "pickled":
        path = tmp_path / "pickled.pt"
        torch.save(nn.Linear(2, 2), path)
    elif case == "truncated":
        path = tmp_path / "truncated.pt"
        path.write_bytes((files / "reader.pt").read_bytes()[:500])
    elif case == "not torchscript":
        arch = "torchscript"
    elif case == "unknown architecture":
        arch = "resnet9000"
    elif case == "no module":
        arch = "no_such_package.nets:build"
    elif case == "not a module":
        arch = "reader_nets:not_a_module"
    elif case == "normalization":
        kw = {"normalization": ([0.5, 0.5, 0.5], [0.2, 0.2, 0.2])}
    elif case == "twice normalised":
        path, arch, kw = files / "advlab.pt", "small_cnn", {"normalization": ([0.1], [0.3])}
    with pytest.raises(error, match=match):
        ModelFile(str(path), "mnist", arch, **kw).check()


def test_a_file_changed_after_its_declaration_is_refused(files, tmp_path):
    path = tmp_path / "m.pt"
    path.write_bytes((files / "reader.pt").read_bytes())
    spec = ModelFile(str(path), "mnist", "reader_nets:small_cnn")
    torch.save({}, path)
    with pytest.raises(InputError, match="changed since it was declared"):
        spec.build("cpu")


def test_the_chapters_parameters_are_checked(files):
    with pytest.raises(InputError, match="'linf EPS' or 'l2 EPS'"):
        CHAPTER.resolve("smoke", {"threats": ["linf"]})
    with pytest.raises(InputError, match="architecture 'book'"):
        CHAPTER.resolve("smoke", {"model": str(files / "reader.pt")})
    with pytest.raises(InputError, match="JSON object"):
        CHAPTER.resolve("smoke", {"model_options": "[1]"})
    with pytest.raises(InputError, match="no book model 'defenses/PGD-L7'"):
        your_model.plan(CHAPTER.resolve("smoke", {"model": "book:defenses/PGD-L7"}))


def test_the_command_line_makes_the_model_path_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert absolute_paths("your-model", {"model": "net.pt", "n_test": 5}) == \
        {"model": str(tmp_path / "net.pt"), "n_test": 5}
    assert absolute_paths("your-model", {"model": "book:defenses/TRADES"}) == {"model": "book:defenses/TRADES"}


def test_load_model_file_returns_an_eval_mode_pixel_model(files, mnist_model, batch):
    x, _ = batch
    spec = dataset_spec("mnist")
    net = load_model_file(files / "reader.pt", "mnist", "reader_nets:small_cnn", normalization=(spec.mean, spec.std))
    assert not net.training
    with torch.no_grad():
        torch.testing.assert_close(net(x), mnist_model(x))


def test_a_certifiable_model_gets_sound_certificates(tmp_path):
    """Every layer supported (Wong & Kolter's small ConvNet): IBP and CROWN run, and no certified example
    is one the cascade broke."""
    path = tmp_path / "conv_small.pt"
    with torch.random.fork_rng():
        torch.manual_seed(0)
        torch.save(build_model("conv_small", "mnist").state_dict(), path)
    cfg = _cfg(model=str(path), architecture="conv_small", threats=["linf 0.002"], certificates=["ibp", "crown"])
    plan = your_model.plan(cfg)
    tables = your_model.bound_tables(plan)
    summary = your_model.bound_summary(tables, cfg)
    assert list(summary.index) == [("linf 0.002", "IBP"), ("linf 0.002", "CROWN")]
    robust = plan.result("robust", progress=False).set_index("example")
    bounds = tables["linf", 0.002].set_index("example")
    certified = bounds.index[bounds.ibp | bounds.crown]
    assert len(certified) > 0 and robust.loc[certified, "robust"].all()
    assert "Certificates prove lower bounds" in your_model.verdict(
        cfg, plan.result("card", progress=False), robust.reset_index(), plan.result("audit", progress=False), summary)


def test_a_readers_residual_cifar_model_is_certified(files, tmp_path):
    """A reader's ResNet-style CIFAR-10 network (residual blocks, batch norm, pooling, normalised inputs),
    briefly trained: the page's bound table has IBP and CROWN, CROWN certifies examples, and PGD breaks
    none of them."""
    from reader_nets import TinyResNet

    from advlab.attacks import pgd
    from advlab.data import load_dataset
    from advlab.threat import ThreatModel

    train = load_dataset("cifar10", "train").subset(4000, seed=0)
    spec = dataset_spec("cifar10")
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (spec.mean, spec.std))
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = TinyResNet()
        opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
        for _ in range(2):
            for i in range(0, len(train.y), 100):
                x, y = train.images()[i:i + 100], train.y[i:i + 100]
                opt.zero_grad()
                nn.functional.cross_entropy(net((x - mean) / std), y).backward()
                opt.step()
    path = tmp_path / "resnet.pt"
    torch.save(net.state_dict(), path)
    cfg = _cfg(model=str(path), architecture="reader_nets:TinyResNet", dataset="cifar10", normalization="dataset",
               threats=["linf 0.001", "l2 0.05"], certificates=["ibp", "crown"])
    plan = your_model.plan(cfg)
    tables = your_model.bound_tables(plan)
    summary = your_model.bound_summary(tables, cfg)
    assert list(summary.index) == [(t, m) for t in cfg.threats for m in ("IBP", "CROWN")]
    assert (summary.xs("CROWN", level="method").certified > 0).all()
    assert (summary.xs("CROWN", level="method").certified >= summary.xs("IBP", level="method").certified).all()
    model = plan.evaluations["bounds", "linf", 0.001].models[your_model.YOURS].build("cpu", None)
    for threat, t in zip(cfg.threats, tables.values()):
        ok = t.example[t.crown].to_numpy()
        data = load_dataset("cifar10", "test").examples(ok)
        norm, eps = threat.split()
        attacked = pgd(model, data.images(), data.y, threat=ThreatModel(norm, float(eps)), steps=20, restarts=2,
                       generator=torch.Generator().manual_seed(0))
        assert (attacked.pred == data.y).all()
    assert "IBP and CROWN" in your_model.bounds_text(summary)


@pytest.mark.slow
def test_the_page_runs_on_a_readers_torchscript_file_named_by_a_relative_path(files, tmp_path, monkeypatch, capsys):
    """`advlab run your-model -p model ../elsewhere/net.ts`: the relative path is made absolute for the
    kernel (which runs in notebooks/), and the page shows the file's digest and its own command."""
    import os
    from pathlib import Path

    import nbformat

    from advlab.cli import main

    (tmp_path / "net.ts").write_bytes((files / "model.ts").read_bytes())
    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(root)  # where a reader runs advlab: the book's folder, their file elsewhere
    out = tmp_path / "page.ipynb"
    args = [x for k, v in {**SMALL, "references": ["white-box/small_cnn"]}.items()
            for x in ("-p", k, str(v).replace("'", ""))]
    model = ["-p", "model", os.path.relpath(tmp_path / "net.ts"), "-p", "architecture", "torchscript"]
    assert main(["run", "your-model", "--profile", "smoke", *model, *args, "-o", str(out)]) == 0, \
        capsys.readouterr().err
    nb = nbformat.read(out, as_version=4)
    assert not any(o.get("output_type") == "error" for c in nb.cells for o in c.get("outputs", []))
    text = out.read_text()
    digest = ModelFile(str(tmp_path / "net.ts"), "mnist", "torchscript").sha256
    assert digest[:16] in text and str(tmp_path / "net.ts") in text
    assert "advlab run your-model --profile smoke -p model " + str(tmp_path / "net.ts") in text


def test_the_references_minimal_norms_do_not_depend_on_the_readers_model(files):
    """The book models' minimal norms are their own evaluation: a reader's new model reuses them."""
    a = your_model.plan(_cfg(model=str(files / "reader.pt"), architecture="reader_nets:small_cnn",
                             references=["white-box/small_cnn"]))
    b = your_model.plan(_cfg(model=str(files / "model.ts"), architecture="torchscript",
                             references=["white-box/small_cnn"]))
    assert a.evaluations["reference minimal_norms"] == b.evaluations["reference minimal_norms"]
    assert a.evaluations["minimal_norms"] != b.evaluations["minimal_norms"]
    assert "reference minimal_norms" not in your_model.plan(_cfg(model=str(files / "model.ts"),
                                                                 architecture="torchscript")).evaluations


@pytest.mark.parametrize("case, match", [
    ("missing", "does not exist"),
    ("mismatch", "do not match architecture 'lenet5'"),
    ("shape", "fails on MNIST inputs of shape"),
])
def test_the_command_line_refuses_a_bad_model_before_a_kernel_starts(files, tmp_path, monkeypatch, capsys, case,
                                                                     match):
    """The file, its weights against the architecture and a probe on the dataset's shape are checked by
    `advlab run` before papermill starts: an error in seconds, and nothing left in runs/ or at -o."""
    import time

    import papermill

    from advlab.cli import main

    def started(*a, **k):
        raise AssertionError("a kernel was started")

    monkeypatch.setattr(papermill, "execute_notebook", started)
    monkeypatch.setenv("ADVLAB_CACHE", str(tmp_path / "cache"))
    path, arch = {"missing": (tmp_path / "nothing.pt", "small_cnn"), "mismatch": (files / "reader.pt", "lenet5"),
                  "shape": (tmp_path / "cifar.pt", "reader_nets:cifar_net")}[case]
    if case == "shape":
        torch.save(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 32 * 32, 10)).state_dict(),
                   path)
    out = tmp_path / "page.ipynb"
    start = time.monotonic()
    code = main(["run", "your-model", "--profile", "smoke", "-p", "model", str(path), "-p", "architecture", arch,
                 "-o", str(out)])
    seconds = time.monotonic() - start
    err = capsys.readouterr().err
    assert code == 2 and match in err and err.startswith("advlab: error: "), err
    assert seconds < 30  # generous: about 3 s on a quiet machine (benchmarks/early_errors.py)
    assert not out.exists() and not (tmp_path / "cache" / "runs").exists()


@pytest.mark.parametrize("given", [{"width": 0.5}, '{"width": 0.5}', "{width: 0.5}"])
def test_model_options_is_a_mapping_in_any_spelling(tmp_path, monkeypatch, given):
    """`-p model_options '{"width": 0.5}'` arrives from YAML as a mapping; JSON text, YAML text and the
    mapping are one value, and the kernel receives its JSON text."""
    import papermill

    from advlab.execution import execute_chapter

    cfg = CHAPTER.resolve("smoke", {"model_options": given})
    assert cfg.model_options == '{"width": 0.5}'
    seen = {}

    class Stop(Exception):
        pass

    def execute(nb, out, parameters, **kw):
        seen.update(parameters)
        raise Stop

    monkeypatch.setattr(papermill, "execute_notebook", execute)
    monkeypatch.setenv("ADVLAB_CACHE", str(tmp_path))
    with pytest.raises(Stop):
        execute_chapter("your-model", "smoke", {"model_options": given}, output=tmp_path / "page.ipynb")
    assert seen["model_options"] == '{"width": 0.5}'
    for bad in ("[1]", "width", 3):
        with pytest.raises(InputError, match="must be a mapping"):
            CHAPTER.resolve("smoke", {"model_options": bad})
