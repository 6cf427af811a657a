"""Does FAB-T add anything after the adaptive evaluation's cascade? (issue 29: FAB-T, or the measured
reason it adds nothing here.)

AutoAttack's standard version runs APGD-CE, APGD-T, FAB-T and Square. advlab's cascade leaves FAB-T
out; this benchmark measures what it would add: torchattacks' FAB, multi-targeted over the 9 other
classes (AutoAttack's FAB-T), run on the examples the cascade left standing, and how many of them it
breaks. Models: the defenses chapter's MNIST-scale models of the profile (every training method).

    python benchmarks/fab_after_cascade.py [--profile quick] [--n 100] [--fab-steps 100]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from advlab import ThreatModel
from advlab.chapters import defenses, targets
from advlab.data import load_dataset
from advlab.evaluate import robust_evaluation
from advlab.execution import configure_environment
from advlab.models import eval_mode
from advlab.training import load_or_train


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--fab-steps", type=int, default=100)
    args = ap.parse_args()
    import torchattacks  # test-only dependency: the independent implementation

    configure_environment(Path(__file__).resolve().parents[1])
    cfg = defenses.CHAPTER.resolve(args.profile, {})
    surrogate = load_or_train(targets.surrogate_config(cfg, cfg.dataset), progress=False)[0]
    data = load_dataset(cfg.dataset, "test").subset(args.n, seed=cfg.seed, stratified=True)
    t = ThreatModel("linf", cfg.mnist_eps)
    print(f"{args.profile} profile, {args.n} {cfg.dataset} test images, {t}; cascade APGD {cfg.apgd_steps} steps, "
          f"APGD-T {cfg.apgd_targets} targets, Square {cfg.square_queries:,}; FAB-T {args.fab_steps} steps, "
          "9 targets")
    print("| model | robust after the cascade | of those, FAB-T breaks | FAB-T s |")
    print("|---|---|---|---|")
    for name, c in defenses.mnist_configs(cfg).items():
        model = load_or_train(c, progress=False)[0]
        rows = robust_evaluation(model, data, [t], steps=cfg.apgd_steps, targets=cfg.apgd_targets,
                                 queries=cfg.square_queries, escalation_queries=cfg.escalation_queries,
                                 surrogate=surrogate, eot_draws=cfg.eot_draws, seed=cfg.seed, progress=False)
        left = torch.as_tensor(rows.robust.to_numpy()).nonzero().squeeze(1)
        broke, seconds = 0, 0.0
        if left.numel():
            x, y = data.images()[left], data.y[left]
            fab = torchattacks.FAB(model, norm="Linf", eps=t.eps, steps=args.fab_steps, multi_targeted=True,
                                   n_classes=10, seed=0)
            t0 = time.perf_counter()
            x_fab = fab(x, y)
            seconds = time.perf_counter() - t0
            inside = (x_fab - x).abs().flatten(1).amax(1) <= t.eps + 1e-6
            with torch.no_grad(), eval_mode(model):
                broke = int(((model(x_fab).argmax(1) != y) & inside).sum())
        print(f"| {name} | {int(rows.robust.sum())} of {args.n} | {broke} | {seconds:.1f} |", flush=True)


if __name__ == "__main__":
    main()
