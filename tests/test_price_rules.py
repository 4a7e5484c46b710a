"""The price rules of genai-prices that a flat per-token price misses, applied to real SDK calls:
the service tier the response reports, per-request fees, reasoning-token prices, and the time of
day the request was sent."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import httpx2
import openai
import pytest

from opentelemetry_instrumentation_tokenbudget.pricing import PriceBook
from opentelemetry_instrumentation_tokenbudget.usage import TokenUsage
from tests.conftest import Telemetry


def chat_body(model: str, service_tier: str | None = None, reasoning: int = 0) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_760_000_000,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": 1000,
            "completion_tokens": 200,
            "total_tokens": 1200,
            "completion_tokens_details": {"reasoning_tokens": reasoning},
        },
    }
    if service_tier is not None:
        body["service_tier"] = service_tier
    return body


def ask(base_url: str, body: dict[str, Any]) -> None:
    http = httpx2.Client(transport=httpx2.MockTransport(lambda request: httpx2.Response(200, json=body)))
    client = openai.OpenAI(api_key="k", base_url=base_url, http_client=http, max_retries=0)
    client.chat.completions.create(model=body["model"], messages=[{"role": "user", "content": "hi"}])


@pytest.mark.parametrize(
    ("service_tier", "cost"),
    [
        # gpt-5: 1000 x 1.25 + 200 x 10 = 3,250 microdollars at the standard price...
        (None, 0.00325),
        ("default", 0.00325),
        # ... half of it on flex, twice it on priority (1000 x 2.5 + 200 x 20).
        ("flex", 0.001625),
        ("priority", 0.0065),
    ],
)
def test_the_service_tier_the_response_reports_prices_the_call(
    instrumented: Any, telemetry: Telemetry, service_tier: str | None, cost: float
) -> None:
    ask("https://api.openai.com/v1", chat_body("gpt-5", service_tier))

    assert telemetry.only_span().attributes["gen_ai.usage.cost.amount"] == cost


def test_a_per_request_fee_is_charged_once_per_call(instrumented: Any, telemetry: Telemetry) -> None:
    # Perplexity's sonar: 1000 x 1 + 200 x 1 = 1,200 microdollars of tokens, plus $12 per thousand
    # requests: 13,200 microdollars, not 1,200.
    ask("https://api.perplexity.ai", chat_body("sonar"))

    attributes = telemetry.only_span().attributes
    assert attributes["gen_ai.provider.name"] == "perplexity"
    assert attributes["gen_ai.usage.cost.amount"] == 0.0132
    # The fee is in the total only: the token parts are 1,000 and 200 microdollars.
    assert attributes["tokenbudget.cost.input"] == 0.001
    assert attributes["tokenbudget.cost.output"] == 0.0002


def test_reasoning_tokens_are_charged_at_their_own_price(instrumented: Any, telemetry: Telemetry) -> None:
    # sonar-deep-research: output at $8, reasoning at $3 per MTok. 150 of the 200 output tokens are
    # reasoning: 1000 x 2 + 50 x 8 + 150 x 3 = 2,850 microdollars (not 1000 x 2 + 200 x 8 = 3,600).
    ask("https://api.perplexity.ai", chat_body("sonar-deep-research", reasoning=150))

    assert telemetry.only_span().attributes["gen_ai.usage.cost.amount"] == 0.00285


def test_time_of_day_prices_follow_the_time_the_request_was_sent() -> None:
    deepseek = PriceBook().lookup("deepseek", "deepseek-chat")
    assert deepseek is not None
    usage = TokenUsage(input_tokens=1000, output_tokens=200)
    noon = datetime(2026, 6, 1, 12, tzinfo=timezone.utc).timestamp()
    off_peak = datetime(2026, 6, 1, 17, tzinfo=timezone.utc).timestamp()

    # Half price between 16:30 and 00:30 UTC.
    assert deepseek.cost(usage, noon).total == Decimal("0.00049")
    assert deepseek.cost(usage, off_peak).total == Decimal("0.000245")
