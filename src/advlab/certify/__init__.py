"""Certification: lower bounds on robust accuracy.

- ``bounds``: interval bound propagation, CROWN, α-CROWN and CROWN-IBP,
  deterministic certificates for L∞ and L2 balls of ReLU networks with branches, batch norm,
  average and max pooling (``graph``: the traced network they walk);
- ``milp``: exact verification of small networks by mixed-integer programming,
  with LP-tightened intermediate bounds;
- ``smoothing``: randomized smoothing, probabilistic L2 certificates for any
  classifier, and SmoothAdv, the attack on the smoothed classifier.

Every entry point computes in IEEE float32 whatever the caller's global flags (TF32 off for matrix
products and convolutions, ``advlab.precision.strict_fp32``, the flags restored afterwards):
a bound rounded in TF32 can be an unsound certificate.
"""
from .bounds import BOUND_METHODS, Bounds, bound_spec, certified, layers, margin_bounds, relu_count, verify
from .graph import Graph, trace
from .milp import exact_verification
from .smoothing import (ABSTAIN, certified_accuracy, certify, lower_confidence_bound, sample_counts, smoothadv,
                        smoothed_predict)

__all__ = ["ABSTAIN", "BOUND_METHODS", "Bounds", "Graph", "bound_spec", "certified", "certified_accuracy", "certify",
           "exact_verification", "layers", "lower_confidence_bound", "margin_bounds", "relu_count", "sample_counts",
           "smoothadv", "smoothed_predict", "trace", "verify"]
