"""Computing a declared table: models built from their recipes, the subset cut into blocks whose
random streams depend on (seed, block) only, blocks sharded over ranks, resumable from saved parts,
and the whole table kept in the artifact store (:func:`advlab.store.load_or_make`)."""
from __future__ import annotations

import shutil

import pandas as pd
import torch

from ..attacks.graphs import cuda_graphs
from ..data import Dataset
from ..distributed import broadcast_from_main, context, gather_to_main, shard
from ..errors import AdvlabError, InputError
from ..precision import Policy
from ..progress import bar
from ..timing import Stopwatch
from .spec import EVALUATION_KINDS, Evaluation, ModelSpec, block_seed, source_of
from ..store import load_or_make, read_valid
from .table import decode_table, read_table, save_table, table_record

# -- computing -----------------------------------------------------------------------------------------
def _models(ev: Evaluation, device, progress: bool, cache_root=None) -> dict:
    out = {}
    for name, spec in ev.models.items():
        source = source_of(spec.source if isinstance(spec, ModelSpec) else spec)
        model = Policy(ev.precision).model(source.build(device, cache_root=cache_root, progress=progress))
        if isinstance(spec, ModelSpec):
            model = spec.build(model)
        out[name] = model
    return out


def _reseed(models: dict, seed: int) -> None:
    """Random wrappers draw from the block's stream, so a block's noise does not depend on which
    process computed which blocks before it."""
    for m in models.values():
        for mod in m.modules():
            if hasattr(mod, "reseed"):
                mod.reseed(seed)


def _run_block(ev: Evaluation, models: dict, data: Dataset, b: int, rows: range,
               inputs: dict | None = None) -> pd.DataFrame:
    part = data.take(torch.arange(rows.start, rows.stop, device=data.x.device))
    extra = {}
    seed = block_seed(ev.seed, b)
    _reseed(models, seed)
    if EVALUATION_KINDS[ev.kind].whole_inputs:
        extra = {"inputs": dict(inputs or {})}
    elif EVALUATION_KINDS[ev.kind].takes_inputs:
        examples = part.indices.cpu().numpy()
        # each input's rows for these examples, in the block's order (the inputs' blocks may differ)
        extra = {"start": rows.start, "inputs": {k: t.set_index("example").loc[examples].reset_index()
                                                  for k, t in (inputs or {}).items()}}
    # a model that draws from torch's global generator (a reader's own random model) draws the
    # block's stream too; the caller's generator state is restored afterwards
    cuda = [data.x.device] if data.x.device.type == "cuda" else []
    with Policy(ev.precision).context(), \
            torch.random.fork_rng(devices=cuda), cuda_graphs(ev.cuda_graphs):
        torch.manual_seed(seed)
        out = EVALUATION_KINDS[ev.kind].fn(models, part, seed=seed, batch_size=ev.block, **extra, **ev.params)
    return out.assign(block=b)


def load_result(ev: Evaluation, cache_root=None) -> pd.DataFrame | None:
    """The cached table of ``ev``, or None. A corrupt or foreign file is reported and removed."""
    return read_valid(ev.path(cache_root), lambda p: read_table(p, ev.describe())[0])


def load_or_evaluate(ev: Evaluation, device=None, cache_root=None, progress: bool = True) -> pd.DataFrame:
    """The per-example table of ``ev``: from the artifact store, or computed (sharded under
    torchrun) and stored.

    Every rank returns the same table. Rows are in block order (within a block, in the kind's
    order); the ``block`` column says which block an example belonged to. With
    ``ADVLAB_CACHED_ONLY=1`` a missing table raises :class:`~advlab.errors.CacheMiss` instead.
    """
    device = torch.device(device or "cpu")
    path = ev.path(cache_root)
    describe = ev.describe()
    table, made = load_or_make(path, read=lambda p: read_table(p, describe)[0],
                               make=lambda: _compute(ev, device, cache_root, progress), what=f"{ev.kind} result")
    if made and context().main:
        shutil.rmtree(_parts(path), ignore_errors=True)  # the whole table is stored: its blocks are not needed
    return table


def _parts(path):
    return path.parent / ".parts" / path.stem


def _compute(ev: Evaluation, device, cache_root, progress: bool) -> tuple[pd.DataFrame, dict | None]:
    """``(table, record)`` on rank 0, ``(table, None)`` on the others: the blocks each rank computes
    (or finds saved under ``.parts/`` from a killed run), gathered in block order."""
    ctx = context()
    data = ev.data.load(device)
    if ctx.world > len(data):
        raise InputError(f"{ctx.world} processes for an evaluation of {len(data)} examples ({ev.kind} on "
                         f"{ev.data.dataset}): every process needs at least one; start fewer (--nproc_per_node)")
    inputs = {k: load_or_evaluate(dep, device, cache_root, progress) for k, dep in ev.inputs.items()}
    models = _models(ev, device, progress, cache_root)
    blocks = ev.blocks(len(data))
    parts = _parts(ev.path(cache_root))
    describe = ev.describe()
    done = {}
    with Stopwatch(device) as sw:
        for b, rows in bar(shard(list(enumerate(blocks)), ctx), enabled=progress, leave=False,
                           desc=f"{ev.kind} ({len(data)} examples, rank {ctx.rank}/{ctx.world})"):
            part = parts / f"{b:06d}.pt"
            found = read_valid(part, lambda p: read_table(p, describe)[0])
            done[b] = found if found is not None else _run_block(ev, models, data, b, rows, inputs)
            if found is None:
                save_table(done[b], part, describe)
    gathered = gather_to_main(done)
    table = record = None
    if ctx.main:
        merged = {b: t for d in gathered for b, t in d.items()}
        missing = sorted(set(range(len(blocks))) - set(merged))
        if missing:
            raise AdvlabError(f"blocks {missing} of {ev.kind} were not computed by any rank")
        table = pd.concat([merged[b] for b in range(len(blocks))], ignore_index=True)
        record = table_record(table, describe, {"computed": {"device": str(device), "world": ctx.world,
                                                             "seconds": sw.seconds}})
        table = decode_table(record["table"])  # the same dtypes as a table read from the store
    return broadcast_from_main(table), record
