"""Defenses: input transformations as model wrappers (and, later, training-time defenses)."""
from .transforms import BitDepthReduction, bpda

__all__ = ["BitDepthReduction", "bpda"]
