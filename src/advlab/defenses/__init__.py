"""Defenses at test time: input transformations and randomness as model wrappers, and the
wrappers that attack through them (BPDA, EOT). Training-time defenses are methods of
:mod:`advlab.training`."""
from .denoiser import Denoised, DnCNN
from .randomized import EOT, GaussianNoise, majority_vote
from .transforms import BitDepthReduction, bpda

__all__ = ["EOT", "BitDepthReduction", "Denoised", "DnCNN", "GaussianNoise", "bpda", "majority_vote"]
