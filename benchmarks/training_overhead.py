"""Cost of an adversarial training epoch against a clean epoch of the same model and data.

Targets (issue 9): a PGD-k epoch <= 1.1 x (k + 1) clean epochs; an FGSM-RS epoch <= 2.2 x.
Each method trains one epoch from the same seed on the same subset; the methods run in
alternating order for ``--repeats`` rounds, and the table gives the median epoch time and the
median of the per-round ratios to the clean epoch (drift of a shared machine cancels).

    python benchmarks/training_overhead.py [--model small_cnn] [--subset 6000] [--k 5 10] [--repeats 3]
"""
from __future__ import annotations

import argparse
import platform
import statistics
from pathlib import Path

import torch

from advlab.execution import configure_environment
from advlab.training import TrainConfig, train


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="small_cnn")
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--subset", type=int, default=6000)
    ap.add_argument("--k", type=int, nargs="+", default=[5, 10])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    configure_environment(Path(__file__).resolve().parents[1])
    eps = 0.3 if args.dataset in ("mnist", "fashion-mnist") else 8 / 255
    opts = {"width": 0.125} if args.model.startswith("vgg") else {}
    base = dict(dataset=args.dataset, model=args.model, model_options=opts, epochs=1, train_subset=args.subset,
                eval_subset=100)
    methods = {"clean": TrainConfig(**base), "FGSM-RS": TrainConfig(**base, method="fgsm_rs",
                                                                    method_params={"eps": eps})}
    methods.update({f"PGD-{k}": TrainConfig(**base, method="pgd", method_params={"norm": "linf", "eps": eps,
                                                                                "steps": k}) for k in args.k})
    times = {name: [] for name in methods}
    for r in range(args.repeats):
        order = list(methods) if r % 2 == 0 else list(methods)[::-1]
        for name in order:
            _, m = train(methods[name], device=args.device, progress=False)
            times[name].append(m["history"][0]["seconds"])
    print(f"{args.model} on {args.dataset}, {args.subset} examples, batch 128, {args.device}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    print("| method | epoch (s, median) | ratio to clean (median) | target |")
    print("|---|---|---|---|")
    for name, ts in times.items():
        ratios = [t / c for t, c in zip(ts, times["clean"])]
        target = {"clean": "1", "FGSM-RS": "<= 2.2"}.get(name, f"<= {1.1 * (int(name[4:]) + 1):.1f}"
                                                         if name.startswith("PGD") else "")
        print(f"| {name} | {statistics.median(ts):.2f} | {statistics.median(ratios):.2f} | {target} |")


if __name__ == "__main__":
    main()
