"""Wall-clock timing that is honest on every device: CUDA work is finished before the clock reads."""
from __future__ import annotations

import time

import torch


def synchronize(device) -> None:
    """Wait for the device's queued work (CUDA kernels launch asynchronously); a no-op on CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Stopwatch:
    """``with Stopwatch(device) as sw: ...`` then ``sw.seconds``; synchronises before and after."""

    def __init__(self, device="cpu"):
        self.device = torch.device(device)
        self.seconds = float("nan")

    def __enter__(self):
        synchronize(self.device)
        self._t0 = time.perf_counter()
        return self

    def elapsed(self) -> float:
        """Seconds since entering, while still inside (no synchronisation: a budget check)."""
        return time.perf_counter() - self._t0

    def __exit__(self, *exc):
        synchronize(self.device)
        self.seconds = time.perf_counter() - self._t0
        return False
