"""OpenAI calls replayed from real recorded exchanges: exact tokens and exact cost for each API."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import openai
import pytest
from opentelemetry.trace import SpanKind, StatusCode

from tests.conftest import Telemetry
from tests.recorded import Cassette, async_openai_client, openai_client

# Published prices, USD per million tokens (genai-prices 0.2.3).
GPT_4O_MINI = {"input": Decimal("0.15"), "cached": Decimal("0.075"), "output": Decimal("0.6")}
GPT_4 = {"input": Decimal(30), "output": Decimal(60)}
EMBEDDING_3_SMALL = Decimal("0.02")
GPT_5_4 = {"input": Decimal("2.5"), "output": Decimal(15)}
MILLION = Decimal(1_000_000)


def usd(amount: Decimal) -> float:
    return float(amount / MILLION)


def recorded_request(cassette: Cassette, index: int = 0) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(cassette.recorded_requests[index]["body"])
    return body


def assert_cost(attributes: Any, expected_usd: float) -> None:
    amount = attributes["gen_ai.usage.cost.amount"]
    assert type(amount) is float
    assert amount == expected_usd
    assert attributes["gen_ai.usage.cost.currency"] == "USD"
    assert attributes["gen_ai.usage.cost.source"] == "local"


def test_chat_completion_tokens_cost_and_metrics(instrumented: Any, telemetry: Telemetry) -> None:
    cassette = Cassette("openai/test_chat_completion_with_content.yaml")
    client = openai_client(cassette)

    response = client.chat.completions.create(**recorded_request(cassette))

    assert response.usage.prompt_tokens == 12
    span = telemetry.only_span()
    assert span.name == "chat gpt-4o-mini"
    assert span.kind is SpanKind.CLIENT
    attributes = span.attributes
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert attributes["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert type(attributes["gen_ai.usage.input_tokens"]) is int
    assert attributes["gen_ai.usage.input_tokens"] == 12
    assert attributes["gen_ai.usage.output_tokens"] == 5
    assert "gen_ai.usage.cache_read.input_tokens" not in attributes
    # 12 x 0.15 + 5 x 0.6 = 4.8 microdollars
    assert_cost(attributes, usd(12 * GPT_4O_MINI["input"] + 5 * GPT_4O_MINI["output"]))
    assert attributes["gen_ai.usage.cost.amount"] == 0.0000048
    assert attributes["tokenbudget.cost.input"] == 0.0000018
    assert attributes["tokenbudget.cost.output"] == 0.000003
    assert attributes["tokenbudget.price.source"] == "genai-prices"
    assert attributes["tokenbudget.price.version"].startswith("genai-prices ")
    assert "tokenbudget.cost.estimated" not in attributes

    tokens = {
        p.attributes["gen_ai.token.type"]: p for p in telemetry.metric_points("gen_ai.client.token.usage")
    }
    assert tokens["input"].sum == 12
    assert tokens["output"].sum == 5
    assert tokens["input"].attributes["gen_ai.request.model"] == "gpt-4o-mini"
    (cost,) = telemetry.metric_points("gen_ai.client.operation.cost")
    assert cost.count == 1
    assert cost.sum == 0.0000048
    assert cost.attributes["gen_ai.provider.name"] == "openai"
    (duration,) = telemetry.metric_points("gen_ai.client.operation.duration")
    assert duration.count == 1
    assert duration.sum > 0


def test_cached_tokens_priced_at_the_cache_rate(instrumented: Any, telemetry: Telemetry) -> None:
    cassette = Cassette("openai/test_cached_tokens.yaml")
    client = openai_client(cassette)

    client.chat.completions.create(**recorded_request(cassette, 0))
    client.chat.completions.create(**recorded_request(cassette, 1))

    first, second = (span.attributes for span in telemetry.our_spans())
    assert first["gen_ai.usage.input_tokens"] == 1370
    assert_cost(first, usd(1370 * GPT_4O_MINI["input"] + 22 * GPT_4O_MINI["output"]))
    assert second["gen_ai.usage.input_tokens"] == 1370
    assert second["gen_ai.usage.cache_read.input_tokens"] == 1280
    # 90 uncached x 0.15 + 1280 cached x 0.075 + 155 x 0.6 = 202.5 microdollars
    assert second["gen_ai.usage.cost.amount"] == 0.0002025
    assert second["tokenbudget.cost.cache_read"] == 0.000096


def test_gzip_recorded_prompt_caching(instrumented: Any, telemetry: Telemetry) -> None:
    cassette = Cassette("openai/test_openai_prompt_caching_gzip.yaml")
    client = openai_client(cassette)
    for index in range(4):
        client.chat.completions.create(**recorded_request(cassette, index))

    costs = [span.attributes["gen_ai.usage.cost.amount"] for span in telemetry.our_spans()]
    # The second call read 1024 of its 1149 prompt tokens from the cache.
    assert costs == [
        usd(1149 * GPT_4O_MINI["input"] + 315 * GPT_4O_MINI["output"]),
        usd(125 * GPT_4O_MINI["input"] + 1024 * GPT_4O_MINI["cached"] + 353 * GPT_4O_MINI["output"]),
        usd(1149 * GPT_4O_MINI["input"] + 297 * GPT_4O_MINI["output"]),
        usd(1149 * GPT_4O_MINI["input"] + 339 * GPT_4O_MINI["output"]),
    ]
    assert costs[1] == 0.00030735


def test_stream_usage_requested_for_the_caller_and_hidden(instrumented: Any, telemetry: Telemetry) -> None:
    cassette = Cassette("openai/test_chat_completion_streaming.yaml")
    client = openai_client(cassette)
    request = recorded_request(cassette)
    del request["stream_options"]

    chunks = list(client.chat.completions.create(**request))

    assert cassette.requests[0]["stream_options"] == {"include_usage": True}
    # The caller sees the stream it asked for: every chunk has choices, none carries usage.
    assert all(chunk.choices for chunk in chunks)
    assert all(chunk.usage is None for chunk in chunks)
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks) == '"This is a test."'
    attributes = telemetry.only_span().attributes
    assert attributes["gen_ai.usage.input_tokens"] == 12
    assert attributes["gen_ai.usage.output_tokens"] == 5
    # 12 x 30 + 5 x 60 = 660 microdollars
    assert_cost(attributes, 0.00066)
    assert "tokenbudget.cost.estimated" not in attributes


def test_stream_usage_kept_when_the_caller_asked(instrumented: Any, telemetry: Telemetry) -> None:
    cassette = Cassette("openai/test_chat_completion_streaming.yaml")
    client = openai_client(cassette)

    chunks = list(client.chat.completions.create(**recorded_request(cassette)))

    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == 5
    assert telemetry.only_span().attributes["gen_ai.usage.cost.amount"] == 0.00066


def test_stream_without_usage_is_estimated_from_its_text(instrumented: Any, telemetry: Telemetry) -> None:
    # Recorded from a server that ignored include_usage: the usage never came.
    cassette = Cassette("openai/test_chat_completion_streaming_not_complete.yaml")
    client = openai_client(cassette)
    request = recorded_request(cassette)

    chunks = list(client.chat.completions.create(**request))

    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    attributes = telemetry.only_span().attributes
    assert attributes["tokenbudget.cost.estimated"] is True
    expected_input = -(-len("Say this is a test") // 4)
    expected_output = -(-len(text) // 4)
    assert attributes["gen_ai.usage.input_tokens"] == expected_input
    assert attributes["gen_ai.usage.output_tokens"] == expected_output
    assert_cost(attributes, usd(expected_input * GPT_4["input"] + expected_output * GPT_4["output"]))


async def test_async_stream(instrumented: Any, telemetry: Telemetry) -> None:
    cassette = Cassette("openai/test_async_chat_completion_streaming.yaml")
    client = async_openai_client(cassette)
    request = recorded_request(cassette)
    del request["stream_options"]

    stream = await client.chat.completions.create(**request)
    chunks = [chunk async for chunk in stream]

    assert all(chunk.usage is None and chunk.choices for chunk in chunks)
    attributes = telemetry.only_span().attributes
    assert attributes["gen_ai.usage.output_tokens"] == 5
    assert_cost(attributes, 0.00066)


def test_stream_helper(instrumented: Any, telemetry: Telemetry) -> None:
    cassette = Cassette("openai/test_chat_completion_streaming.yaml")
    client = openai_client(cassette)
    request = recorded_request(cassette)
    del request["stream"], request["stream_options"]

    with client.chat.completions.stream(**request) as stream:
        final = stream.get_final_completion()

    assert final.choices[0].message.content == '"This is a test."'
    assert telemetry.only_span().attributes["gen_ai.usage.cost.amount"] == 0.00066


def test_with_raw_response_counted_without_parse(instrumented: Any, telemetry: Telemetry) -> None:
    cassette = Cassette("openai/test_chat_completion_with_raw_response.yaml")
    client = openai_client(cassette)

    raw = client.chat.completions.with_raw_response.create(**recorded_request(cassette))

    assert raw.http_response.status_code == 200
    assert telemetry.only_span().attributes["gen_ai.usage.cost.amount"] == 0.0000048
    assert raw.parse().usage.completion_tokens == 5
    assert len(telemetry.our_spans()) == 1


def test_with_raw_response_stream(instrumented: Any, telemetry: Telemetry) -> None:
    cassette = Cassette("openai/test_chat_completion_with_raw_response_streaming.yaml")
    client = openai_client(cassette)
    request = recorded_request(cassette)
    del request["stream_options"]

    raw = client.chat.completions.with_raw_response.create(**request)
    chunks = list(raw.parse())

    assert all(chunk.usage is None for chunk in chunks)
    attributes = telemetry.only_span().attributes
    assert attributes["gen_ai.usage.output_tokens"] == 12
    assert_cost(attributes, usd(12 * GPT_4O_MINI["input"] + 12 * GPT_4O_MINI["output"]))


def test_with_streaming_response(instrumented: Any, telemetry: Telemetry) -> None:
    cassette = Cassette("openai/test_chat_completion_with_content.yaml")
    client = openai_client(cassette)

    with client.chat.completions.with_streaming_response.create(**recorded_request(cassette)) as response:
        completion = response.parse()

    assert completion.usage.total_tokens == 17
    assert telemetry.only_span().attributes["gen_ai.usage.cost.amount"] == 0.0000048


def test_provider_error_passes_through_unchanged(instrumented: Any, telemetry: Telemetry) -> None:
    cassette = Cassette("openai/test_chat_completion_404.yaml")
    client = openai_client(cassette)

    with pytest.raises(openai.NotFoundError) as raised:
        client.chat.completions.create(**recorded_request(cassette))

    assert raised.value.status_code == 404
    span = telemetry.only_span()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "NotFoundError"
    assert "gen_ai.usage.cost.amount" not in span.attributes
    (duration,) = telemetry.metric_points("gen_ai.client.operation.duration")
    assert duration.attributes["error.type"] == "NotFoundError"
    assert telemetry.metric_points("gen_ai.client.operation.cost") == []


@pytest.mark.parametrize(
    ("cassette_name", "tokens"),
    [("openai/test_embeddings_token_metrics.yaml", 8), ("openai/test_embeddings_with_batch_input.yaml", 24)],
)
def test_embeddings(instrumented: Any, telemetry: Telemetry, cassette_name: str, tokens: int) -> None:
    cassette = Cassette(cassette_name)
    client = openai_client(cassette)

    client.embeddings.create(**recorded_request(cassette))

    span = telemetry.only_span()
    assert span.name == "embeddings text-embedding-3-small"
    assert span.attributes["gen_ai.operation.name"] == "embeddings"
    assert span.attributes["gen_ai.usage.input_tokens"] == tokens
    assert span.attributes["gen_ai.usage.output_tokens"] == 0
    assert_cost(span.attributes, usd(tokens * EMBEDDING_3_SMALL))


def test_responses_api(instrumented: Any, telemetry: Telemetry) -> None:
    cassette = Cassette("openai/test_responses_create_basic.yaml")
    client = openai_client(cassette)

    client.responses.create(**recorded_request(cassette))

    attributes = telemetry.only_span().attributes
    assert attributes["gen_ai.usage.input_tokens"] == 22
    assert attributes["gen_ai.usage.output_tokens"] == 6
    assert attributes["gen_ai.response.finish_reasons"] == ("completed",)
    # 22 x 0.15 + 6 x 0.6 = 6.9 microdollars
    assert_cost(attributes, 0.0000069)


def test_responses_api_reasoning_tokens(instrumented: Any, telemetry: Telemetry) -> None:
    cassette = Cassette("openai/test_responses_create_reports_reasoning_tokens.yaml")
    client = openai_client(cassette)

    client.responses.create(**recorded_request(cassette))

    attributes = telemetry.only_span().attributes
    assert attributes["gen_ai.request.max_tokens"] == 300
    assert attributes["gen_ai.usage.output_tokens"] == 288
    assert attributes["gen_ai.usage.reasoning.output_tokens"] == 9
    # Reasoning tokens are billed as output, and output_tokens already includes them.
    assert_cost(attributes, usd(44 * GPT_5_4["input"] + 288 * GPT_5_4["output"]))


def test_responses_api_stream(instrumented: Any, telemetry: Telemetry) -> None:
    cassette = Cassette("openai/test_responses_create_streaming.yaml")
    client = openai_client(cassette)

    events = list(client.responses.create(**recorded_request(cassette)))

    assert events[-1].type == "response.completed"
    attributes = telemetry.only_span().attributes
    assert attributes["gen_ai.usage.input_tokens"] == 22
    assert_cost(attributes, 0.0000069)


def test_responses_api_error(instrumented: Any, telemetry: Telemetry) -> None:
    cassette = Cassette("openai/test_responses_create_api_error.yaml")
    client = openai_client(cassette)

    with pytest.raises(openai.BadRequestError):
        client.responses.create(**recorded_request(cassette))

    assert telemetry.only_span().attributes["error.type"] == "BadRequestError"


def test_multiple_choices_finish_reasons(instrumented: Any, telemetry: Telemetry) -> None:
    cassette = Cassette("openai/test_chat_completion_multiple_choices.yaml")
    client = openai_client(cassette)

    client.chat.completions.create(**recorded_request(cassette))

    attributes = telemetry.only_span().attributes
    assert attributes["gen_ai.response.finish_reasons"] == ("stop", "stop")
    assert_cost(attributes, usd(12 * GPT_4O_MINI["input"] + 24 * GPT_4O_MINI["output"]))
