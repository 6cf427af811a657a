"""Bounds on traced graphs: soundness on general networks, α-CROWN's gain, and seconds per example,
beside auto_LiRPA on the same networks and inputs when an interpreter with it is at hand.

    python benchmarks/bounds_graph.py [--n 20] [--parts soundness alpha speed] [--lirpa-python PY]

- ``soundness``: random-weight networks that are not sequential (the book's small CNN and LeNet-5
  with max pooling, a residual block with batch norm and inline normalisation, a PreAct ResNet-18):
  IBP, CROWN and both α-CROWNs never above the smallest margin of 20 random points and a PGD point
  of the ball, L∞ and L2, with seconds per call.
- ``alpha``: the certification chapter's quick-profile small ConvNet and small MLP (standard
  training, trained through the cache), L∞ at the chapter's ε: the mean lower margin of CROWN,
  α-CROWN's final-layer variant and α-CROWN as published, their gains over CROWN, and (with
  auto_LiRPA) the same for its ``CROWN-Optimized`` with intermediate bounds fixed and re-optimised,
  and advlab's published gain as a share of auto_LiRPA's.
- ``speed``: IBP, CROWN and both α-CROWNs, seconds per example on the same two networks at L∞ 0.03,
  batches of 1 and 10, auto_LiRPA's beside them.

auto_LiRPA: PyPI's only release, 0.3, needs torch < 1.13 and does not import beside torch 2.11.
``--lirpa-python`` names an interpreter that has it; the networks and inputs travel to
``lirpa_reference.py`` as arrays and come back as bounds and seconds. This interpreter is used if it
can import auto_LiRPA; with neither, advlab runs alone. One that works on this machine (Python 3.10
from pyenv, about 1 GB):

    python3.10 -m venv /tmp/lirpa && /tmp/lirpa/bin/pip install torch==1.12.1 "numpy<2" tqdm auto_LiRPA==0.3
    python benchmarks/bounds_graph.py --parts alpha speed --lirpa-python /tmp/lirpa/bin/python
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import torch
import torch.nn.functional as F
from torch import nn

from advlab.attacks import run_attack
from advlab.certify import margin_bounds
from advlab.chapters import certification, chapter_config
from advlab.data import load_dataset
from advlab.execution import configure_environment
from advlab.models import Normalize, build_model, predict
from advlab.threat import ThreatModel
from advlab.training import load_or_train

try:
    import auto_LiRPA  # noqa: F401
    _HAS_LIRPA = True
except Exception:  # noqa: BLE001  (absent, or an old release that fails on this torch)
    _HAS_LIRPA = False


class ResidualNet(nn.Module):
    """Inline normalisation, batch norm, max and average pooling and a residual sum, written as a
    reader writes them (functional calls, a view)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.4, 0.5, 0.6]).view(1, 3, 1, 1))
        self.c1, self.bn = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.c2, self.c3 = nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 4 * 4, 10)

    def forward(self, x):
        h = F.max_pool2d(F.relu(self.bn(self.c1((x - self.mean) / 0.25))), 2)
        r = F.avg_pool2d(h + self.c3(torch.relu(self.c2(h))), 2)
        return self.fc(F.adaptive_avg_pool2d(r, (4, 4)).view(r.size(0), -1))


def _random_bn(net: nn.Module) -> nn.Module:  # running statistics away from the identity
    g = torch.Generator().manual_seed(0)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(0.2 * torch.rand(m.running_mean.shape, generator=g) - 0.1)
            m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
    return net.eval()


