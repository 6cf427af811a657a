"""Exception types, so callers can tell bad input from a missing resource."""


__all__ = ["AdvlabError", "BudgetError", "CacheMiss", "CheckpointError", "DatasetError", "InputError"]


class AdvlabError(Exception):
    """Base class of every error advlab raises on purpose."""


class InputError(AdvlabError, ValueError):
    """An argument has the wrong shape, dtype, range or value."""


class DatasetError(AdvlabError, FileNotFoundError):
    """A dataset is missing, unreadable or fails its checksum."""


class CheckpointError(AdvlabError):
    """A checkpoint is truncated, corrupt or was written for another configuration."""


class BudgetError(AdvlabError, AssertionError):
    """An adversarial input lies outside the threat model's ball or the pixel box, or holds NaNs."""


class CacheMiss(AdvlabError):
    """A model or result is not cached and ``ADVLAB_CACHED_ONLY=1`` forbids computing it."""
