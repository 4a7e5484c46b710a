"""Anthropic calls replayed from real recorded exchanges: exact tokens and exact cost."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import anthropic
import httpx2
import pytest

from opentelemetry_instrumentation_tokenbudget.testing import FakeProvider
from tests.conftest import Telemetry
from tests.recorded import Cassette, anthropic_client, async_anthropic_client

MILLION = Decimal(1_000_000)
# Published prices, USD per million tokens (genai-prices 0.2.3).
OPUS_3 = {"input": Decimal(15), "output": Decimal(75)}
HAIKU_3 = {"input": Decimal("0.25"), "output": Decimal("1.25")}
HAIKU_3_5 = {"input": Decimal("0.8"), "output": Decimal(4)}
SONNET_3_5 = {
    "input": Decimal(3),
    "cache_read": Decimal("0.3"),
    "cache_write": Decimal("3.75"),
    "output": Decimal(15),
}
# claude-haiku-4-5: a one-hour cache write costs 2x input, a five-minute one 1.25x.
HAIKU_4_5 = {
    "input": Decimal(1),
    "cache_read": Decimal("0.1"),
    "cache_write": Decimal("1.25"),
    "cache_write_1h": Decimal(2),
    "output": Decimal(5),
}


def usd(amount: Decimal) -> float:
    return float(amount / MILLION)


def recorded_request(cassette: Cassette, index: int = 0) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(cassette.recorded_requests[index]["body"])
    return body


def test_message_create(instrumented: Any, telemetry: Telemetry) -> None:
    cassette = Cassette("anthropic/test_anthropic_message_create_legacy.yaml")
    client = anthropic_client(cassette)

    client.messages.create(**recorded_request(cassette))

    span = telemetry.only_span()
    assert span.name == "chat claude-3-opus-20240229"
    attributes = span.attributes
    assert attributes["gen_ai.provider.name"] == "anthropic"
    assert attributes["gen_ai.request.max_tokens"] == 1024
    assert attributes["gen_ai.usage.input_tokens"] == 17
    assert attributes["gen_ai.usage.output_tokens"] == 220
    assert attributes["gen_ai.response.finish_reasons"] == ("end_turn",)
    # 17 x 15 + 220 x 75 = 16,755 microdollars
    assert attributes["gen_ai.usage.cost.amount"] == 0.016755
    assert type(attributes["gen_ai.usage.cost.amount"]) is float


def test_stream_counts_the_cumulative_output_once(instrumented: Any, telemetry: Telemetry) -> None:
    cassette = Cassette("anthropic/test_anthropic_message_streaming_legacy.yaml")
    client = anthropic_client(cassette)

    events = list(client.messages.create(**recorded_request(cassette)))

    assert events[0].type == "message_start"
    assert events[0].message.usage.output_tokens == 3
    attributes = telemetry.only_span().attributes
    # message_start says 3 (a placeholder), message_delta says 171 (the total): 171, not 174.
    assert attributes["gen_ai.usage.output_tokens"] == 171
    assert attributes["gen_ai.usage.cost.amount"] == usd(17 * HAIKU_3["input"] + 171 * HAIKU_3["output"])
    assert attributes["gen_ai.usage.cost.amount"] == 0.000218


def test_stream_manager(instrumented: Any, telemetry: Telemetry) -> None:
    cassette = Cassette("anthropic/test_anthropic_message_stream_manager_legacy.yaml")
    client = anthropic_client(cassette)
    request = recorded_request(cassette)
    del request["stream"]

    with client.messages.stream(**request) as stream:
        text = "".join(stream.text_stream)

    assert text
    attributes = telemetry.only_span().attributes
    assert attributes["gen_ai.usage.output_tokens"] == 108
    assert attributes["gen_ai.usage.cost.amount"] == usd(17 * HAIKU_3_5["input"] + 108 * HAIKU_3_5["output"])
    assert "tokenbudget.cost.estimated" not in attributes


def test_prompt_caching_writes_then_reads(instrumented: Any, telemetry: Telemetry) -> None:
    cassette = Cassette("anthropic/test_anthropic_prompt_caching_legacy.yaml")
    client = anthropic_client(cassette)

    client.messages.create(**recorded_request(cassette, 0))
    client.messages.create(**recorded_request(cassette, 1))

    write, read = (span.attributes for span in telemetry.our_spans())
    # Anthropic reports 4 input tokens beside 1163 cache tokens; the convention's input includes them.
    assert write["gen_ai.usage.input_tokens"] == 1167
    assert write["gen_ai.usage.cache_creation.input_tokens"] == 1163
    assert write["gen_ai.usage.cost.amount"] == usd(
        4 * SONNET_3_5["input"] + 1163 * SONNET_3_5["cache_write"] + 187 * SONNET_3_5["output"]
    )
    assert write["gen_ai.usage.cost.amount"] == 0.00717825
    assert write["tokenbudget.cost.cache_write"] == 0.00436125
    assert read["gen_ai.usage.input_tokens"] == 1167
    assert read["gen_ai.usage.cache_read.input_tokens"] == 1163
    assert read["gen_ai.usage.cost.amount"] == 0.0033909


def test_prompt_caching_stream(instrumented: Any, telemetry: Telemetry) -> None:
    cassette = Cassette("anthropic/test_anthropic_prompt_caching_stream_legacy.yaml")
    client = anthropic_client(cassette)

    for index in range(2):
        for _ in client.messages.create(**recorded_request(cassette, index)):
            pass

    write, read = (span.attributes for span in telemetry.our_spans())
    assert write["gen_ai.usage.cost.amount"] == usd(
        4 * SONNET_3_5["input"] + 1165 * SONNET_3_5["cache_write"] + 201 * SONNET_3_5["output"]
    )
    assert read["gen_ai.usage.cost.amount"] == usd(
        4 * SONNET_3_5["input"] + 1165 * SONNET_3_5["cache_read"] + 221 * SONNET_3_5["output"]
    )


@pytest.mark.parametrize(
    "name", ["test_anthropic_thinking_legacy.yaml", "test_anthropic_thinking_streaming_legacy.yaml"]
)
def test_thinking(instrumented: Any, telemetry: Telemetry, name: str) -> None:
    cassette = Cassette(f"anthropic/{name}")
    client = anthropic_client(cassette)

    result = client.messages.create(**recorded_request(cassette))
    if not hasattr(result, "usage"):
        for _ in result:
            pass

    attributes = telemetry.only_span().attributes
    output = 215 if "streaming" not in name else 216
    assert attributes["gen_ai.usage.output_tokens"] == output
    assert attributes["gen_ai.usage.cost.amount"] == usd(
        52 * SONNET_3_5["input"] + output * SONNET_3_5["output"]
    )


async def test_async_create(instrumented: Any, telemetry: Telemetry) -> None:
    cassette = Cassette("anthropic/test_async_anthropic_message_create_legacy.yaml")
    client = async_anthropic_client(cassette)

    await client.messages.create(**recorded_request(cassette))

    assert telemetry.only_span().attributes["gen_ai.usage.cost.amount"] == 0.01443


async def test_async_stream(instrumented: Any, telemetry: Telemetry) -> None:
    cassette = Cassette("anthropic/test_async_anthropic_message_streaming_legacy.yaml")
    client = async_anthropic_client(cassette)

    stream = await client.messages.create(**recorded_request(cassette))
    async for _ in stream:
        pass

    attributes = telemetry.only_span().attributes
    assert attributes["gen_ai.usage.output_tokens"] == 92
    assert attributes["gen_ai.usage.cost.amount"] == usd(17 * HAIKU_3["input"] + 92 * HAIKU_3["output"])


async def test_async_stream_manager(instrumented: Any, telemetry: Telemetry) -> None:
    cassette = Cassette("anthropic/test_async_anthropic_message_streaming_legacy.yaml")
    client = async_anthropic_client(cassette)
    request = recorded_request(cassette)
    del request["stream"]

    async with client.messages.stream(**request) as stream:
        message = await stream.get_final_message()

    assert message.usage.output_tokens == 92
    assert telemetry.only_span().attributes["gen_ai.usage.output_tokens"] == 92


def test_beta_messages(instrumented: Any, telemetry: Telemetry) -> None:
    cassette = Cassette("anthropic/test_anthropic_message_create_legacy.yaml")
    client = anthropic_client(cassette)

    client.beta.messages.create(**recorded_request(cassette))

    assert telemetry.only_span().attributes["gen_ai.usage.cost.amount"] == 0.016755


def test_tools_stream(instrumented: Any, telemetry: Telemetry) -> None:
    cassette = Cassette("anthropic/test_anthropic_tools_streaming_legacy.yaml")
    client = anthropic_client(cassette)

    with client.messages.create(**recorded_request(cassette)) as stream:
        for _ in stream:
            pass

    attributes = telemetry.only_span().attributes
    assert attributes["gen_ai.usage.input_tokens"] == 506
    assert attributes["gen_ai.usage.output_tokens"] == 153
    assert attributes["gen_ai.response.finish_reasons"] == ("tool_use",)


@pytest.mark.parametrize("stream", [False, True], ids=["create", "stream"])
def test_one_hour_cache_writes_priced_at_their_own_rate(
    instrumented: Any, telemetry: Telemetry, stream: bool
) -> None:
    # No recording has a one-hour cache write; the fake reports them as the API does, in
    # usage.cache_creation.ephemeral_1h_input_tokens.
    client = anthropic.Anthropic(api_key="k", http_client=httpx2.Client(transport=FakeProvider().transport()))
    system = [
        {
            "type": "text",
            "text": "You are a careful assistant. " * 100,
            "cache_control": {"type": "ephemeral", "ttl": "1h"},
        }
    ]
    for _ in range(2):
        result = client.messages.create(
            model="claude-haiku-4-5",
            max_tokens=100,
            system=system,  # type: ignore[arg-type]
            messages=[{"role": "user", "content": "Say this is a test"}],
            stream=stream,
        )
        if stream:
            for _event in result:  # type: ignore[union-attr]
                pass

    write, read = (span.attributes for span in telemetry.our_spans())
    assert write["gen_ai.usage.cache_creation.input_tokens"] == 728
    # 8 x 1 + 728 x 2 + 11 x 5 = 8 + 1,456 + 55 = 1,519 microdollars, as genai-prices' calc_price says.
    assert write["gen_ai.usage.cost.amount"] == usd(
        8 * HAIKU_4_5["input"] + 728 * HAIKU_4_5["cache_write_1h"] + 11 * HAIKU_4_5["output"]
    )
    assert write["gen_ai.usage.cost.amount"] == 0.001519
    assert write["tokenbudget.cost.cache_write"] == 0.001456
    # 8 x 1 + 728 x 0.1 + 11 x 5 = 8 + 72.8 + 55 = 135.8 microdollars.
    assert read["gen_ai.usage.cost.amount"] == 0.0001358
