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

from .attribution import cost_attributes, current_cost_attributes
from .budgets import AnomalyEvent, Budget, BudgetConfigError, ForecastEvent, ThresholdEvent
from .errors import BudgetExceededError, ConfigError
from .instrumentor import TokenBudgetInstrumentor
from .outcomes import record_outcome
from .version import __version__

__all__ = [
    "AnomalyEvent",
    "Budget",
    "BudgetConfigError",
    "BudgetExceededError",
    "ConfigError",
    "ForecastEvent",
    "ThresholdEvent",
    "TokenBudgetInstrumentor",
    "__version__",
    "cost_attributes",
    "current_cost_attributes",
    "record_outcome",
]