def soundness(n: int):
    torch.manual_seed(0)
    nets = {"small CNN (MaxPool)": (build_model("small_cnn", "mnist", width=0.25), (1, 28, 28)),
            "LeNet-5 (MaxPool)": (build_model("lenet5", "mnist"), (1, 28, 28)),
            "residual block, BatchNorm, pooling": (_random_bn(ResidualNet()), (3, 16, 16)),
            "PreAct ResNet-18, width 1/16": (_random_bn(build_model("preact_resnet18", "cifar10", width=0.0625)),
                                             (3, 32, 32))}
    print("| network | threat | method | sound | mean lower margin | mean attacked margin | seconds |")
    print("|---|---|---|---|---|---|---|")
    for name, (net, shape) in nets.items():
        net.eval()
        g = torch.Generator().manual_seed(0)
        x = 0.1 + 0.8 * torch.rand(min(n, 3), *shape, generator=g)
        y = predict(net, x)
        methods = ["ibp", "crown", "alpha_crown_final"] + ([] if "ResNet-18" in name else ["alpha_crown"])
        for norm, eps in (("linf", 0.003), ("l2", 0.05)):
            t = ThreatModel(norm, eps)
            points = [t.random_start(x, g) for _ in range(20)]
            points.append(run_attack("pgd", net, x, y, threat=t, steps=10, generator=g).x_adv)
            with torch.no_grad():
                margin = torch.stack([(lambda z: z.gather(1, y[:, None]) - z)(net(p)) for p in points]).amin(0)
            for method in methods:
                start = time.perf_counter()
                b = margin_bounds(net, x, y, t, method=method)
                seconds = time.perf_counter() - start
                sound = bool((b.lower <= margin + 1e-4).all())
                print(f"| {name} | {norm} {eps:g} | {method} | {sound} | {b.lower.mean():.3f} | {margin.mean():.3f} "
                      f"| {seconds:.2f} |")


def _export(net: nn.Module, x, arrays: dict, name: str) -> list:
    """The network as the reference script rebuilds it: its leaf layers in order (the book's MLP,
    ConvNet and small CNN are sequential in the order they register their layers)."""
    spec = []
    for i, m in enumerate(m for m in net.modules() if not list(m.children())):
        if isinstance(m, Normalize):
            spec.append({"kind": "normalize"})
            arrays[f"{name}/{i}/mean"], arrays[f"{name}/{i}/std"] = m.mean.numpy(), m.std.numpy()
        elif isinstance(m, (nn.Conv2d, nn.Linear)):
            spec.append({"kind": "conv", "stride": m.stride, "padding": m.padding} if isinstance(m, nn.Conv2d)
                        else {"kind": "linear"})
            arrays[f"{name}/{i}/weight"] = m.weight.detach().numpy()
            arrays[f"{name}/{i}/bias"] = m.bias.detach().numpy()
        elif isinstance(m, nn.MaxPool2d):
            spec.append({"kind": "maxpool", "kernel": m.kernel_size, "stride": m.stride, "padding": m.padding})
        elif isinstance(m, (nn.ReLU, nn.Flatten)):
            spec.append({"kind": type(m).__name__.lower()})
        else:
            raise SystemExit(f"cannot export {type(m).__name__} for auto_LiRPA")
    with torch.no_grad():
        arrays[f"{name}/logits"] = net(x).numpy()
    return spec


