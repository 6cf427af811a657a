"""Certification: lower bounds on robust accuracy. Randomized smoothing so far (``smoothing``)."""
from .smoothing import ABSTAIN, certified_accuracy, certify, lower_confidence_bound, sample_counts, smoothed_predict

__all__ = ["ABSTAIN", "certified_accuracy", "certify", "lower_confidence_bound", "sample_counts", "smoothed_predict"]
