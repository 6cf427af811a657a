"""Score-based attacks cost their queries: wall time per query against a bare batched forward pass.

The attacked model has its logits shifted so that no attack can succeed: every example queries
to the end of its budget. ``--model mnist`` is a small CNN on MNIST (the cheapest forward pass,
so the attack's own tensor work weighs most); ``--model cifar`` is the black-box chapter's
quick-profile VGG on CIFAR-10 (the model the chapter attacks). The floor is a bare forward pass
over as many inputs as the attack queried, in the oracle's slices. Each ratio is paired (attack
and floor back to back, order alternating), median and interquartile range over repeats.

    python benchmarks/blackbox_overhead.py [--model mnist|cifar] [--batch 256] [--queries 100] [--repeats 7]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
from attack_overhead import paired  # the same paired timing as the white-box benchmark

from advlab import ThreatModel
from advlab.attacks import QueryOracle, run_attack
from advlab.chapters import black_box, targets
from advlab.execution import configure_environment
from advlab.data import load_dataset
from advlab.training import TrainConfig, load_models, load_or_train


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--model", choices=("mnist", "cifar"), default="mnist")
    args = ap.parse_args()
    configure_environment(Path(__file__).resolve().parents[1])  # the repository's data and model cache
    if args.model == "mnist":
        model, _ = load_or_train(TrainConfig(dataset="mnist", model="small_cnn", epochs=1, train_subset=3000,
                                             eval_subset=500), progress=False)
    else:
        cifar = targets.cifar_configs(black_box.CHAPTER.resolve("quick", {}))
        (model,) = load_models(cifar, progress=False)[0].values()
    model.eval()
    x = load_dataset("mnist" if args.model == "mnist" else "cifar10", "test").subset(args.batch, seed=3).images()
    y = torch.zeros(len(x), dtype=torch.long)
    eps = {"linf": 0.1, "l2": 1.5} if args.model == "mnist" else {"linf": 8 / 255, "l2": 0.5}

    def unfoolable(z):  # one forward of the real network per query; class 0 always wins
        return model(z) + 1e4 * (torch.arange(10) == 0).float()

    chunk = QueryOracle(model).batch_size  # the oracle's slices: the floor uses the same batch shape

    def floor(images):  # a bare forward pass over `images` inputs, in the oracle's slices
        with torch.no_grad():
            done = 0
            while done < images:
                k = min(chunk, images - done, len(x))
                unfoolable(x[:k])
                done += k

    print(f"# black-box attack overhead, {args.model} model (torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, batch {args.batch}, {args.queries} queries per example, "
          f"median of {args.repeats})\n")
    print("| attack | queries | time per query (µs) | / bare forward per input (median) | IQR |")
    print("|---|---|---|---|---|")
    attacks = [("square", "linf", {}), ("square", "l2", {}), ("nes", "linf", {"samples": 10}),
               ("nattack", "linf", {"population": 20})]
    for name, norm, params in attacks:
        used = {}

        def attack():
            res = run_attack(name, QueryOracle(unfoolable, output="logits", budget=args.queries), x, y,
                             threat=ThreatModel(norm, eps[norm]), generator=torch.Generator().manual_seed(0), **params)
            used["q"] = int(res.queries.sum())

        attack()
        total = used["q"]
        sec, ratio, lo, hi = paired(attack, lambda: floor(total), torch.device("cpu"), args.repeats,
                                    fn_units=total, floor_units=total)
        print(f"| {name} {norm} {params or ''} | {total // len(x)} | {1e6 * sec:.0f} | {ratio:.3f} | "
              f"[{lo:.3f}, {hi:.3f}] |")


if __name__ == "__main__":
    main()
