"""advlab as its users meet it: installed (CI: from the wheel, with the oldest supported torch), used from
a folder that is no checkout. The README's "Library at a glance" runs as written, its data from
ADVLAB_DATA and its models in the user cache; `advlab run your-model` judges a reader's file.

Deselected by default (`-m outside` runs them): each trains its models cold, a few minutes in all.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

pytestmark = pytest.mark.outside

ROOT = Path(__file__).resolve().parents[1]


def _outside_env(tmp_path) -> dict:
    """The user's environment: HOME elsewhere (so ~/.cache/advlab is fresh), no ADVLAB_CACHE, the data root
    the tests use, and no path into the checkout."""
    env = {k: v for k, v in os.environ.items() if k not in ("ADVLAB_CACHE", "PYTHONPATH")}
    env.update(HOME=str(tmp_path / "home"), ADVLAB_DATA=os.environ["ADVLAB_DATA"], TQDM_DISABLE="1")
    (tmp_path / "home").mkdir()
    return env


def readme_library_code() -> str:
    section = (ROOT / "README.md").read_text().split("## Library at a glance", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) >= 4, "the README's library section lost its examples"
    return "\n".join(blocks)


def test_the_readmes_library_snippets_run_as_written(tmp_path):
    work = tmp_path / "elsewhere"
    work.mkdir()
    (work / "glance.py").write_text(readme_library_code())
    env = _outside_env(tmp_path)
    done = subprocess.run([sys.executable, "glance.py"], cwd=work, env=env, capture_output=True, text=True,
                          timeout=1500)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ci_low" in done.stdout and "escalated" in done.stdout
    models = tmp_path / "home" / ".cache" / "advlab" / "models"
    assert len(list(models.rglob("*.pt"))) == 4  # the four trained models, in the user cache
    assert sorted(p.name for p in work.iterdir()) == ["glance.py"]  # nothing written where it ran


def test_advlab_run_judges_a_readers_file_outside_a_checkout(tmp_path):
    """A TorchScript file beside the reader's work; the page lands there, the cache in ~/.cache/advlab."""
    work = tmp_path / "mywork"
    work.mkdir()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10)).eval()
    torch.jit.script(net).save(str(work / "net.ts"))
    env = _outside_env(tmp_path)
    cmd = [sys.executable, "-m", "advlab", "run", "your-model", "--profile", "smoke", "-p", "model", "net.ts",
           "-p", "architecture", "torchscript", "-p", "references", "[none]", "-p", "threats", "[linf 0.1]"]
    done = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    page = work / "your-model.ipynb"
    assert page.is_file() and str(work / "net.ts") in page.read_text()
    assert '"output_type": "error"' not in page.read_text()
    assert (tmp_path / "home" / ".cache" / "advlab" / "results").is_dir()
    assert not (tmp_path / "home" / ".cache" / "advlab" / "runs").exists() or \
        not any((tmp_path / "home" / ".cache" / "advlab" / "runs").iterdir())
