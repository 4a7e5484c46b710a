"""Mistral calls through the real `mistralai` SDK, replayed from real recorded exchanges: exact tokens,
and the USD that genai-prices' `calc_price` gives the same usage.

Prices (genai-prices 0.2.3, USD per million tokens): mistral-tiny 0.25 in and out; mistral-large
2 in, 6 out, no cache-read price (cached tokens are billed as input); magistral-medium 2 in, 5 out;
mistral-small-latest 0.15 in, 0.6 out (since 2026-03-16); mistral-embed 0.1 in.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

pytest.importorskip("mistralai")

# The SDK brings httpx (ours is httpx2): an environment without the SDK may lack it.
import httpx

try:  # 3.x
    from mistralai.client import Mistral, errors
except ImportError:  # 1.x, 2.x
    from mistralai import Mistral  # type: ignore[attr-defined,no-redef]
    from mistralai import models as errors  # type: ignore[no-redef]

from opentelemetry_instrumentation_tokenbudget import Budget, BudgetExceededError
from tests.conftest import Telemetry
from tests.genai_usd import genai_usd
from tests.recorded import Cassette

JOKE = [{"role": "user", "content": "Tell me a joke about OpenTelemetry"}]


def mistral_client(handle: Callable[[Any], Any], handle_async: Callable[[Any], Any] | None = None) -> Any:
    return Mistral(
        api_key="test",
        client=httpx.Client(transport=httpx.MockTransport(handle)),
        async_client=httpx.AsyncClient(transport=httpx.MockTransport(handle_async or handle)),
    )


def replaying(cassette: Cassette) -> Any:
    return mistral_client(cassette.handle, cassette.handle_async)


def recorded_body(cassette: Cassette, index: int = 0) -> Any:
    request = cassette.recorded_requests[index]
    return json.loads(request["body"]) if "body" in request else request["parsed_body"]


def test_complete(instrumented: Any, telemetry: Telemetry) -> None:
    cassette = Cassette("mistral/test_mistralai_chat_legacy.yaml")
    client = replaying(cassette)

    response = client.chat.complete(model="mistral-tiny", messages=JOKE)

    assert response.usage.completion_tokens == 96
    span = telemetry.only_span()
    assert span.name == "chat mistral-tiny"
    attributes = span.attributes
    assert attributes["gen_ai.provider.name"] == "mistral_ai"
    assert attributes["server.address"] == "api.mistral.ai"
    assert attributes["gen_ai.response.id"] == "e9459fcd56c742e0875167c9926c6aae"
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (11, 96)
    # 107 x 0.25 = 26.75 microdollars
    assert attributes["gen_ai.usage.cost.amount"] == 2.675e-05
    assert attributes["gen_ai.usage.cost.amount"] == genai_usd(
        "mistral", "mistral-tiny", input_tokens=11, output_tokens=96
    )


def test_complete_async(instrumented: Any, telemetry: Telemetry) -> None:
    cassette = Cassette("mistral/test_mistralai_chat_legacy.yaml")
    client = replaying(cassette)

    asyncio.run(client.chat.complete_async(model="mistral-tiny", messages=JOKE))

    attributes = telemetry.only_span().attributes
    assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (11, 96)
    assert attributes["gen_ai.usage.cost.amount"] == 2.675e-05


def test_cached_tokens_are_inside_prompt_tokens(instrumented: Any, telemetry: Telemetry) -> None:
    cassette = Cassette("mistral/test_mistral_history_uses_prompt_cache.yaml")
    client = replaying(cassette)

    for index in (0, 1):
        client.chat.complete(
            model="mistral-large-latest", messages=recorded_body(cassette, index)["messages"]
        )

    first, second = (span.attributes for span in telemetry.our_spans())
    assert "gen_ai.usage.cache_read.input_tokens" not in first  # cached_tokens: 0
    assert first["gen_ai.usage.cost.amount"] == genai_usd(
        "mistral", "mistral-large-latest", input_tokens=253, output_tokens=5
    )
    # prompt_tokens 268 includes the 224 cached; mistral-large has no cache-read price in the data,
    # so all 268 are billed at the input rate: 268 x 2 + 5 x 6 = 566 microdollars.
    assert second["gen_ai.usage.input_tokens"] == 268
    assert second["gen_ai.usage.cache_read.input_tokens"] == 224
    assert second["gen_ai.usage.output_tokens"] == 5
    assert second["gen_ai.usage.cost.amount"] == 0.000566
    assert second["gen_ai.usage.cost.amount"] == genai_usd(
        "mistral", "mistral-large-latest", input_tokens=268, output_tokens=5, cache_read_tokens=224
    )


def test_stream_usage_in_the_last_chunk(instrumented: Any, telemetry: Telemetry) -> None:
    cassette = Cassette("mistral/test_mistralai_streaming_chat_legacy.yaml")
    client = replaying(cassette)

    events = list(client.chat.stream(model="mistral-tiny", messages=JOKE))

    assert events[-1].data.usage.completion_tokens == 80  # every event reached the caller
    attributes = telemetry.only_span().attributes
    assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (11, 80)
    # 91 x 0.25 = 22.75 microdollars
    assert attributes["gen_ai.usage.cost.amount"] == 2.275e-05
    assert attributes["gen_ai.usage.cost.amount"] == genai_usd(
        "mistral", "mistral-tiny", input_tokens=11, output_tokens=80
    )
    assert "tokenbudget.cost.estimated" not in attributes


def test_stream_async_with_reasoning_inside_the_completion(instrumented: Any, telemetry: Telemetry) -> None:
    cassette = Cassette("mistral/test_mistral_model_thinking_part_iter.yaml")
    client = replaying(cassette)

    async def read() -> int:
        stream = await client.chat.stream_async(
            model="magistral-medium-latest", messages=recorded_body(cassette)["messages"]
        )
        return len([event async for event in stream])

    assert asyncio.run(read()) > 2
    attributes = telemetry.only_span().attributes
    assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (10, 232)
    # 10 x 2 + 232 x 5 = 1,180 microdollars
    assert attributes["gen_ai.usage.cost.amount"] == 0.00118
    assert attributes["gen_ai.usage.cost.amount"] == genai_usd(
        "mistral", "magistral-medium-latest", input_tokens=10, output_tokens=232
    )
    assert "tokenbudget.cost.estimated" not in attributes


def test_stream_of_a_tool_call_used_as_a_context_manager(instrumented: Any, telemetry: Telemetry) -> None:
    cassette = Cassette("mistral/test_synchronous_streaming_chat_completions_with_tool_call_response.yaml")
    client = replaying(cassette)
    body = recorded_body(cassette)

    with client.chat.stream(
        model="mistral-small-latest", messages=body["messages"], tools=body["tools"], tool_choice="any"
    ) as stream:
        finish = [choice.finish_reason for event in stream for choice in event.data.choices]

    assert finish[-1] == "tool_calls"
    attributes = telemetry.only_span().attributes
    assert attributes["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (96, 23)
    assert attributes["gen_ai.usage.cost.amount"] == genai_usd(
        "mistral", "mistral-small-latest", input_tokens=96, output_tokens=23
    )


def test_stream_left_early_ends_its_call_estimated(instrumented: Any, telemetry: Telemetry) -> None:
    cassette = Cassette("mistral/test_mistralai_streaming_chat_legacy.yaml")
    client = replaying(cassette)
    # Left by the block's exit (1.x streams have no close()).
    with client.chat.stream(model="mistral-tiny", messages=JOKE) as stream:
        for _ in stream:
            break

    attributes = telemetry.only_span().attributes
    assert attributes["tokenbudget.cost.estimated"] is True
    assert attributes["gen_ai.usage.input_tokens"] == 9  # ceil(34 characters / 4)


def test_exception_inside_a_stream_ends_its_call(instrumented: Any, telemetry: Telemetry) -> None:
    cassette = Cassette("mistral/test_mistralai_streaming_chat_legacy.yaml")
    client = replaying(cassette)

    def read() -> None:
        with client.chat.stream(model="mistral-tiny", messages=JOKE) as stream:
            for _ in stream:
                raise KeyError("the caller's own error")

    with pytest.raises(KeyError):
        read()

    attributes = telemetry.only_span().attributes
    assert attributes["tokenbudget.cost.estimated"] is True


# No embeddings exchange was recorded: this body is written in the API's documented shape.
EMBEDDING = {
    "id": "embd-1",
    "object": "list",
    "model": "mistral-embed",
    "data": [{"object": "embedding", "embedding": [0.1, -0.2], "index": 0}],
    "usage": {"prompt_tokens": 8, "total_tokens": 8, "completion_tokens": 0},
}


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_embeddings(instrumented: Any, telemetry: Telemetry, is_async: bool) -> None:
    client = mistral_client(lambda request: httpx.Response(200, json=EMBEDDING))
    inputs = ["Embed this sentence.", "And this one."]

    if is_async:
        asyncio.run(client.embeddings.create_async(model="mistral-embed", inputs=inputs))
    else:
        client.embeddings.create(model="mistral-embed", inputs=inputs)

    span = telemetry.only_span()
    assert span.name == "embeddings mistral-embed"
    assert span.attributes["gen_ai.usage.input_tokens"] == 8
    # 8 x 0.1 = 0.8 microdollars
    assert span.attributes["gen_ai.usage.cost.amount"] == 8e-07
    assert span.attributes["gen_ai.usage.cost.amount"] == genai_usd(
        "mistral", "mistral-embed", input_tokens=8
    )


def test_provider_error_passes_through_unchanged(instrumented: Any, telemetry: Telemetry) -> None:
    unauthorized = httpx.Response(401, json={"message": "Unauthorized", "request_id": "r1"})
    client = mistral_client(lambda request: unauthorized)

    with pytest.raises(errors.SDKError) as raised:
        client.chat.complete(model="mistral-tiny", messages=JOKE)

    assert raised.value.status_code == 401
    assert telemetry.only_span().attributes["error.type"] == "SDKError"


def test_hard_budget_refuses_before_the_request_leaves(instrument: Any, telemetry: Telemetry) -> None:
    instrument(budgets=[Budget("mistral", limit_usd=Decimal("0.00001"), window="day")])
    cassette = Cassette("mistral/test_mistralai_chat_legacy.yaml")
    client = replaying(cassette)

    # 9 x 0.25 + 256 x 0.25 (the output assumed before any call finished) = 66.25 microdollars.
    with pytest.raises(BudgetExceededError) as refused:
        client.chat.stream(model="mistral-tiny", messages=JOKE)

    assert refused.value.estimate_usd == Decimal("0.00006625")
    assert cassette.requests == []
