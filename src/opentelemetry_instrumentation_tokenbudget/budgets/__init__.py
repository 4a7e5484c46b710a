"""Spend budgets: declared with `Budget`, enforced before each call by `guard.BudgetGuard`, kept in a
spend store (`stores`), reported through thresholds and metrics."""

from .spec import Budget, BudgetConfigError
from .thresholds import ThresholdEvent

__all__ = ["Budget", "BudgetConfigError", "ThresholdEvent"]
