"""How long `advlab run your-model` takes to refuse a bad model: the whole command in a fresh process
(Python start, imports, the check), median of a few runs per case, and nothing left in runs/.

    python benchmarks/early_errors.py [--repeats 3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        torch.save(nn.Linear(3, 3).state_dict(), tmp / "linear.pt")
        torch.save(nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10)).state_dict(), tmp / "cifar.pt")
        (tmp / "nets.py").write_text("from torch import nn\n\ndef cifar():\n    return nn.Sequential(nn.Flatten(), "
                                     "nn.Linear(3 * 32 * 32, 10))\n")
        cases = {"missing file": ["-p", "model", str(tmp / "nothing.pt"), "-p", "architecture", "small_cnn"],
                 "weights of another architecture": ["-p", "model", str(tmp / "linear.pt"), "-p", "architecture",
                                                     "small_cnn"],
                 "CIFAR-10 network on MNIST": ["-p", "model", str(tmp / "cifar.pt"), "-p", "architecture",
                                               "nets:cifar"]}
        env = {**os.environ, "ADVLAB_CACHE": str(tmp / "cache"), "PYTHONPATH": str(tmp)}
        print(f"{'case':34} {'median s':>9} {'max s':>7}  exit  runs/ left")
        for name, extra in cases.items():
            times, codes = [], set()
            for _ in range(args.repeats):
                start = time.perf_counter()
                done = subprocess.run([sys.executable, "-m", "advlab", "run", "your-model", "--profile", "smoke",
                                       *extra, "-o", str(tmp / "page.ipynb")], env=env, capture_output=True)
                times.append(time.perf_counter() - start)
                codes.add(done.returncode)
            left = (tmp / "cache" / "runs").exists() or (tmp / "page.ipynb").exists()
            print(f"{name:34} {statistics.median(times):9.2f} {max(times):7.2f}  {sorted(codes)}   {left}")


if __name__ == "__main__":
    main()
