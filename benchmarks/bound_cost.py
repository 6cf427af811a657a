"""Cost of a certificate: IBP and CROWN on the MNIST small ConvNet, per example and against batch size.

Issue 11 asks for CROWN's time per example on the small ConvNet, against IBP's, and for memory
that scales with the batch, not with the dataset. Each batch size runs in a fresh process, so its
peak resident memory (``ru_maxrss``) is its own; the model is the small ConvNet trained for two
epochs (cached), the examples MNIST test digits, the ball L∞ at ``--eps``. A forward pass is the
yardstick: IBP should cost a few of them, CROWN one backward pass per unstable neuron and layer.

    python benchmarks/bound_cost.py [--eps 0.1] [--batches 10 50 200] [--device cpu]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

import torch

from advlab.certify import margin_bounds
from advlab.execution import configure_environment
from advlab.data import load_dataset
from advlab.models import predict
from advlab.threat import ThreatModel
from advlab.timing import Stopwatch
from advlab.training import TrainConfig, load_or_train

CONFIG = TrainConfig(dataset="mnist", model="conv_small", epochs=2)


def one(batch: int, eps: float, device: str) -> dict:
    model, _ = load_or_train(CONFIG, device=device, progress=False)
    data = load_dataset("mnist", "test", device=device).subset(batch, seed=0)
    x, y = data.images(), data.y
    threat = ThreatModel("linf", eps)
    out = {"batch": batch}
    margin_bounds(model, x[:2], y[:2], threat, method="crown")  # warm-up
    with Stopwatch(torch.device(device)) as sw:
        for _ in range(20):
            predict(model, x)
    out["forward"] = sw.seconds / 20 / batch
    for method in ("ibp", "crown"):
        with Stopwatch(torch.device(device)) as sw:
            b = margin_bounds(model, x, y, threat, method=method, upper=False)
        out[method] = sw.seconds / batch
        if method == "crown":
            out["unstable"] = float(sum(((lo < 0) & (hi > 0)).flatten(1).sum(1).float().mean() for lo, hi in b.layers))
    out["maxrss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--eps", type=float, default=0.1)
    ap.add_argument("--batches", type=int, nargs="+", default=[10, 50, 200])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    configure_environment(Path(__file__).resolve().parents[1])
    if args.one:
        print(json.dumps(one(args.one, args.eps, args.device)))
        return
    load_or_train(CONFIG, device=args.device)  # train once, outside the timed processes
    print(f"small ConvNet (standard, 2 epochs), MNIST, L∞ ε = {args.eps:g}, {args.device}, "
          f"{torch.get_num_threads()} threads")
    print("| batch | forward (ms/ex) | IBP (ms/ex) | CROWN (ms/ex) | CROWN / IBP | CROWN / forward "
          "| unstable ReLUs per example | peak RSS (MiB) |\n|---|---|---|---|---|---|---|---|")
    for b in args.batches:
        res = subprocess.run([sys.executable, __file__, "--one", str(b), "--eps", str(args.eps), "--device",
                              args.device], capture_output=True, text=True, check=True)
        r = json.loads(res.stdout.strip().splitlines()[-1])
        print(f"| {b} | {1e3 * r['forward']:.3f} | {1e3 * r['ibp']:.3f} | {1e3 * r['crown']:.1f} | "
              f"{r['crown'] / r['ibp']:.0f} | {r['crown'] / r['forward']:.0f} | {r['unstable']:.0f} | "
              f"{r['maxrss_mib']:.0f} |")


if __name__ == "__main__":
    main()
