"""Tighter certificates on the certification chapter's models: α-CROWN against CROWN, and the MILP
with and without LP-tightened intermediate bounds.

For every (architecture, training, ε) model of the chapter's profile (trained from its plan, cached):
the mean lower bound of the margins to the other classes, the certified share and the seconds per
example, for CROWN and for α-CROWN at each ``--alpha-steps``. For the MLPs, the MILP on the first
``--milp-n`` examples that α-CROWN leaves uncertified, with ``refine="none"`` and ``refine="lp"``:
how many it decides within ``--time-limit`` s each, its binaries per example and its time.

    python benchmarks/alpha_crown_milp.py [--profile quick] [--n 100] [--alpha-steps 10 20 50]
"""
from __future__ import annotations

import argparse
import json

import torch

from advlab.certify import bounds
from advlab.certify.milp import exact_verification
from advlab.chapters import certification
from advlab.data import load_dataset
from advlab.execution import configure_environment, find_root
from advlab.threat import ThreatModel
from advlab.timing import Stopwatch
from advlab.training import load_or_train


def margin_stats(model, x, y, threat, method, **options):
    with Stopwatch(x.device) as sw:
        lower = bounds.margin_bounds(model, x, y, threat, method=method, upper=False, **options).lower
    others = ~torch.nn.functional.one_hot(y, lower.shape[1]).bool()
    cert = bounds.certified(bounds.Bounds(lower, None, []), y)
    return {"mean margin lower bound": float(lower[others].mean()), "certified": float(cert.float().mean()),
            "s/example": sw.seconds / len(y)}, cert


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--alpha-steps", type=int, nargs="+", default=[10, 20, 50])
    ap.add_argument("--milp-n", type=int, default=10)
    ap.add_argument("--time-limit", type=float, default=10.0)
    args = ap.parse_args()
    configure_environment(find_root())
    cfg = certification.CHAPTER.resolve(args.profile)
    data = load_dataset(cfg.dataset, "test").subset(args.n, seed=cfg.seed)
    x, y = data.images(), data.y
    rows = []
    for (arch, training, eps), conf in certification.bound_configs(cfg).items():
        model, _ = load_or_train(conf, progress=False)
        threat = ThreatModel("linf", eps)
        base = {"architecture": arch, "training": training, "eps": eps}
        crown, _ = margin_stats(model, x, y, threat, "crown")
        rows.append({**base, "method": "CROWN", **crown})
        for steps in args.alpha_steps:
            alpha, cert = margin_stats(model, x, y, threat, "alpha_crown", alpha_steps=steps)
            rows.append({**base, "method": f"α-CROWN ({steps} steps)", **alpha})
        print(json.dumps(rows[-1 - len(args.alpha_steps):], ensure_ascii=False), flush=True)
        if arch == "small MLP":
            open_ = (~cert).nonzero().squeeze(1)[:args.milp_n]
            for refine in ("none", "lp"):
                ex = exact_verification(model, x[open_], y[open_], threat, time_limit=args.time_limit,
                                        refine=refine, progress=False)
                rows.append({**base, "method": f"MILP, refine={refine}", "given": len(ex),
                             "decided": int((ex.verdict != "undecided").sum()),
                             "robust": int((ex.verdict == "robust").sum()),
                             "binaries": float(ex.binaries.mean()), "binaries (CROWN)": float(ex.binaries_crown.mean()),
                             "LPs": float(ex.lps.mean()), "s/example": float(ex.seconds.mean())})
                print(json.dumps(rows[-1], ensure_ascii=False), flush=True)
    import pandas as pd
    print(pd.DataFrame(rows).to_string(index=False, float_format="{:.4g}".format))


if __name__ == "__main__":
    main()
