"""The evaluation kinds, one module per family: every module of this package is imported, so a new
kind is a new module that registers its functions with :func:`~advlab.results.spec.register_kind`.

A kind is ``fn(models, data, *, seed, batch_size, **params)`` returning the per-example rows of one
block of examples (``models`` built from the evaluation's recipes, ``seed`` the block's stream).
"""
import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
