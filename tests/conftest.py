"""Test environment: the shared data beside the repository, a repo-local model cache, no tqdm.

Set before collection, so nbval's kernels inherit it too.
"""
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("ADVLAB_DATA", str(ROOT.parent / "shared" / "data"))
os.environ.setdefault("ADVLAB_CACHE", str(ROOT / ".cache"))
os.environ["TQDM_DISABLE"] = "1"  # progress bars differ between runs; nbval compares outputs
os.environ.setdefault("ADVLAB_DOWNLOAD", "0")  # tests never reach for the network
