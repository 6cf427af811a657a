"""Black-box attacks: they see the model only through a :class:`QueryOracle` and count their queries."""
from .oracle import OUTPUTS, QueryBudgetError, QueryOracle, margin
from .square import square

__all__ = ["margin", "OUTPUTS", "QueryBudgetError", "QueryOracle", "square"]
