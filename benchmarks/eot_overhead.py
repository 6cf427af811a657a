"""EOT-PGD against the bare passes it needs: k forward+backward passes over draws × N inputs.

The randomized model is the small CNN behind Gaussian noise (σ = 0.1). Each repeat runs the
attack and its floor back to back (alternating which goes first); the table gives the median
ratio. The floor is k gradient passes of the cross-entropy over the batch repeated ``draws``
times through the noisy model, plus the one evaluation pass over N inputs every attack makes.
Target (issue 10): <= 1.1.

    python benchmarks/eot_overhead.py [--batch 128] [--draws 1 8 32] [--steps 10] [--repeats 5]
"""
from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch
import torch.nn.functional as F

from advlab import ThreatModel
from advlab.attacks import pgd
from advlab.execution import configure_environment
from advlab.data import load_dataset
from advlab.defenses import EOT, GaussianNoise
from advlab.timing import Stopwatch
from advlab.training import TrainConfig, load_or_train


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--draws", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    configure_environment(Path(__file__).resolve().parents[1])
    base, _ = load_or_train(TrainConfig(dataset="mnist", model="small_cnn", epochs=2), device=args.device)
    noisy = GaussianNoise(base, 0.1, seed=0)
    data = load_dataset("mnist", "test", device=args.device).subset(args.batch, seed=0)
    x, y = data.images(), data.y
    threat = ThreatModel("linf", 0.1)

    def attack(d):
        pgd(EOT(noisy, d), x, y, threat=threat, steps=args.steps, generator=torch.Generator().manual_seed(0))

    def floor(d):
        xr, yr = x.repeat(d, 1, 1, 1), y.repeat(d)
        for _ in range(args.steps):
            xa = xr.detach().requires_grad_(True)
            torch.autograd.grad(F.cross_entropy(noisy(xa), yr, reduction="sum"), xa)
        with torch.no_grad():
            noisy(x)

    print(f"EOT-PGD-{args.steps} on small_cnn + Gaussian noise, batch {args.batch}, {args.device}, "
          f"{torch.get_num_threads()} threads")
    print("| draws | attack (s) | floor (s) | ratio (median) |")
    print("|---|---|---|---|")
    for d in args.draws:
        ts, fs = [], []
        for r in range(args.repeats):
            order = [(attack, ts), (floor, fs)] if r % 2 == 0 else [(floor, fs), (attack, ts)]
            for fn, out in order:
                with Stopwatch(torch.device(args.device)) as sw:
                    fn(d)
                out.append(sw.seconds)
        ratios = [t / f for t, f in zip(ts, fs)]
        print(f"| {d} | {statistics.median(ts):.3f} | {statistics.median(fs):.3f} | {statistics.median(ratios):.2f} |")


if __name__ == "__main__":
    main()
