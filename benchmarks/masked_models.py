"""The adaptive evaluation on defenses written as a reader writes them (tests/masked_nets.py), against
an adaptive attack written for each (tests/test_adaptive.py): what the cascade alone reported, what the
evaluation reports after escalating, what the adaptive attack finds, the probe's flags, the audit's
failed checks and the time. The smoke profile's budgets (the test's), or another profile's.

    python benchmarks/masked_models.py [--profile smoke]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="smoke")
    args = ap.parse_args()
    from advlab.execution import configure_environment

    configure_environment(ROOT)
    from advlab.chapters import defenses, targets
    from advlab.data import load_dataset
    from advlab.evaluate import gradient_masking_audit, robust_evaluation
    from advlab.training import load_or_train
    from test_adaptive import MASKED, T, adaptive_attack

    cfg = defenses.CHAPTER.resolve(args.profile, {})
    net = load_or_train(defenses.mnist_configs(cfg)["standard"], progress=False)[0]
    surrogate = load_or_train(targets.surrogate_config(cfg, cfg.dataset), progress=False)[0]
    data = load_dataset(cfg.dataset, "test").subset(cfg.n_test, seed=cfg.seed, stratified=True)
    audit_data = data.subset(cfg.audit_n, seed=cfg.seed, stratified=True)
    budget = dict(steps=cfg.apgd_steps, targets=cfg.apgd_targets, queries=cfg.square_queries,
                  escalation_queries=cfg.escalation_queries, eot_draws=cfg.eot_draws)
    print(f"{args.profile} profile: {cfg.n_test} test images, {T}; {defenses.cascade_text(cfg)}; audit on "
          f"{cfg.audit_n} images")
    print("| defense | cascade alone | reported | adaptive attack | flags | audit fails | seconds |")
    print("|---|---|---|---|---|---|---|")
    for name, make in MASKED.items():
        torch.manual_seed(0)
        model = make(net).eval()
        t0 = time.perf_counter()
        rows = robust_evaluation({name: model}, data, [T], surrogate=surrogate, seed=0, progress=False, **budget)
        seconds = time.perf_counter() - t0
        truth = adaptive_attack(name, model, net, data)
        audit = gradient_masking_audit(model, audit_data, T, surrogate=surrogate, steps=cfg.audit_steps,
                                       queries=cfg.square_queries, draws=cfg.eot_draws)
        fails = ", ".join(audit.check[audit.verdict == "fail"]) or "none (warns: " + \
            (", ".join(audit.check[audit.verdict == "warn"]) or "none") + ")"
        print(f"| {name} | {100 * rows.cascade_robust.mean():.1f}% | {100 * rows.robust.mean():.1f}% | "
              f"{100 * truth:.1f}% | {rows.masking.iat[0]} | {fails} | {seconds:.1f} |", flush=True)


if __name__ == "__main__":
    main()
