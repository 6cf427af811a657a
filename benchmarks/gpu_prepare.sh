#!/usr/bin/env bash
# make gpu-prepare: fill .gpu/ (ignored) with what `make gpu-check` needs on a lent GPU machine:
# the MNIST splits, the CIFAR-10 test split, and the smoke profile's CIFAR-10 checkpoints from
# this checkout's model cache (trained here first if missing). About 40 MB; carry `.gpu`.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${ADVLAB_DATA:-../shared/data}
rm -rf .gpu && mkdir -p .gpu/data/mnist .gpu/data/cifar10 .gpu/cache/models
cp "$data"/mnist/{train,test}.npz .gpu/data/mnist/
cp "$data"/cifar10/test.npz .gpu/data/cifar10/
.venv/bin/python - <<'PY'
import shutil
from pathlib import Path

from advlab.chapters import CHAPTERS, chapter_plan, get_chapter
from advlab.execution import configure_environment
from advlab.training import load_or_train

configure_environment(Path.cwd())
for name in CHAPTERS:
    for cfg in chapter_plan(name, get_chapter(name).resolve("smoke", {})).all_trainings().values():
        if cfg.dataset == "cifar10":
            load_or_train(cfg, progress=False)  # from the cache, or trained here once
            shutil.copy2(cfg.checkpoint_path(), Path(".gpu/cache/models") / cfg.checkpoint_path().name)
PY
du -sh .gpu
