"""Few-pixel attack: advlab's batched differential evolution against torchattacks' OnePixel.

    python benchmarks/onepixel_speed.py [--n 100] [--pixels 1 3] [--steps 20] [--popsize 100] [--device cpu]

Same model (the black-box chapter's quick-profile VGG on CIFAR-10), same correctly classified test
images, same population and generations: torchattacks runs scipy's differential evolution one
image at a time (its population in batches of ``inf_batch``); advlab evolves every image's
population in one batched query per generation. Prints one Markdown row per pixel count: wall
time, success rate and the speed ratio.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torchattacks

from advlab import seeded_generator
from advlab.attacks import QueryOracle, run_attack
from advlab.chapters import black_box, targets
from advlab.execution import configure_environment
from advlab.data import load_dataset
from advlab.models import predict
from advlab.timing import Stopwatch
from advlab.training import load_models


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--pixels", type=int, nargs="+", default=[1, 3])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--popsize", type=int, default=100, help="population per image (torchattacks rounds it "
                                                              "down to a multiple of the genes, 5 per pixel)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    configure_environment(Path(__file__).resolve().parents[1])  # the repository's data and model cache
    cfg = black_box.CHAPTER.resolve("quick", {})
    (name, model), = load_models(targets.cifar_configs(cfg), device=args.device, progress=False)[0].items()
    data = load_dataset("cifar10", "test", device=args.device).subset(4 * args.n, seed=0, stratified=True)
    x, y = data.images(), data.y
    keep = (predict(model, x) == y).nonzero().squeeze(1)[: args.n]
    x, y = x[keep], y[keep]
    print(f"model: {name} (width {cfg.cifar_width:g}), {len(x)} correctly classified CIFAR-10 test images, "
          f"device {args.device}, torch threads {torch.get_num_threads()}\n")
    print("| pixels | population × generations | advlab time (s) | advlab success | torchattacks time (s) | "
          "torchattacks success | speed-up |")
    print("|---|---|---|---|---|---|---|")
    for k in args.pixels:
        genes = k * (2 + x.shape[1])  # row, column and colour of each pixel
        population = max(1, args.popsize // genes) * genes  # torchattacks' population, for both
        with Stopwatch(x.device) as t_ours:
            ours = run_attack("onepixel", QueryOracle(model, output="probs"), x, y, pixels=k,
                              population=population, generations=args.steps,
                              generator=seeded_generator(0, x.device))
        torch.manual_seed(0)
        atk = torchattacks.OnePixel(model, pixels=k, steps=args.steps, popsize=args.popsize, inf_batch=population)
        with Stopwatch(x.device) as t_theirs:
            theirs = atk(x, y)
        rate_theirs = (predict(model, theirs) != y).float().mean().item()
        print(f"| {k} | {population} × {args.steps} | {t_ours.seconds:.1f} | {ours.success.float().mean():.1%} | "
              f"{t_theirs.seconds:.1f} | {rate_theirs:.1%} | {t_theirs.seconds / t_ours.seconds:.1f}× |")


if __name__ == "__main__":
    main()
