"""Sharded evaluation: throughput of one attack evaluation in 1 process against K under torchrun.

    python benchmarks/sharded_evaluation.py [--procs 1 2] [--examples 1000] [--block 50] [--steps 10]

Each setting runs ``torchrun --standalone --nproc_per_node=K`` on this script, one intra-op thread
per process (what torchrun sets, and the fair comparison on a machine with K cores). The workers
load the model (trained and cached beforehand), wait at a barrier, then time
:func:`advlab.results.load_or_evaluate` of PGD on ``n`` MNIST test digits into an empty result
folder: blocks computed, gathered on rank 0 and written. The table is checked to be the same in
every setting (timing columns aside).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _evaluation(args):
    from advlab.results import DataSpec, Evaluation
    from advlab.training import TrainConfig

    model = TrainConfig(dataset="mnist", model="small_cnn", epochs=1, train_subset=3000, eval_subset=500)
    return Evaluation("attack", {"cnn": model}, DataSpec("mnist", n=args.examples, seed=0),
                      {"attack": "pgd", "threat": ["linf", 0.1], "steps": args.steps}, block=args.block)


def worker(args) -> None:
    import hashlib

    from advlab import distributed
    from advlab.results import load_or_evaluate, timing_columns
    from advlab.timing import Stopwatch
    from advlab.training import load_or_train

    device = distributed.init("cpu")
    ctx = distributed.context()
    ev = _evaluation(args)
    for cfg in ev.models.values():
        load_or_train(cfg, device=device, progress=False)
    distributed.barrier()
    with Stopwatch(device) as sw:
        table = load_or_evaluate(ev, device=device, cache_root=args.results, progress=False)
    if ctx.main:
        stable = table.drop(columns=timing_columns(table))
        digest = hashlib.sha256(stable.to_csv(index=False).encode()).hexdigest()[:16]
        print(json.dumps({"procs": ctx.world, "seconds": sw.seconds, "examples": len(table), "table": digest}))
    distributed.shutdown()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--examples", type=int, default=1000)
    ap.add_argument("--block", type=int, default=50)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--results", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    from advlab.execution import configure_environment

    configure_environment(ROOT)
    rows = []
    for k in args.procs:
        with tempfile.TemporaryDirectory() as results:
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={k}",
                   __file__, "--worker", "--results", results, "--examples", str(args.examples),
                   "--block", str(args.block), "--steps", str(args.steps)]
            env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
            rows.append(json.loads(next(ln for ln in out.splitlines() if ln.startswith("{"))))
    base = rows[0]
    print(f"PGD-{args.steps} L∞ 0.1 on {args.examples} MNIST digits, small CNN, blocks of {args.block}, "
          "1 thread per process")
    print(f"{'processes':>9}  {'seconds':>8}  {'examples/s':>10}  {'speed-up':>8}  table")
    for r in rows:
        print(f"{r['procs']:>9}  {r['seconds']:>8.2f}  {r['examples'] / r['seconds']:>10.1f}  "
              f"{base['seconds'] / r['seconds']:>7.2f}×  {r['table']}")
    if len({r["table"] for r in rows}) != 1:
        sys.exit("the per-example tables differ between settings")


if __name__ == "__main__":
    main()