def _reference(python: str | None, nets: dict, x, y, eps: list, batches=(1, 10), timed: int = 20) -> dict | None:
    """auto_LiRPA's lower margins and seconds per example on ``nets``, run by ``python`` (an interpreter
    with auto_LiRPA; benchmarks/lirpa_reference.py), or None without one."""
    if python is None:
        return None
    arrays = {"x": x.numpy(), "y": y.numpy()}
    task = {"nets": {name: _export(net, x, arrays, name) for name, net in nets.items()}, "eps": list(eps),
            "batches": list(batches), "timed": timed, "threads": torch.get_num_threads()}
    arrays["task"] = np.array(json.dumps(task))
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        np.savez(src, **arrays)
        subprocess.run([python, str(Path(__file__).with_name("lirpa_reference.py")), str(src), str(dst)], check=True,
                       env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
        out = dict(np.load(dst))
    print("auto_LiRPA run by", python, json.loads(str(out.pop("versions"))))
    return out


def _data(n: int):
    data = load_dataset("mnist", "test").subset(n, seed=0, stratified=True)
    return data.images(), data.y


def _book_nets(cfg, eps):
    return {arch: load_or_train(certification.bound_configs(cfg)[(arch, "standard", eps)], progress=False)[0].eval()
            for arch in certification.architectures(cfg)}


def alpha(n: int, python: str | None):
    cfg = chapter_config("certification", {"profile": "quick"})
    x, y = _data(n)
    eps = cfg.eps_list[0]
    nets = _book_nets(cfg, eps)
    ref = _reference(python, nets, x, y, [eps], batches=(n,), timed=n)
    rows = torch.arange(n)[:, None], _others(y)
    print(f"\nα-CROWN's gain over CROWN, L∞ ε = {eps:g}, {n} MNIST test examples × 9 margins (standard training, "
          "the certification chapter's quick profile)\n")
    print("| network | library | CROWN | α-CROWN, final layer | α-CROWN (as published; auto_LiRPA's CROWN-Optimized) "
          "| gain over CROWN, final layer | gain, published | rows published ≥ final |")
    print("|---|---|---|---|---|---|---|---|")
    for arch, net in nets.items():
        low = {m: margin_bounds(net, x, y, ThreatModel("linf", eps), method=m, upper=False).lower[rows]
               for m in ("crown", "alpha_crown_final", "alpha_crown")}
        libs = {"advlab (20 steps, lr 0.25)": low}
        if ref is not None:
            theirs = {m: torch.from_numpy(ref[f"{arch}|{eps}|{label}|lower"])[rows] for m, label in
                      (("crown", "CROWN"), ("alpha_crown", "CROWN-Optimized"))}
            libs["auto_LiRPA (20 iterations, lr 0.5, decay 0.98)"] = theirs
        for lib, v in libs.items():
            crown, published, final = v["crown"], v["alpha_crown"], v.get("alpha_crown_final")
            cells = [crown.mean(), final.mean() if final is not None else None, published.mean(),
                     (final - crown).mean() if final is not None else None, (published - crown).mean()]
            cells = [f"{c:.4f}" if c is not None else "" for c in cells]
            cells.append("" if final is None else f"{100 * (published >= final - 1e-5).float().mean():.1f} %")
            print(f"| {arch} | {lib} | " + " | ".join(cells) + " |")
        if ref is not None:
            ours, theirs = libs.values()
            share = (ours["alpha_crown"] - ours["crown"]).mean() / (theirs["alpha_crown"] - theirs["crown"]).mean()
            tighter = (ours["alpha_crown"] >= theirs["alpha_crown"] - 1e-4).float().mean()
            print(f"| {arch} | advlab's published gain as a share of auto_LiRPA's | | | | | {100 * share:.1f} % | "
                  f"advlab ≥ auto_LiRPA on {100 * tighter:.1f} % of rows |")


def _others(y):  # the 9 margin rows of each example (the true class's own row is 0)
    k = torch.arange(10).expand(len(y), 10)
    return k[k != y[:, None]].view(len(y), 9)


def speed(n: int, python: str | None):
    cfg = chapter_config("certification", {"profile": "quick"})
    nets = _book_nets(cfg, cfg.eps_list[0])
    x, y = _data(n)
    eps = 0.03
    ref = _reference(python, nets, x, y, [eps], batches=(1, 10), timed=n)
    t = ThreatModel("linf", eps)
    print(f"\nseconds per example, L∞ {eps}, {n} examples, {torch.get_num_threads()} threads (standard training, "
          "the certification chapter's quick profile)\n")
    print("| network | method | advlab batch 1 | advlab batch 10 |" +
          (" auto_LiRPA batch 1 | auto_LiRPA batch 10 |" if ref else ""))
    print("|---|---|---|---|" + ("---|---|" if ref else ""))
    lirpa = {"crown": "CROWN", "alpha_crown": "CROWN-Optimized"}
    for arch, net in nets.items():
        for method in ("ibp", "crown", "alpha_crown_final", "alpha_crown"):
            cells = []
            for batch in (1, 10):
                start = time.perf_counter()
                for i in range(0, n, batch):
                    margin_bounds(net, x[i:i + batch], y[i:i + batch], t, method=method, upper=False)
                cells.append(f"{(time.perf_counter() - start) / n:.4f}")
            if ref and method in lirpa:
                cells += [f"{float(ref[f'{arch}|{eps}|{lirpa[method]}|seconds|{b}']):.4f}" for b in (1, 10)]
            elif ref:
                cells += ["", ""]
            print(f"| {arch} | {method} | " + " | ".join(cells) + " |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--lirpa-python", default=sys.executable if _HAS_LIRPA else None,
                    help="a Python interpreter with auto_LiRPA to run beside advlab (default: this one if it has it)")
    ap.add_argument("--parts", nargs="+", default=["soundness", "alpha", "speed"],
                    choices=["soundness", "alpha", "speed"])
    args = ap.parse_args()
    configure_environment(Path(__file__).resolve().parents[1])  # the repository's data and model cache
    print("auto_LiRPA:", f"run by {args.lirpa_python}" if args.lirpa_python else "not available, advlab alone")
    for part in args.parts:
        if part == "soundness":
            soundness(args.n)
        else:
            {"alpha": alpha, "speed": speed}[part](args.n, args.lirpa_python)


if __name__ == "__main__":
    main()
