"""``python -m advlab ...``: the command line (what ``torchrun -m advlab`` starts in every process).

A torchrun start with more processes on this node than it has CPU cores is refused here, before
torch is imported: every worker would otherwise load torch and start its process group first (64
workers on 2 cores took 21 of 24 GB before anything could say no).
"""
import os
import sys


def _too_many_processes() -> str | None:
    local, cores = int(os.environ.get("LOCAL_WORLD_SIZE") or 1), os.cpu_count() or 1
    if local > cores:
        return (f"advlab: error: {local} processes on this node but {cores} CPU cores: start at most {cores} "
                "(--nproc_per_node)")
    return None


if (refusal := _too_many_processes()) is not None:
    if os.environ.get("LOCAL_RANK", "0") == "0":
        print(refusal, file=sys.stderr)
    sys.exit(2)

from .cli import main  # noqa: E402

sys.exit(main())
