"""Spend budgets: declared with `Budget`, enforced before each call by `guard.BudgetGuard`, kept in a
spend store (`stores`), reported through thresholds, forecasts, anomaly alerts and metrics."""

from .anomaly_signal import AnomalyEvent
from .forecast_signal import ForecastEvent
from .spec import Budget, BudgetConfigError
from .thresholds import ThresholdEvent

__all__ = ["AnomalyEvent", "Budget", "BudgetConfigError", "ForecastEvent", "ThresholdEvent"]
