"""OpenTelemetry instrumentation that puts the tokens and the cost of every LLM call into traces and
metrics, and stops spending that no budget allows before the request is sent.

Usage
-----
.. code-block:: python

    from opentelemetry_instrumentation_tokenbudget import TokenBudgetInstrumentor, cost_attributes

    TokenBudgetInstrumentor().instrument()

    with cost_attributes(project="acme", feature="search", user="u-42"):
        client.chat.completions.create(model="gpt-4o-mini", messages=[...])

Each call's span carries the GenAI semantic conventions' token counts and ``gen_ai.usage.cost.amount``
(USD, computed from the bundled `genai-prices` data or the ``prices`` you pass); the metrics
``gen_ai.client.token.usage``, ``gen_ai.client.operation.duration`` and
``gen_ai.client.operation.cost`` are recorded with the provider, the model and the low-cardinality
attribution attributes. See ``TokenBudgetInstrumentor`` for the options and the README for budgets.
"""

from importlib import import_module
from typing import TYPE_CHECKING

from .attribution import cost_attributes, current_cost_attributes
from .errors import BudgetExceededError, ConfigError, SpendLimitExceededError, budget_refusal
from .instrumentor import TokenBudgetInstrumentor
from .outcomes import record_outcome
from .spend_limit import SpendLimit, spend_limit
from .version import __version__

if TYPE_CHECKING:
    from .budgets import AnomalyEvent, Budget, BudgetConfigError, ForecastEvent, ThresholdEvent

# The budgets' names load their modules on first use: an application without budgets never does.
_FROM_BUDGETS = frozenset({"AnomalyEvent", "Budget", "BudgetConfigError", "ForecastEvent", "ThresholdEvent"})


def __getattr__(name: str) -> object:
    if name in _FROM_BUDGETS:
        return getattr(import_module(".budgets", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AnomalyEvent",
    "Budget",
    "BudgetConfigError",
    "BudgetExceededError",
    "ConfigError",
    "ForecastEvent",
    "SpendLimit",
    "SpendLimitExceededError",
    "ThresholdEvent",
    "TokenBudgetInstrumentor",
    "__version__",
    "budget_refusal",
    "cost_attributes",
    "current_cost_attributes",
    "record_outcome",
    "spend_limit",
]
