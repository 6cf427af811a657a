"""Attack cost against the bare forward+backward passes it needs, and against peer libraries.

Everything is measured in one process, on one model and one batch. Each ratio is paired: every
repeat runs the attack and its floor back to back (alternating which goes first), and the table
gives the median ratio with its interquartile range, so drift of a shared machine cancels:

* FGSM, PGD-k, APGD-k: time / (k bare forward+backward passes over the same batch, plus the one
  forward pass with which every attack evaluates the batch it returns).
* DeepFool: time, success and median L2 of advlab, torchattacks and Foolbox on the same inputs.
* Carlini-Wagner L2: time per Adam step / one bare step, advlab (with and without its binary
  search) and torchattacks.

    python benchmarks/attack_overhead.py [--device cuda] [--batch 256] [--repeats 5]

Writes a Markdown table to stdout and, with --out, to a file.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
from pathlib import Path

import torch
import torch.nn.functional as F

from advlab import ThreatModel
from advlab.attacks import apgd, carlini_wagner_l2, deepfool, fgsm, pgd
from advlab.attacks.graphs import GRAPHS_ENV
from advlab.execution import configure_environment
from advlab.data import load_dataset
from advlab.timing import Stopwatch
from advlab.training import TrainConfig, load_or_train


def once(fn, device):
    with Stopwatch(device) as sw:
        fn()
    return sw.seconds


def timed(fn, device, repeats):
    fn()  # warm-up (allocator, kernels, lazy init)
    return statistics.median(once(fn, device) for _ in range(repeats))


def paired(fn, floor, device, repeats, fn_units=1.0, floor_units=1.0):
    """Median and quartiles of (fn time / fn_units) / (floor time / floor_units) over repeats."""
    fn(), floor()
    ratios, times = [], []
    for r in range(repeats):
        order = (fn, floor) if r % 2 == 0 else (floor, fn)
        t = {f: once(f, device) for f in order}
        ratios.append((t[fn] / fn_units) / (t[floor] / floor_units))
        times.append(t[fn] / fn_units)
    q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
    return statistics.median(times), statistics.median(ratios), q[0], q[2]


def graphed(fn):
    os.environ[GRAPHS_ENV] = "1"
    try:
        return fn()
    finally:
        os.environ.pop(GRAPHS_ENV)


def bare(model, x, y, k, evaluate=False):
    """k forward+backward passes w.r.t. the input (and one forward to evaluate the result): the floor
    of a k-step gradient attack."""
    for _ in range(k):
        xr = x.detach().requires_grad_(True)
        loss = F.cross_entropy(model(xr), y, reduction="sum")
        torch.autograd.grad(loss, xr)
    if evaluate:
        with torch.no_grad():
            model(x).argmax(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--minimal-batch", type=int, default=100, help="examples for DeepFool and CW")
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--out")
    args = ap.parse_args()
    configure_environment(Path(__file__).resolve().parents[1])  # the repository's data and model cache
    device = torch.device(args.device)
    torch.manual_seed(0)
    model, _ = load_or_train(TrainConfig(dataset="mnist", model="small_cnn", epochs=1, train_subset=3000,
                                         eval_subset=500), device=device, progress=False)
    model.eval()
    data = load_dataset("mnist", "test", device=device).subset(args.batch, seed=0)
    x, y = data.images(), data.y
    t = ThreatModel("linf", 0.1)
    gen = lambda: torch.Generator(device=device).manual_seed(0)
    rows = []

    b1 = timed(lambda: bare(model, x, y, 1), device, args.repeats)
    for name, k, fn in [
        ("FGSM", 1, lambda: fgsm(model, x, y, threat=t)),
        ("PGD-10", 10, lambda: pgd(model, x, y, threat=t, steps=10, generator=gen())),
        ("PGD-40", 40, lambda: pgd(model, x, y, threat=t, steps=40, generator=gen())),
        ("APGD-CE-100", 100, lambda: apgd(model, x, y, threat=t, steps=100, generator=gen())),
    ] + ([  # on a GPU: PGD with its steps replayed as one captured CUDA graph (advlab.attacks.graphs)
        ("PGD-10, CUDA graph", 10, lambda: graphed(lambda: pgd(model, x, y, threat=t, steps=10, generator=gen()))),
        ("PGD-40, CUDA graph", 40, lambda: graphed(lambda: pgd(model, x, y, threat=t, steps=40, generator=gen()))),
    ] if device.type == "cuda" else []):
        sec, ratio, lo, hi = paired(fn, lambda: bare(model, x, y, k, evaluate=True), device, args.repeats)
        rows.append((name, f"{1e3 * sec:.1f}", f"{ratio:.3f}", f"[{lo:.3f}, {hi:.3f}]"))

    print(f"# attack overhead ({platform.processor() or platform.machine()}, device {device}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, "
          f"MNIST small CNN, median of {args.repeats})\n")
    lines = ["| attack (k passes) | time (ms) | time / (k bare fwd+bwd + 1 fwd) (median) | IQR |",
             "|---|---|---|---|"]
    lines += [f"| {' | '.join(r)} |" for r in rows]

    # DeepFool against peers
    xm, ym = x[: args.minimal_batch], y[: args.minimal_batch]
    peers = {"advlab": lambda: deepfool(model, xm, ym, steps=50, overshoot=0.02).x_adv}
    try:
        import torchattacks
        peers["torchattacks 3.5.1"] = lambda: torchattacks.DeepFool(model, steps=50, overshoot=0.02)(xm, ym)
    except ImportError:
        pass
    try:
        import foolbox
        fmodel = foolbox.PyTorchModel(model, bounds=(0, 1))
        fb = foolbox.attacks.L2DeepFoolAttack(steps=50, overshoot=0.02, candidates=10)
        peers["foolbox 3.3.4"] = lambda: fb(fmodel, xm, ym, epsilons=None)[0]
    except ImportError:
        pass
    lines += ["", f"| DeepFool L2 ({len(xm)} examples) | time (ms) | success (%) | median L2 | advlab speed-up |",
              "|---|---|---|---|---|"]
    res = {}
    for name, fn in peers.items():
        sec = timed(fn, device, max(1, args.repeats // 2))
        adv = fn()
        fooled = model(adv).argmax(1) != ym
        d = (adv - xm).flatten(1).norm(dim=1)
        res[name] = sec
        lines.append(f"| {name} | {1e3 * sec:.0f} | {100 * fooled.float().mean():.1f} | "
                     f"{d[fooled].median():.3f} | {sec / res['advlab']:.1f}× |")

    # CW: cost per Adam step against one bare step
    steps = 50
    b1m = timed(lambda: bare(model, xm, ym, 1), device, args.repeats)
    cw_runs = {
        "advlab, c = 1, no search": (steps, lambda: carlini_wagner_l2(model, xm, ym, steps=steps, initial_const=1.0,
                                                                    binary_search_steps=1, abort_early=False)),
        "advlab, 3 search steps": (3 * steps, lambda: carlini_wagner_l2(model, xm, ym, steps=steps, initial_const=1.0,
                                                                      binary_search_steps=3, abort_early=False)),
    }
    try:
        import torchattacks
        cw_runs["torchattacks 3.5.1, c = 1"] = (steps, lambda: torchattacks.CW(model, c=1.0, kappa=0, steps=steps,
                                                                                lr=0.01)(xm, ym))
    except ImportError:
        pass
    lines += ["", f"| CW-L2 ({len(xm)} examples, {steps} steps per search step) | time per step (ms) | "
              "/ bare fwd+bwd (median) | IQR |", "|---|---|---|---|"]
    for name, (n_steps, fn) in cw_runs.items():
        sec, ratio, lo, hi = paired(fn, lambda: bare(model, xm, ym, n_steps), device, max(3, args.repeats // 2),
                                    fn_units=n_steps, floor_units=n_steps)
        lines.append(f"| {name} | {1e3 * sec:.2f} | {ratio:.3f} | [{lo:.3f}, {hi:.3f}] |")
    lines.append(f"\nbare forward+backward, {len(xm)} examples: {1e3 * b1m:.2f} ms; "
                 f"{args.batch} examples: {1e3 * b1:.2f} ms")
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
