"""What an application pays at start-up: budgets and the price data load only when used."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
from opentelemetry_instrumentation_tokenbudget import TokenBudgetInstrumentor
TokenBudgetInstrumentor().instrument()
print(sorted(m for m in sys.modules if ".budgets" in m or m.startswith("genai_prices")))
from opentelemetry_instrumentation_tokenbudget import Budget
print(Budget.__module__)
"""


def test_no_budget_and_no_price_data_is_loaded_until_used() -> None:
    # A fresh interpreter: this one has imported everything already.
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    assert result.stdout.splitlines() == ["[]", "opentelemetry_instrumentation_tokenbudget.budgets.spec"]
