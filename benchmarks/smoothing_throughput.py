"""Randomized smoothing's sampling throughput against the base classifier's plain forward throughput.

Target (issue 11): noise samples per second >= 0.9 x the model's forward throughput at the same
batch size. ``sample_counts`` streams (example, draw) pairs of many examples in full batches; the
floor is the same number of forward passes over one fixed batch of noisy inputs (no sampling, no
gathering, no counting). The floor's inputs are noisy because on CPU a forward pass costs more on
noisy than on clean digits (measured: the small CNN takes 0.18 s per 1,000 clean MNIST digits and
0.31 s per 1,000 noisy or uniformly random ones), which is the model's cost, not the sampler's.

    python benchmarks/smoothing_throughput.py [--model small_cnn|vgg] [--batch 1000] [--samples 20000]
"""
from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch

from advlab.certify import sample_counts
from advlab.execution import configure_environment
from advlab.data import load_dataset
from advlab.models import eval_mode
from advlab.timing import Stopwatch
from advlab.training import TrainConfig, load_or_train


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="small_cnn", choices=("small_cnn", "vgg"))
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--samples", type=int, default=20000, help="noise samples in all (over 10 examples)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    configure_environment(Path(__file__).resolve().parents[1])
    cfg = (TrainConfig(dataset="mnist", model="small_cnn", epochs=2) if args.model == "small_cnn" else
           TrainConfig(dataset="cifar10", model="vgg19", model_options={"width": 0.125}, epochs=4, augment=True))
    model, _ = load_or_train(cfg, device=args.device)
    x = load_dataset(cfg.dataset, "test", device=args.device).subset(10, seed=0).images()
    per = args.samples // 10
    clean = x[torch.arange(args.batch, device=x.device) % 10]
    batch = clean + 0.25 * torch.randn(clean.shape, generator=torch.Generator(device=x.device).manual_seed(1),
                                  device=x.device)

    def sampling():
        sample_counts(model, x, per, 0.25, batch_size=args.batch,
                      generator=torch.Generator(device=x.device).manual_seed(0))

    @torch.no_grad()
    def floor():
        with eval_mode(model):
            for _ in range(0, 10 * per, args.batch):
                model(batch).argmax(1)

    ts, fs = [], []
    for r in range(args.repeats):
        for fn, out in ([(sampling, ts), (floor, fs)] if r % 2 == 0 else [(floor, fs), (sampling, ts)]):
            with Stopwatch(torch.device(args.device)) as sw:
                fn()
            out.append(sw.seconds)
    ratio = statistics.median(f / t for t, f in zip(ts, fs))
    print(f"{args.model}, batch {args.batch}, {10 * per} samples, {args.device}, {torch.get_num_threads()} threads")
    rate, plain = 10 * per / statistics.median(ts), 10 * per / statistics.median(fs)
    print("| sampling (samples/s) | plain forward (inputs/s) | ratio | target |\n|---|---|---|---|")
    print(f"| {rate:,.0f} | {plain:,.0f} | {ratio:.2f} | >= 0.9 |")


if __name__ == "__main__":
    main()
