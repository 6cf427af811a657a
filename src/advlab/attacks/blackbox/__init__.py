"""Black-box attacks: they see the model only through a :class:`QueryOracle` and count their queries."""
from .oracle import OUTPUTS, QueryBudgetError, QueryOracle, margin
from .square import square
from .nes import gaussian_noise, nes
from .onepixel import one_pixel
from .nattack import nattack
from .hsja import hop_skip_jump

__all__ = ["gaussian_noise", "hop_skip_jump", "margin", "nattack", "nes", "one_pixel", "OUTPUTS", "QueryBudgetError",
           "QueryOracle", "square"]
