"""The adaptive evaluation's cost against the former cascade (issue 29): on honest models, where
nothing flags and it costs only the probe and APGD-T in place of APGD-DLR, and on masked ones, where it
escalates.

Former cascade: APGD-CE → APGD-DLR → Square (the defenses chapter's budgets before issue 29).
Adaptive: the probe, APGD-CE → APGD-T → Square at the profile's budgets, and the escalation where it
runs. Models: the defenses chapter's standard and PGD-L∞ small CNNs of the profile, and two masked
versions of the standard one written as a reader writes them (tests/masked_nets.py). Goal on honest
models: ≤ 1.3× the former cascade's time at the same Square budget.

    python benchmarks/adaptive_overhead.py [--profile quick] [--n 100]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from advlab import ThreatModel
from advlab.chapters import defenses, targets
from advlab.data import load_dataset
from advlab.evaluate import robust_evaluation, worst_case
from advlab.execution import configure_environment
from advlab.training import load_or_train

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from masked_nets import MedianRound, PartialDetach  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--former-queries", type=int, default=None, help="Square queries of the former cascade "
                    "(default: the profile's new budget, so the ratio isolates the probe and APGD-T)")
    args = ap.parse_args()
    configure_environment(ROOT)
    cfg = defenses.CHAPTER.resolve(args.profile, {})
    cf = defenses.mnist_configs(cfg)
    std = load_or_train(cf["standard"], progress=False)[0]
    models = {"standard": std, "PGD-L∞": load_or_train(cf["PGD-L∞"], progress=False)[0],
              "masked: median + rounding": MedianRound(std), "masked: partial detach": PartialDetach(std)}
    surrogate = load_or_train(targets.surrogate_config(cfg, cfg.dataset), progress=False)[0]
    data = load_dataset(cfg.dataset, "test").subset(args.n, seed=0, stratified=True)
    t = ThreatModel("linf", cfg.mnist_eps)
    former_q = args.former_queries or cfg.square_queries
    former = {"APGD-CE": ("apgd", {"steps": cfg.apgd_steps}),
              "APGD-DLR": ("apgd", {"steps": cfg.apgd_steps, "loss": "dlr"}),
              "Square": ("square", {"budget": former_q, "output": "logits"})}
    print(f"{args.profile} profile, {args.n} {cfg.dataset} test images, {t}; APGD {cfg.apgd_steps} steps, "
          f"APGD-T {cfg.apgd_targets} targets, Square {cfg.square_queries:,} (former: {former_q:,}), "
          f"escalation Square {cfg.escalation_queries:,}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| model | former cascade: robust, s | adaptive: robust, s | ratio | escalated | flags |")
    print("|---|---|---|---|---|---|")
    for name, m in models.items():
        t0 = time.perf_counter()
        a = worst_case(m, data, attacks=former, threat=t, seed=0, progress=False)
        t1 = time.perf_counter()
        b = robust_evaluation(m, data, [t], steps=cfg.apgd_steps, targets=cfg.apgd_targets,
                              queries=cfg.square_queries, escalation_queries=cfg.escalation_queries,
                              surrogate=surrogate, eot_draws=cfg.eot_draws, seed=0, progress=False)
        t2 = time.perf_counter()
        print(f"| {name} | {100 * a.robust.mean():.1f}%, {t1 - t0:.1f} | {100 * b.robust.mean():.1f}%, {t2 - t1:.1f} | "
              f"{(t2 - t1) / (t1 - t0):.2f} | {bool(b.escalated.any())} | {b.masking.iat[0]} |", flush=True)


if __name__ == "__main__":
    main()
