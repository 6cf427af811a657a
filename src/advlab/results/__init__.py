"""Evaluation results cached like checkpoints, computed in fixed-size blocks that shard across ranks.

An :class:`Evaluation` declares a per-example table: a registered ``kind`` (an attack, a sweep,
the robust ensemble, a certificate, ...) with its parameters, the models it runs on (named
:class:`~advlab.training.TrainConfig`\\ s), a data subset and a seed. Its key hashes all of that, the
block size, the precision, the library version and the source of the kernels, so a change in any
of them is a different result, never a mixed one. :func:`load_or_evaluate` returns the table from
``<cache>/results/`` or computes and stores it, as :func:`~advlab.training.load_or_train` does for
models.

Sharding: the subset is cut into blocks of ``block`` examples; block ``b`` draws all its random
numbers from a generator seeded with :func:`block_seed` ``(seed, b)``, so the table does not depend
on which process computed which block (bit for bit on CPU). Under ``torchrun`` rank r computes
blocks r, r + K, ... and rank 0 gathers them. Every finished block is saved (atomically) under
``results/.parts/<name>/``; a killed run resumes with the missing blocks only, and the table in
``results/`` appears, atomically, once every block is done.

A chapter's :class:`Plan` lists the trainings and evaluations it needs for a configuration; the
notebook reads its results through the plan and ``advlab precompute`` fills the cache from it.
"""
from . import kinds  # noqa: F401  (registers the evaluation kinds)
from .engine import load_or_evaluate, load_result
from .plan import Plan
from .spec import (EVALUATION_KINDS, RESULT_FORMAT, WRAPPERS, DataSpec, DenoisedModel, Evaluation, Kind, ModelFile,
                   ModelSource, ModelSpec, RandomNet, Trained, block_seed, kernel_hash, per_model, register_kind,
                   requirements, source_of, threat_of, timing_columns)
from .table import decode_table, encode_table, table_digest

__all__ = ["EVALUATION_KINDS", "RESULT_FORMAT", "WRAPPERS", "DataSpec", "DenoisedModel", "Evaluation", "Kind",
           "ModelFile", "ModelSource", "ModelSpec", "Plan", "RandomNet", "Trained", "requirements", "source_of",
           "block_seed", "decode_table", "encode_table", "kernel_hash", "load_or_evaluate", "load_result", "per_model",
           "register_kind", "table_digest", "threat_of", "timing_columns"]
