"""Bounds on traced graphs: soundness on general networks, α-CROWN's gain, and seconds per example.

    python benchmarks/bounds_graph.py [--n 20] [--parts soundness alpha speed]

- ``soundness``: random-weight networks that are not sequential (the book's small CNN and LeNet-5
  with max pooling, a residual block with batch norm and inline normalisation, a PreAct ResNet-18):
  IBP, CROWN and both α-CROWNs never above the smallest margin of 20 random points and a PGD point
  of the ball, L∞ and L2, with seconds per call.
- ``alpha``: the certification chapter's quick-profile small ConvNet and small MLP (standard
  training, trained through the cache), L∞ at the chapter's ε: the mean lower margin of CROWN,
  α-CROWN's final-layer variant and α-CROWN as published (20 steps each), the share of rows where
  the published one is at least as tight, and the share of its gain over CROWN that the final-layer
  variant reaches (the issue's cross-check measured 71–92 % against auto_LiRPA's CROWN-Optimized).
- ``speed``: CROWN and α-CROWN seconds per example on the small ConvNet at L∞ 0.03, batches of 1
  and 10 (the issue's reference: auto_LiRPA 0.7.1, 0.25 s per example for CROWN on the same model
  class and ε on 2 cores).

auto_LiRPA runs beside advlab in ``alpha`` and ``speed`` when it is importable (PyPI's only release,
0.3, does not import with torch 2.11; install 0.7.x from its repository).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from advlab.attacks import run_attack
from advlab.certify import margin_bounds
from advlab.certify.bounds import margin_spec
from advlab.chapters import certification, chapter_config
from advlab.data import load_dataset
from advlab.execution import configure_environment
from advlab.models import build_model, predict
from advlab.threat import ThreatModel
from advlab.training import load_or_train

try:
    from auto_LiRPA import BoundedModule, BoundedTensor
    from auto_LiRPA.perturbations import PerturbationLpNorm
except Exception:  # noqa: BLE001  (absent, or an old release that fails on this torch)
    BoundedModule = None


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


def _lirpa(net, x, y, threat: ThreatModel, method: str, steps: int = 20, lr: float = 0.25):
    """auto_LiRPA's lower margin bounds on the same input set (ball ∩ [0, 1]; L∞ only here)."""
    lirpa = BoundedModule(net, torch.empty_like(x[:1]), bound_opts={"optimize_bound_args": {
        "iteration": steps, "lr_alpha": lr}}, device=x.device)
    ptb = PerturbationLpNorm(norm=float("inf"), eps=threat.eps, x_L=(x - threat.eps).clamp(0, 1),
                             x_U=(x + threat.eps).clamp(0, 1))
    c = margin_spec(y, 10)
    lower, _ = lirpa.compute_bounds(x=(BoundedTensor(x, ptb),), C=c, method=method)
    return lower.detach()


def _data(n: int):
    data = load_dataset("mnist", "test").subset(n, seed=0, stratified=True)
    return data.images(), data.y


def alpha(n: int):
    cfg = chapter_config("certification", {"profile": "quick"})
    x, y = _data(n)
    eps = cfg.eps_list[0]
    print(f"\nα-CROWN's gain over CROWN, L∞ ε = {eps:g}, {n} MNIST test examples × 9 margins, 20 Adam steps, lr 0.25\n")
    print("| network | CROWN | α-CROWN final layer | α-CROWN (published) | published ≥ final (rows) | final's share "
          "of the gain | s/example final, published |" + (" auto_LiRPA CROWN-Optimized |" if BoundedModule else ""))
    print("|---|---|---|---|---|---|---|" + ("---|" if BoundedModule else ""))
    for arch in certification.architectures(cfg):
        net, _ = load_or_train(certification.bound_configs(cfg)[(arch, "standard", eps)], progress=False)
        t = ThreatModel("linf", eps)
        low, secs = {}, {}
        for method in ("crown", "alpha_crown_final", "alpha_crown"):
            start = time.perf_counter()
            b = margin_bounds(net, x, y, t, method=method)
            secs[method] = (time.perf_counter() - start) / n
            low[method] = b.lower[torch.arange(n)[:, None], _others(y)]
        tighter = (low["alpha_crown"] >= low["alpha_crown_final"] - 1e-5).float().mean()
        gain = (low["alpha_crown_final"] - low["crown"]).mean() / (low["alpha_crown"] - low["crown"]).mean()
        row = (f"| {arch} | {low['crown'].mean():.3f} | {low['alpha_crown_final'].mean():.3f} | "
               f"{low['alpha_crown'].mean():.3f} | {100 * tighter:.1f} % | {100 * gain:.1f} % | "
               f"{secs['alpha_crown_final']:.3f}, {secs['alpha_crown']:.3f} |")
        if BoundedModule:
            theirs = _lirpa(net, x, y, t, "CROWN-Optimized")[torch.arange(n)[:, None], _others(y)]
            row += f" {theirs.mean():.3f} |"
        print(row)


def _others(y):  # the 9 margin rows of each example (the true class's own row is 0)
    k = torch.arange(10).expand(len(y), 10)
    return k[k != y[:, None]].view(len(y), 9)


def speed(n: int):
    cfg = chapter_config("certification", {"profile": "quick"})
    net, _ = load_or_train(certification.bound_configs(cfg)[("small ConvNet", "standard", cfg.eps_list[0])],
                           progress=False)
    x, y = _data(n)
    t = ThreatModel("linf", 0.03)
    print(f"\nseconds per example, small ConvNet (standard training), L∞ 0.03, {n} examples, "
          f"{torch.get_num_threads()} threads\n")
    print("| method | batch 1 | batch 10 |" + (" auto_LiRPA batch 1 | auto_LiRPA batch 10 |" if BoundedModule else ""))
    print("|---|---|---|" + ("---|---|" if BoundedModule else ""))
    lirpa = {"crown": "CROWN", "alpha_crown": "CROWN-Optimized"}
    for method in ("ibp", "crown", "alpha_crown_final", "alpha_crown"):
        cells = []
        for run in ([margin_bounds] + ([None] if BoundedModule and method in lirpa else [])):
            for batch in (1, 10):
                start = time.perf_counter()
                for i in range(0, n, batch):
                    xb, yb = x[i:i + batch], y[i:i + batch]
                    if run is None:
                        _lirpa(net, xb, yb, t, lirpa[method])
                    else:
                        run(net, xb, yb, t, method=method)
                cells.append(f"{(time.perf_counter() - start) / n:.3f}")
        print(f"| {method} | " + " | ".join(cells) + " |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--parts", nargs="+", default=["soundness", "alpha", "speed"],
                    choices=["soundness", "alpha", "speed"])
    args = ap.parse_args()
    configure_environment(Path(__file__).resolve().parents[1])  # the repository's data and model cache
    print("auto_LiRPA:", "importable, run beside advlab" if BoundedModule else "not importable, advlab alone")
    for part in args.parts:
        {"soundness": soundness, "alpha": alpha, "speed": speed}[part](args.n)


if __name__ == "__main__":
    main()
