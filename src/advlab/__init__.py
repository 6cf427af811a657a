"""advlab: a reproducible laboratory for adversarial robustness of neural networks."""
__version__ = "0.1.0"

__all__ = ["ThreatModel", "__version__"]


def __getattr__(name):
    # ThreatModel on first use: `python -m advlab` can then refuse a bad start before torch loads
    if name == "ThreatModel":
        from .threat import ThreatModel

        return ThreatModel
    raise AttributeError(f"module 'advlab' has no attribute {name!r}")


def default_device():
    """CUDA when available, else CPU: for notebooks and scripts; library kernels follow their inputs."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seeded_generator(seed: int, device=None):
    """A ``torch.Generator`` on ``device`` seeded with ``seed`` (attacks draw their random starts from it)."""
    import torch

    return torch.Generator(device=device or "cpu").manual_seed(seed)
