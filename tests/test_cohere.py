"""Cohere v2 calls through the real `cohere` SDK, replayed from real recorded exchanges: the billed units
as the call's tokens, and the USD that genai-prices' `calc_price` gives them.

Cohere reports two counts: `usage.billed_units` (what it bills) and `usage.tokens` (what the model
read, its prompt template included). Prices (genai-prices 0.2.3, USD per million tokens): command 1
in, 2 out; command-r 0.15 in, 0.6 out; command-r7b-12-2024 0.0375 in, 0.15 out; embed-v4.0 0.12 in.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

cohere = pytest.importorskip("cohere")

# The SDK brings httpx (ours is httpx2): an environment without the SDK may lack it.
import httpx  # noqa: E402

from opentelemetry_instrumentation_tokenbudget import Budget, BudgetExceededError  # noqa: E402
from tests.conftest import Telemetry  # noqa: E402
from tests.genai_usd import genai_usd  # noqa: E402
from tests.recorded import Cassette  # noqa: E402

PIRATE = [{"role": "user", "content": "Tell me a joke, pirate style"}]


def cohere_client(handle: Callable[[Any], Any]) -> Any:
    return cohere.ClientV2(api_key="test", httpx_client=httpx.Client(transport=httpx.MockTransport(handle)))


def async_cohere_client(handle: Callable[[Any], Any]) -> Any:
    return cohere.AsyncClientV2(
        api_key="test", httpx_client=httpx.AsyncClient(transport=httpx.MockTransport(handle))
    )


def recorded_body(cassette: Cassette, index: int = 0) -> Any:
    request = cassette.recorded_requests[index]
    return json.loads(request["body"]) if "body" in request else request["parsed_body"]


def tokens(attributes: Any) -> tuple[int, int]:
    return attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_chat_prices_the_billed_units(instrumented: Any, telemetry: Telemetry, is_async: bool) -> None:
    cassette = Cassette("cohere/test_cohere_v2_chat_legacy.yaml")

    if is_async:
        response = asyncio.run(
            async_cohere_client(cassette.handle_async).chat(model="command", messages=PIRATE)
        )
    else:
        response = cohere_client(cassette.handle).chat(model="command", messages=PIRATE)

    assert response.usage.tokens.input_tokens == 69  # the template counted, not billed
    span = telemetry.only_span()
    assert span.name == "chat command"
    attributes = span.attributes
    assert attributes["gen_ai.provider.name"] == "cohere"
    assert attributes["server.address"] == "api.cohere.com"
    assert attributes["gen_ai.response.id"] == "83e3e297-264b-478e-9b22-5058386292ed"
    assert attributes["gen_ai.response.finish_reasons"] == ("complete",)
    assert tokens(attributes) == (7, 88)
    assert attributes["tokenbudget.usage.billed_units"] is True
    # 7 x 1 + 88 x 2 = 183 microdollars
    assert attributes["gen_ai.usage.cost.amount"] == 0.000183
    assert attributes["gen_ai.usage.cost.amount"] == genai_usd(
        "cohere", "command", input_tokens=7, output_tokens=88
    )


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_chat_stream_usage_in_message_end(instrumented: Any, telemetry: Telemetry, is_async: bool) -> None:
    cassette = Cassette("cohere/test_cohere_v2_chat_legacy_with_streaming.yaml")

    if is_async:

        async def read() -> list[Any]:
            return [
                event
                async for event in async_cohere_client(cassette.handle_async).chat_stream(
                    model="command", messages=PIRATE
                )
            ]

        events = asyncio.run(read())
    else:
        events = list(cohere_client(cassette.handle).chat_stream(model="command", messages=PIRATE))

    assert events[-1].type == "message-end"  # every event reached the caller
    attributes = telemetry.only_span().attributes
    assert attributes["gen_ai.response.id"] == "6cd6ce61-bb3b-46f6-907e-fcfab45e51b6"
    assert tokens(attributes) == (7, 109)
    assert attributes["tokenbudget.usage.billed_units"] is True
    # 7 x 1 + 109 x 2 = 225 microdollars
    assert attributes["gen_ai.usage.cost.amount"] == 0.000225
    assert attributes["gen_ai.usage.cost.amount"] == genai_usd(
        "cohere", "command", input_tokens=7, output_tokens=109
    )
    assert "tokenbudget.cost.estimated" not in attributes


def test_tool_calls_and_their_answer(instrumented: Any, telemetry: Telemetry) -> None:
    cassette = Cassette("cohere/test_cohere_v2_chat_legacy_with_tool_calls_and_history.yaml")
    client = cohere_client(cassette.handle)

    for index in (0, 1):
        body = recorded_body(cassette, index)
        client.chat(model="command-r", messages=body["messages"], tools=body["tools"])

    first, second = (span.attributes for span in telemetry.our_spans())
    assert first["gen_ai.response.finish_reasons"] == ("tool_call",)
    # Billed 62 + 28 (the model read 968 + 83); then 94 + 27.
    assert tokens(first) == (62, 28)
    assert first["gen_ai.usage.cost.amount"] == genai_usd(
        "cohere", "command-r", input_tokens=62, output_tokens=28
    )
    assert tokens(second) == (94, 27)
    assert second["gen_ai.usage.cost.amount"] == genai_usd(
        "cohere", "command-r", input_tokens=94, output_tokens=27
    )
    assert cassette.exhausted


def test_tool_call_stream(instrumented: Any, telemetry: Telemetry) -> None:
    cassette = Cassette("cohere/test_cohere_v2_chat_legacy_with_tool_calls_and_streaming.yaml")
    body = recorded_body(cassette)

    for _ in cohere_client(cassette.handle).chat_stream(
        model="command-r", messages=body["messages"], tools=body["tools"]
    ):
        pass

    attributes = telemetry.only_span().attributes
    assert tokens(attributes) == (62, 28)
    # 62 x 0.15 + 28 x 0.6 = 9.3 + 16.8 = 26.1 microdollars
    assert attributes["gen_ai.usage.cost.amount"] == 2.61e-05
    assert attributes["gen_ai.usage.cost.amount"] == genai_usd(
        "cohere", "command-r", input_tokens=62, output_tokens=28
    )
    assert attributes["tokenbudget.usage.billed_units"] is True


def test_cached_prompt_billed_units(instrumented: Any, telemetry: Telemetry) -> None:
    cassette = Cassette("cohere/test_request_usage_with_cached_tokens.yaml")

    cohere_client(cassette.handle).chat(
        model="command-r7b-12-2024", messages=recorded_body(cassette)["messages"]
    )

    attributes = telemetry.only_span().attributes
    # Billed 2,406 in (the model read 2,935, of which 2,928 cached) and 2 out.
    assert tokens(attributes) == (2406, 2)
    assert "gen_ai.usage.cache_read.input_tokens" not in attributes
    # 2,406 x 0.0375 + 2 x 0.15 = 90.225 + 0.3 = 90.525 microdollars
    assert attributes["gen_ai.usage.cost.amount"] == 9.0525e-05
    assert attributes["gen_ai.usage.cost.amount"] == genai_usd(
        "cohere", "command-r7b-12-2024", input_tokens=2406, output_tokens=2
    )


# No v2 embed exchange was recorded: this body is written in the API's documented shape.
EMBEDDED = {
    "id": "emb-1",
    "response_type": "embeddings_by_type",
    "embeddings": {"float": [[0.1, -0.2]]},
    "texts": ["Embed this sentence."],
    "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": 4}},
}


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_embed(instrumented: Any, telemetry: Telemetry, is_async: bool) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=EMBEDDED)

    arguments = {
        "model": "embed-v4.0",
        "texts": ["Embed this sentence."],
        "input_type": "search_document",
        "embedding_types": ["float"],
    }
    if is_async:
        asyncio.run(async_cohere_client(answer).embed(**arguments))
    else:
        cohere_client(answer).embed(**arguments)

    span = telemetry.only_span()
    assert span.name == "embeddings embed-v4.0"
    assert tokens(span.attributes) == (4, 0)
    assert span.attributes["tokenbudget.usage.billed_units"] is True
    # 4 x 0.12 = 0.48 microdollars
    assert span.attributes["gen_ai.usage.cost.amount"] == 4.8e-07
    assert span.attributes["gen_ai.usage.cost.amount"] == genai_usd("cohere", "embed-v4.0", input_tokens=4)


def test_stream_closed_early_ends_its_call_estimated(instrumented: Any, telemetry: Telemetry) -> None:
    cassette = Cassette("cohere/test_cohere_v2_chat_legacy_with_streaming.yaml")
    stream = cohere_client(cassette.handle).chat_stream(model="command", messages=PIRATE)

    for _ in stream:
        break
    stream.close()

    attributes = telemetry.only_span().attributes
    assert attributes["tokenbudget.cost.estimated"] is True
    assert tokens(attributes) == (7, 0)  # ceil(28 / 4) estimated; no text yet


def test_exception_inside_a_stream_ends_its_call(instrumented: Any, telemetry: Telemetry) -> None:
    cassette = Cassette("cohere/test_cohere_v2_chat_legacy_with_streaming.yaml")

    def read() -> None:
        for _ in cohere_client(cassette.handle).chat_stream(model="command", messages=PIRATE):
            raise KeyError("the caller's own error")

    with pytest.raises(KeyError):
        read()

    assert telemetry.only_span().attributes["tokenbudget.cost.estimated"] is True


def test_provider_error_passes_through_unchanged(instrumented: Any, telemetry: Telemetry) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"message": "invalid api token"})

    with pytest.raises(cohere.errors.UnauthorizedError) as raised:
        cohere_client(answer).chat(model="command", messages=PIRATE)

    assert raised.value.status_code == 401
    assert telemetry.only_span().attributes["error.type"] == "UnauthorizedError"


def test_hard_budget_refuses_a_stream_before_the_request_leaves(
    instrument: Any, telemetry: Telemetry
) -> None:
    instrument(budgets=[Budget("cohere", limit_usd=Decimal("0.0001"), window="day")])
    cassette = Cassette("cohere/test_cohere_v2_chat_legacy_with_streaming.yaml")

    # 7 x 1 + 256 x 2 (the output assumed before any call finished) = 519 microdollars.
    with pytest.raises(BudgetExceededError) as refused:
        cohere_client(cassette.handle).chat_stream(model="command", messages=PIRATE)

    assert refused.value.estimate_usd == Decimal("0.000519")
    assert cassette.requests == []


def test_the_v1_clients_v2_namespace(instrumented: Any, telemetry: Telemetry) -> None:
    cassette = Cassette("cohere/test_cohere_v2_chat_legacy.yaml")
    client = cohere.Client(
        api_key="test", httpx_client=httpx.Client(transport=httpx.MockTransport(cassette.handle))
    )

    client.v2.chat(model="command", messages=PIRATE)

    attributes = telemetry.only_span().attributes
    assert tokens(attributes) == (7, 88)
    assert attributes["gen_ai.usage.cost.amount"] == 0.000183
