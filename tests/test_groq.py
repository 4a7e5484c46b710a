"""Groq calls through the real `groq` SDK, replayed from real recorded exchanges: exact tokens, and the
USD that genai-prices' `calc_price` gives the same usage.

Prices (genai-prices 0.2.3, USD per million tokens): llama3-8b-8192 0.05 in, 0.08 out;
openai/gpt-oss-120b 0.15 in, 0.075 cache read, 0.6 out.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import pytest

groq = pytest.importorskip("groq")

# The SDK brings httpx (ours is httpx2): an environment without the SDK may lack it.
import httpx  # noqa: E402

from opentelemetry_instrumentation_tokenbudget import Budget, BudgetExceededError  # noqa: E402
from tests.conftest import Telemetry  # noqa: E402
from tests.genai_usd import genai_usd  # noqa: E402
from tests.recorded import Cassette  # noqa: E402

JOKE = [{"role": "user", "content": "Tell me a joke about opentelemetry"}]
LLAMA = "llama3-8b-8192"
GPT_OSS = "openai/gpt-oss-120b"


def groq_client(cassette: Cassette) -> Any:
    return groq.Groq(
        api_key="test",
        http_client=httpx.Client(transport=httpx.MockTransport(cassette.handle)),
        max_retries=0,
    )


def async_groq_client(cassette: Cassette) -> Any:
    return groq.AsyncGroq(
        api_key="test",
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(cassette.handle_async)),
        max_retries=0,
    )


def recorded_messages(cassette: Cassette, index: int) -> Any:
    request = cassette.recorded_requests[index]
    body = json.loads(request["body"]) if "body" in request else request["parsed_body"]
    return body["messages"]


def test_create(instrumented: Any, telemetry: Telemetry) -> None:
    cassette = Cassette("groq/test_chat_legacy.yaml")

    response = groq_client(cassette).chat.completions.create(model=LLAMA, messages=JOKE)

    assert response.usage.completion_tokens == 43
    span = telemetry.only_span()
    assert span.name == "chat llama3-8b-8192"
    attributes = span.attributes
    assert attributes["gen_ai.provider.name"] == "groq"
    assert attributes["server.address"] == "api.groq.com"
    assert attributes["gen_ai.response.id"] == "chatcmpl-645691ff-34af-4d0f-a1c1-fe888f8685cc"
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert attributes["gen_ai.usage.input_tokens"] == 18
    assert attributes["gen_ai.usage.output_tokens"] == 43
    # 18 x 0.05 + 43 x 0.08 = 4.34 microdollars
    assert attributes["gen_ai.usage.cost.amount"] == 4.34e-06
    assert attributes["gen_ai.usage.cost.amount"] == genai_usd(
        "groq", LLAMA, input_tokens=18, output_tokens=43
    )
    assert attributes["tokenbudget.price.source"] == "genai-prices"


def test_async_create(instrumented: Any, telemetry: Telemetry) -> None:
    cassette = Cassette("groq/test_chat_legacy.yaml")

    asyncio.run(async_groq_client(cassette).chat.completions.create(model=LLAMA, messages=JOKE))

    attributes = telemetry.only_span().attributes
    assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (18, 43)
    assert attributes["gen_ai.usage.cost.amount"] == 4.34e-06


def test_cached_and_reasoning_tokens_are_inside_the_totals(instrumented: Any, telemetry: Telemetry) -> None:
    cassette = Cassette("groq/test_tool_use_failed_error.yaml")
    client = groq_client(cassette)

    # The first recorded answer is Groq's 400 tool_use_failed: it reaches the caller unchanged.
    with pytest.raises(groq.BadRequestError) as raised:
        client.chat.completions.create(model=GPT_OSS, messages=recorded_messages(cassette, 0))
    assert raised.value.status_code == 400
    assert raised.value.body["error"]["code"] == "tool_use_failed"
    for index in (1, 2):
        client.chat.completions.create(model=GPT_OSS, messages=recorded_messages(cassette, index))

    failed, first, cached = telemetry.our_spans()
    assert failed.attributes["error.type"] == "BadRequestError"
    assert "gen_ai.usage.cost.amount" not in failed.attributes
    assert first.attributes["gen_ai.usage.cost.amount"] == genai_usd(
        "groq", GPT_OSS, input_tokens=301, output_tokens=52, reasoning_tokens=22
    )
    attributes = cached.attributes
    # prompt_tokens 336 includes 256 cached; completion_tokens 96 includes 59 reasoning.
    assert attributes["gen_ai.usage.input_tokens"] == 336
    assert attributes["gen_ai.usage.cache_read.input_tokens"] == 256
    assert attributes["gen_ai.usage.output_tokens"] == 96
    assert attributes["gen_ai.usage.reasoning.output_tokens"] == 59
    # 80 x 0.15 + 256 x 0.075 + 96 x 0.6 = 12 + 19.2 + 57.6 = 88.8 microdollars
    assert attributes["gen_ai.usage.cost.amount"] == 8.88e-05
    assert attributes["gen_ai.usage.cost.amount"] == genai_usd(
        "groq", GPT_OSS, input_tokens=336, output_tokens=96, cache_read_tokens=256, reasoning_tokens=59
    )
    assert cassette.exhausted


def test_stream_reads_the_usage_under_x_groq(instrumented: Any, telemetry: Telemetry) -> None:
    cassette = Cassette("groq/test_chat_streaming_legacy.yaml")

    chunks = list(groq_client(cassette).chat.completions.create(model=LLAMA, messages=JOKE, stream=True))

    # Every chunk reached the caller, the usage chunk included (Groq sends it unasked).
    assert chunks[-1].x_groq.usage.completion_tokens == 73
    assert cassette.requests[0].get("stream_options") is None
    attributes = telemetry.only_span().attributes
    assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (18, 73)
    # 18 x 0.05 + 73 x 0.08 = 6.74 microdollars
    assert attributes["gen_ai.usage.cost.amount"] == 6.74e-06
    assert attributes["gen_ai.usage.cost.amount"] == genai_usd(
        "groq", LLAMA, input_tokens=18, output_tokens=73
    )
    assert "tokenbudget.cost.estimated" not in attributes


def test_async_stream(instrumented: Any, telemetry: Telemetry) -> None:
    cassette = Cassette("groq/test_chat_streaming_legacy.yaml")

    async def read() -> int:
        stream = await async_groq_client(cassette).chat.completions.create(
            model=LLAMA, messages=JOKE, stream=True
        )
        return len([chunk async for chunk in stream])

    assert asyncio.run(read()) > 2
    attributes = telemetry.only_span().attributes
    assert attributes["gen_ai.usage.cost.amount"] == 6.74e-06
    assert "tokenbudget.cost.estimated" not in attributes


def test_stream_error_event_passes_through_and_usage_in_two_places_counts_once(
    instrumented: Any, telemetry: Telemetry
) -> None:
    cassette = Cassette("groq/test_tool_use_failed_error_streaming.yaml")
    client = groq_client(cassette)

    # The first recorded stream ends in an `event: error` inside an HTTP 200.
    stream = client.chat.completions.create(
        model=GPT_OSS, messages=recorded_messages(cassette, 0), stream=True
    )
    with pytest.raises(groq.APIError) as raised:
        for _ in stream:
            pass
    assert type(raised.value) is groq.APIError
    assert raised.value.body["code"] == "tool_use_failed"
    # The second carries its usage both under `x_groq.usage` and at the top level.
    for _ in client.chat.completions.create(
        model=GPT_OSS, messages=recorded_messages(cassette, 1), stream=True
    ):
        pass

    failed, counted = telemetry.our_spans()
    assert failed.attributes["error.type"] == "APIError"
    assert failed.attributes["tokenbudget.cost.estimated"] is True
    attributes = counted.attributes
    assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (304, 49)
    assert attributes["gen_ai.usage.reasoning.output_tokens"] == 23
    # 304 x 0.15 + 49 x 0.6 = 45.6 + 29.4 = 75 microdollars
    assert attributes["gen_ai.usage.cost.amount"] == 7.5e-05
    assert attributes["gen_ai.usage.cost.amount"] == genai_usd(
        "groq", GPT_OSS, input_tokens=304, output_tokens=49, reasoning_tokens=23
    )


def test_stream_closed_early_ends_its_call_estimated(instrumented: Any, telemetry: Telemetry) -> None:
    cassette = Cassette("groq/test_chat_streaming_legacy.yaml")
    stream = groq_client(cassette).chat.completions.create(model=LLAMA, messages=JOKE, stream=True)

    for _ in stream:
        break
    stream.close()

    attributes = telemetry.only_span().attributes
    assert attributes["tokenbudget.cost.estimated"] is True
    assert attributes["gen_ai.usage.input_tokens"] == 9  # ceil(34 characters / 4): estimated
    assert attributes["gen_ai.usage.output_tokens"] == 0


def test_unknown_model_error_passes_through_unchanged(instrumented: Any, telemetry: Telemetry) -> None:
    cassette = Cassette("groq/test_tool_regular_error.yaml")

    with pytest.raises(groq.NotFoundError) as raised:
        groq_client(cassette).chat.completions.create(
            model="non-existent", messages=[{"role": "user", "content": "hello"}]
        )

    assert raised.value.body["error"]["code"] == "model_not_found"
    assert telemetry.only_span().attributes["error.type"] == "NotFoundError"


def test_hard_budget_refuses_before_the_request_leaves(instrument: Any, telemetry: Telemetry) -> None:
    instrument(budgets=[Budget("groq", limit_usd=0, window="day")])
    cassette = Cassette("groq/test_chat_legacy.yaml")

    with pytest.raises(BudgetExceededError):
        groq_client(cassette).chat.completions.create(model=LLAMA, messages=JOKE)

    assert cassette.requests == []


def test_budget_reserves_then_refuses_the_call_that_would_pass_it(
    instrument: Any, telemetry: Telemetry
) -> None:
    # The first call reserves 9 x 0.05 + 50 x 0.08 = 4.45 microdollars (no output of the model seen
    # yet: the default 256 tokens, capped by max_tokens), fits in 6, and costs 4.34 with 43 output
    # tokens; the second reserves 9 x 0.05 + 43 x 0.08 = 3.89, and 4.34 + 3.89 does not fit.
    instrument(budgets=[Budget("groq", limit_usd=Decimal("0.000006"), window="day")])
    cassette = Cassette("groq/test_chat_legacy.yaml")
    client = groq_client(cassette)

    client.chat.completions.create(model=LLAMA, messages=JOKE, max_tokens=50)
    with pytest.raises(BudgetExceededError) as refused:
        client.chat.completions.create(model=LLAMA, messages=JOKE, max_tokens=50)

    assert len(cassette.requests) == 1
    assert refused.value.spent_usd == Decimal("0.00000434")
    assert refused.value.estimate_usd == Decimal("0.00000389")


def test_with_raw_response_is_counted_when_parsed(instrumented: Any, telemetry: Telemetry) -> None:
    cassette = Cassette("groq/test_chat_legacy.yaml")

    raw = groq_client(cassette).chat.completions.with_raw_response.create(model=LLAMA, messages=JOKE)

    assert raw.parse().usage.completion_tokens == 43
    attributes = telemetry.only_span().attributes
    assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (18, 43)
    assert attributes["gen_ai.usage.cost.amount"] == 4.34e-06
