"""CUDA graphs for the fixed-shape inner loops of attacks (opt-in: :func:`cuda_graphs`, which an
:class:`~advlab.results.Evaluation` sets from its declared ``cuda_graphs``; a direct library call may
also set ``ADVLAB_CUDA_GRAPHS=1``).

On a GPU a small model is launch-bound: a PGD step of the MNIST CNN is some forty kernels of a few
microseconds each, and the CPU's time to launch them exceeds the GPU's time to run them. A CUDA
graph records one step's kernels once and replays them with one launch. :func:`run_steps` runs
``state = step(size, *state)`` over a schedule of step sizes: eagerly everywhere, or, with graphs
enabled and the state on a GPU, the first :data:`WARMUP` steps eagerly (on a side stream, as CUDA
graphs require) and every later one as a replay of one captured step. The replayed kernels are
the eager ones up to the algorithms cuDNN picks under capture, so the numbers agree to float
rounding (a replayed L2 PGD-10 moved 15 of 156,800 pixels by at most 1.6e-3 on an H100); a step
that cannot be captured (a host read in the model, say) falls back to eager steps with a warning.
CPUs never take the graph path.
"""
from __future__ import annotations

import os
import warnings
from contextlib import contextmanager
from contextvars import ContextVar

import torch

GRAPHS_ENV = "ADVLAB_CUDA_GRAPHS"
WARMUP = 2
_DECLARED: ContextVar[bool | None] = ContextVar("advlab_cuda_graphs", default=None)


@contextmanager
def cuda_graphs(enabled: bool):
    """Inside, attack steps on a GPU replay as CUDA graphs iff ``enabled``, whatever the environment says."""
    token = _DECLARED.set(bool(enabled))
    try:
        yield
    finally:
        _DECLARED.reset(token)


def graphs_enabled(x: torch.Tensor) -> bool:
    """Whether ``x``'s attack steps replay as a graph: on a GPU, as declared (:func:`cuda_graphs`), else as
    ``ADVLAB_CUDA_GRAPHS`` says."""
    declared = _DECLARED.get()
    return x.is_cuda and (declared if declared is not None else os.environ.get(GRAPHS_ENV) == "1")


def run_steps(step, state: tuple, sizes, counter=None) -> tuple:
    """``state = step(sizes[t], *state, first=t == 0)`` for every t; returns the final state.

    ``step`` must be shape-static and free of host reads after its first call. ``counter`` (the
    attack's :class:`~advlab.attacks.CountingModel`) has the replayed passes added, since its
    Python counting runs only when a step is captured.
    """
    n = len(sizes)
    if not hasattr(counter, "forwards"):  # a plain model: nothing counts its passes
        counter = None
    if not graphs_enabled(state[0]) or n <= WARMUP + 1:
        for t in range(n):
            state = step(sizes[t], *state, first=t == 0)
        return state
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for t in range(WARMUP):
            state = step(sizes[t], *state, first=t == 0)
    torch.cuda.current_stream().wait_stream(side)
    static = tuple(s.clone() for s in state)
    size = torch.tensor(sizes[WARMUP], device=static[0].device, dtype=static[0].dtype)
    before = (counter.forwards, counter.backwards) if counter is not None else None
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph):
            for s, new in zip(static, step(size, *static, first=False)):
                s.copy_(new)
    except RuntimeError as e:  # capture records and runs nothing: the state is as the warm-up left it
        warnings.warn(f"attack step not capturable as a CUDA graph ({e}); running it eagerly", stacklevel=3)
        if counter is not None:
            counter.forwards, counter.backwards = before
        for t in range(WARMUP, n):
            state = step(sizes[t], *state, first=False)
        return state
    if counter is not None:
        per = (counter.forwards - before[0], counter.backwards - before[1])
        counter.forwards, counter.backwards = before[0] + per[0] * (n - WARMUP), before[1] + per[1] * (n - WARMUP)
    current = sizes[WARMUP]
    for t in range(WARMUP, n):
        if sizes[t] != current:
            size.fill_(sizes[t])
            current = sizes[t]
        graph.replay()
    return static
