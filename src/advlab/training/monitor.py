"""Held-out monitoring during adversarial training: PGD accuracy per epoch, the best epoch kept, and
catastrophic overfitting (Wong et al. 2020) detected and reported."""
from __future__ import annotations

import copy
import warnings

import torch

from ..attacks import run_attack
from ..data import Dataset, load_dataset
from ..errors import InputError
from ..models import predict
from ..threat import ThreatModel
from .config import TrainConfig

# Catastrophic overfitting (Wong et al. 2020): held-out PGD accuracy falls CO_DROP (absolute) below its
# best epoch, or stays under CO_FLOOR while FGSM accuracy is CO_GAP higher (the single step defeated,
# the ball not: FGSM training at a large ε does this from its first epoch).
#: Catastrophic overfitting: held-out PGD accuracy this far (absolute) below its best epoch.
CO_DROP = 0.2
#: Catastrophic overfitting: held-out PGD accuracy under this while FGSM accuracy is :data:`CO_GAP` higher.
CO_FLOOR = 0.1
#: Catastrophic overfitting: the FGSM-over-PGD accuracy gap that, under :data:`CO_FLOOR`, says the single step
#: is defeated and the ball is not.
CO_GAP = 0.3
#: PGD steps of the held-out accuracy the monitor measures after each epoch.
MONITOR_STEPS = 10


def split_held_out(config: TrainConfig, device) -> tuple[Dataset, Dataset | None]:
    """The training (sub)set and the held-out monitoring examples (disjoint, seeded)."""
    full = load_dataset(config.dataset, "train")
    if not config.monitor:
        return full.subset(config.train_subset, seed=config.seed).to(device), None
    if config.monitor >= len(full):
        raise InputError(f"monitor={config.monitor} holds out the whole training split ({len(full)} examples)")
    perm = torch.randperm(len(full), generator=torch.Generator().manual_seed(config.seed + 2))
    held, rest = full.take(perm[:config.monitor]), full.take(perm[config.monitor:])
    return rest.subset(config.train_subset, seed=config.seed).to(device), held.to(device)


def held_out_accuracy(model, held: Dataset, threat: ThreatModel, seed: int) -> dict:
    """Clean, FGSM and PGD-10 accuracy on the held-out examples (robust: correct clean and under the
    attack). FGSM far above PGD is the signature of catastrophic overfitting: the model has learnt
    to defeat the single step, not the ball."""
    x, y = held.images(), held.y
    gen = torch.Generator(device=x.device).manual_seed(seed)
    clean = fgsm = robust = 0
    for i in range(0, len(y), 500):
        xb, yb = x[i:i + 500], y[i:i + 500]
        ok = predict(model, xb) == yb
        one = run_attack("fgsm", model, xb, yb, threat=threat)
        res = run_attack("pgd", model, xb, yb, threat=threat, steps=MONITOR_STEPS, generator=gen)
        clean += int(ok.sum())
        fgsm += int((ok & ~one.success).sum())
        robust += int((ok & ~res.success).sum())
    return {"holdout_clean": clean / len(y), "holdout_fgsm": fgsm / len(y), "holdout_pgd": robust / len(y)}


def overfitting_epochs(history: list[dict]) -> list[int]:
    """Epochs showing catastrophic overfitting: held-out PGD accuracy more than ``CO_DROP`` below
    its best so far, or under ``CO_FLOOR`` with FGSM accuracy more than ``CO_GAP`` above it."""
    out, best = [], 0.0
    for r in history:
        best = max(best, r["holdout_pgd"])
        pgd, gap = r["holdout_pgd"], r["holdout_fgsm"] - r["holdout_pgd"]
        if pgd < best - CO_DROP or (pgd < CO_FLOOR and gap > CO_GAP):
            out.append(r["epoch"])
    return out


class OverfittingMonitor:
    """Measures every epoch on the held-out examples, keeps the best epoch's weights, and at the end
    restores them and reports catastrophic overfitting (a warning, and the checkpoint's metrics)."""

    def __init__(self, config: TrainConfig, held: Dataset):
        self.config, self.held = config, held
        self.best, self.best_state = None, None

    def observe(self, model, row: dict) -> None:
        row.update(held_out_accuracy(model, self.held, self.config.threat, self.config.seed))
        if self.best is None or row["holdout_pgd"] > self.best["holdout_pgd"]:
            self.best, self.best_state = row, copy.deepcopy(model.state_dict())

    def finish(self, model, history: list[dict]) -> dict:
        """Restore the best epoch's weights into ``model``; the metrics to store."""
        co = overfitting_epochs(history)
        if co:
            r, c = history[co[0] - 1], self.config
            warnings.warn(f"catastrophic overfitting in {c.method} training of {c.model} at epoch {co[0]}: "
                          f"held-out accuracy {r['holdout_fgsm']:.1%} under FGSM but {r['holdout_pgd']:.1%} under "
                          f"PGD-10 (best PGD-10: {self.best['holdout_pgd']:.1%}); keeping epoch {self.best['epoch']}",
                          stacklevel=4)
        if self.best["epoch"] != history[-1]["epoch"]:
            model.load_state_dict(self.best_state)
        return {"best_epoch": self.best["epoch"], "catastrophic_overfitting": bool(co),
                "overfitting_epoch": co[0] if co else None}
