"""A gateway's own cost header (the LiteLLM proxy's `x-litellm-response-cost`) prices the call, as
`gen_ai.usage.cost.source=provider`, and budgets count it; an event stream's header, a 0 or an
amount that is no money are not taken.

The real OpenAI SDK is pointed at a LiteLLM proxy's usual address; the HTTP goes to a local
transport that answers 1,000 input and 200 output tokens of gpt-4o-mini (270 microdollars by the
price data) with the header.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from opentelemetry_instrumentation_tokenbudget import Budget, BudgetExceededError
from opentelemetry_instrumentation_tokenbudget.budgets.stores import open_store
from tests.budget_support import Clock, ledger
from tests.conftest import Telemetry
from tests.test_gateways import GPT_4O_MINI, chat_body, message_body

PROXY = "http://localhost:4000"
MESSAGES = [{"role": "user", "content": "hi"}]


def _response(header: str | None, *, stream: bool = False) -> httpx2.Response:
    headers = {"content-type": "text/event-stream" if stream else "application/json"}
    if header is not None:
        headers["x-litellm-response-cost"] = header
    if stream:
        chunk = {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "gpt-4o-mini",
            "choices": [],
            "usage": chat_body("gpt-4o-mini")["usage"],
        }
        return httpx2.Response(200, content=f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n", headers=headers)
    return httpx2.Response(200, content=json.dumps(chat_body("gpt-4o-mini")), headers=headers)


def proxy_client(header: str | None, *, stream: bool = False) -> openai.OpenAI:
    http = httpx2.Client(transport=httpx2.MockTransport(lambda request: _response(header, stream=stream)))
    return openai.OpenAI(api_key="k", base_url=PROXY, http_client=http, max_retries=0)


def test_the_proxys_cost_header_prices_the_call(instrumented: Any, telemetry: Telemetry) -> None:
    completion = proxy_client("0.000314").chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    assert completion.choices[0].message.content == "ok"
    attributes = telemetry.only_span().attributes
    assert attributes["gen_ai.usage.cost.amount"] == 0.000314
    assert attributes["gen_ai.usage.cost.source"] == "provider"
    assert attributes["gen_ai.usage.input_tokens"] == 1000
    (point,) = telemetry.metric_points("gen_ai.client.operation.cost")
    assert point.sum == 0.000314
    assert point.attributes["gen_ai.usage.cost.source"] == "provider"


def test_the_header_prices_a_model_that_no_price_data_knows(instrumented: Any, telemetry: Telemetry) -> None:
    proxy_client("0.0021").chat.completions.create(model="team-finetune-7", messages=MESSAGES)

    attributes = telemetry.only_span().attributes
    assert attributes["gen_ai.usage.cost.amount"] == 0.0021
    assert "tokenbudget.cost.unpriced" not in attributes
    assert telemetry.metric_points("tokenbudget.client.unpriced_calls") == []


def test_the_async_client_reads_the_header_too(instrumented: Any, telemetry: Telemetry) -> None:
    async def call() -> None:
        transport = httpx2.MockTransport(lambda request: _response("0.000314"))
        async with httpx2.AsyncClient(transport=transport) as http:
            client = openai.AsyncOpenAI(api_key="k", base_url=PROXY, http_client=http, max_retries=0)
            await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    asyncio.run(call())

    assert telemetry.only_span().attributes["gen_ai.usage.cost.amount"] == 0.000314


def test_a_streams_header_is_not_taken(instrumented: Any, telemetry: Telemetry) -> None:
    # Sent before the body, it cannot hold the cost of what the stream then carries.
    stream = proxy_client("0.000001", stream=True).chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    )
    for _chunk in stream:
        pass

    attributes = telemetry.only_span().attributes
    assert attributes["gen_ai.usage.input_tokens"] == 1000
    assert attributes["gen_ai.usage.cost.amount"] == GPT_4O_MINI
    assert attributes["gen_ai.usage.cost.source"] == "local"
    assert attributes["tokenbudget.price.inferred"] is True


def test_a_reported_zero_is_not_taken_as_free(instrumented: Any, telemetry: Telemetry) -> None:
    proxy_client("0").chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    attributes = telemetry.only_span().attributes
    assert attributes["gen_ai.usage.cost.amount"] == GPT_4O_MINI
    assert attributes["gen_ai.usage.cost.source"] == "local"


@pytest.mark.parametrize("header", ["-0.5", "NaN", "a lot", "Infinity", "9223373", "1e999999"])
def test_a_header_that_is_no_amount_is_ignored_and_counted(
    instrumented: Any, telemetry: Telemetry, caplog: pytest.LogCaptureFixture, header: str
) -> None:
    with caplog.at_level(logging.WARNING):
        proxy_client(header).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    attributes = telemetry.only_span().attributes
    assert attributes["gen_ai.usage.cost.amount"] == GPT_4O_MINI
    assert attributes["gen_ai.usage.cost.source"] == "local"
    assert any("not an amount of money" in record.getMessage() for record in caplog.records)


def test_no_hook_on_clients_of_a_provider_the_price_data_names(instrumented: Any) -> None:
    http = httpx2.Client(transport=httpx2.MockTransport(lambda request: _response(None)))
    client = openai.OpenAI(api_key="k", base_url="https://api.openai.com/v1", http_client=http, max_retries=0)
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    proxied = proxy_client(None)
    proxied.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    assert http.event_hooks["response"] == []
    assert len(proxied._client.event_hooks["response"]) == 1


def test_budgets_count_what_the_proxy_reports(instrument: Any, telemetry: Telemetry) -> None:
    clock = Clock()
    store = open_store("memory", clock=clock)
    budget = Budget("hard", "0.025")
    instrument(budgets=[budget], store=store, clock=clock)
    client = proxy_client("0.01")
    admitted = 0
    for _ in range(5):
        try:
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            admitted += 1
        except BudgetExceededError:
            pass

    # The reservation is the price data's estimate; the settlement is the proxy's $0.01 a call:
    # the third call starts under the limit and passes it, the fourth is refused.
    assert admitted == 3
    assert ledger(store, budget, clock.now).spent == 3 * 10**10
    store.close()


def test_the_anthropic_sdk_through_the_proxy_reads_it_too(instrumented: Any, telemetry: Telemetry) -> None:
    headers = {"content-type": "application/json", "x-litellm-response-cost": "0.0017"}
    body = json.dumps(message_body("claude-haiku-4-5"))
    http = httpx2.Client(
        transport=httpx2.MockTransport(lambda request: httpx2.Response(200, content=body, headers=headers))
    )
    client = anthropic.Anthropic(api_key="k", base_url=PROXY, http_client=http, max_retries=0)
    client.messages.create(model="claude-haiku-4-5", max_tokens=300, messages=MESSAGES)

    attributes = telemetry.only_span().attributes
    assert attributes["gen_ai.usage.cost.amount"] == 0.0017
    assert attributes["gen_ai.usage.cost.source"] == "provider"
