"""advlab: a reproducible laboratory for adversarial robustness of neural networks."""
from .threat import ThreatModel

__version__ = "0.1.0"

__all__ = ["ThreatModel", "__version__"]


def default_device():
    """CUDA when available, else CPU: for notebooks and scripts; library kernels follow their inputs."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seeded_generator(seed: int, device=None):
    """A ``torch.Generator`` on ``device`` seeded with ``seed`` (attacks draw their random starts from it)."""
    import torch

    return torch.Generator(device=device or "cpu").manual_seed(seed)
