"""What the budget tests share: one call of known cost through the real OpenAI SDK, a settable clock,
and reading a budget's ledger entry.

The call: one user message of 400 characters to gpt-4o-mini (USD 0.15 / 0.6 per million input / output
tokens) with ``max_tokens=10``. The fake provider bills it 3 + 100 = 103 input tokens (framing plus
one token per four characters) and 7 output tokens (its canned reply has seven words):
103 * 0.15 + 7 * 0.6 = 19.65 microdollars. Before sending, the instrumentation estimates it at
100 input tokens (its prompt, four characters a token) and the 10 output tokens that max_tokens
allows: 100 * 0.15 + 10 * 0.6 = 21 microdollars. In the default reservation mode, once a call of the
model has ended, the output reserved is the 95th percentile of those seen, 7 (below max_tokens):
100 * 0.15 + 7 * 0.6 = 19.2 microdollars, 0.45 below the real cost (the prompt is counted at 100
tokens of the 103 billed); the strict mode reserves max_tokens, 21, from first call to last.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx2
import openai

from opentelemetry_instrumentation_tokenbudget import Budget
from opentelemetry_instrumentation_tokenbudget.budgets.charges import ledger_key
from opentelemetry_instrumentation_tokenbudget.budgets.store import Balance, SpendStore
from opentelemetry_instrumentation_tokenbudget.testing import FakeProvider
from tests.conftest import Telemetry

MODEL = "gpt-4o-mini"
PROMPT = "x" * 400
MAX_TOKENS = 10
CALL_COST = Decimal("0.00001965")
CALL_ESTIMATE = Decimal("0.000021")
EXPECTED_ESTIMATE = Decimal("0.0000192")
PICO = 10**12
CALL_COST_PICO = int(CALL_COST * PICO)
CALL_ESTIMATE_PICO = int(CALL_ESTIMATE * PICO)

# 2026-06-01T12:00:00Z, a Monday.
NOON_JUNE_1 = 1_780_315_200.0


def client_for(provider: FakeProvider) -> openai.OpenAI:
    return openai.OpenAI(
        api_key="test",
        base_url="https://api.openai.com/v1",
        http_client=httpx2.Client(transport=provider.transport()),
        max_retries=0,
    )


def ask(client: openai.OpenAI, **options: Any) -> Any:
    return client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": PROMPT}], max_tokens=MAX_TOKENS, **options
    )


class Clock:
    """Epoch seconds that only move when the test says so."""

    def __init__(self, now: float = NOON_JUNE_1) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def ledger(store: SpendStore, budget: Budget, now: float, group: str = "") -> Balance:
    """The balance of `budget`'s entry for `group` in the window that holds `now`."""
    (balance,) = store.balances([ledger_key(budget, group, budget.window.span_at(now))])
    return balance


def span_costs(telemetry: Telemetry) -> Decimal:
    """The sum of the cost attributes of our spans, each read back exactly as its decimal value."""
    amounts = [(span.attributes or {}).get("gen_ai.usage.cost.amount") for span in telemetry.our_spans()]
    return sum((Decimal(repr(amount)) for amount in amounts if amount is not None), Decimal(0))
