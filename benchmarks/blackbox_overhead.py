"""Score-based attacks cost their queries: wall time per query against a bare batched forward pass.

The attacked model is the MNIST small CNN with its logits shifted so that no attack can succeed:
every example queries to the end of its budget, so the attack's forward passes and the floor's are
the same in number and batch size. Each ratio is paired (attack and floor back to back, order
alternating), median and interquartile range over repeats.

    python benchmarks/blackbox_overhead.py [--batch 256] [--queries 100] [--repeats 7]
"""
from __future__ import annotations

import argparse
import statistics

import torch

from advlab import ThreatModel
from advlab.attacks import QueryOracle, run_attack
from advlab.data import load_dataset
from advlab.timing import Stopwatch
from advlab.training import TrainConfig, load_or_train


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    model, _ = load_or_train(TrainConfig(dataset="mnist", model="small_cnn", epochs=1, train_subset=3000,
                                         eval_subset=500), progress=False)
    model.eval()
    x = load_dataset("mnist", "test").subset(args.batch, seed=3).images()
    y = torch.zeros(len(x), dtype=torch.long)
    shift = torch.nn.functional.one_hot(y, 10).float() * 1e4

    def unfoolable(z):  # one forward of the real network per query; class 0 always wins
        return model(z) + shift[: z.shape[0]]

    def floor():
        with torch.no_grad():
            for _ in range(args.queries):
                unfoolable(x)

    print(f"# black-box attack overhead (torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"batch {args.batch}, {args.queries} queries per example, median of {args.repeats})\n")
    print("| attack | time per query (ms) | / bare forward (median) | IQR |")
    print("|---|---|---|---|")
    for name, norm, eps in [("square", "linf", 0.1), ("square", "l2", 1.5)]:
        def attack():
            run_attack(name, QueryOracle(unfoolable, output="logits", budget=args.queries), x, y,
                       threat=ThreatModel(norm, eps), generator=torch.Generator().manual_seed(0))
        attack(), floor()
        ratios, times = [], []
        for r in range(args.repeats):
            t = {}
            for f in ((attack, floor) if r % 2 == 0 else (floor, attack)):
                with Stopwatch() as sw:
                    f()
                t[f] = sw.seconds
            ratios.append(t[attack] / t[floor])
            times.append(t[attack] / args.queries)
        q = statistics.quantiles(ratios, n=4)
        print(f"| {name} {norm} | {1e3 * statistics.median(times):.2f} | {statistics.median(ratios):.3f} | "
              f"[{q[0]:.3f}, {q[2]:.3f}] |")


if __name__ == "__main__":
    main()
