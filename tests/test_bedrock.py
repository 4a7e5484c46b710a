"""Amazon Bedrock calls through the real boto3/botocore, replayed from real recorded exchanges by a
loopback HTTP server (the client's `endpoint_url`): exact tokens and exact cost, per model family.

Prices: genai-prices 0.2.3, USD per million tokens, quoted beside each test.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from opentelemetry.instrumentation.utils import suppress_instrumentation

from opentelemetry_instrumentation_tokenbudget import Budget, BudgetExceededError
from opentelemetry_instrumentation_tokenbudget.testing.fake_server import FakeProviderServer
from tests.conftest import Telemetry
from tests.recorded import Cassette

MILLION = Decimal(1_000_000)


def usd(amount: Decimal) -> float:
    return float(amount / MILLION)


@contextmanager
def bedrock(name: str) -> Iterator[tuple[Any, Cassette]]:
    """A real bedrock-runtime client whose requests a loopback server answers from the cassette."""
    cassette = Cassette(f"bedrock/{name}")
    with FakeProviderServer(cassette) as server:  # type: ignore[arg-type]  # same handle() shape
        client = boto3.client(
            "bedrock-runtime",
            region_name="us-east-1",
            endpoint_url=server.base_url,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            config=Config(retries={"max_attempts": 1}),
        )
        yield client, cassette


def recorded_body(cassette: Cassette, index: int = 0) -> Any:
    request = cassette.recorded_requests[index]
    body = request.get("body")
    return json.loads(body) if body else request["parsed_body"]


def test_converse(instrumented: Any, telemetry: Telemetry) -> None:
    with bedrock("test_converse_with_content.yaml") as (client, cassette):
        client.converse(modelId="amazon.titan-text-lite-v1", **recorded_body(cassette))

    span = telemetry.only_span()
    assert span.name == "chat amazon.titan-text-lite-v1"
    attributes = span.attributes
    assert attributes["gen_ai.provider.name"] == "aws.bedrock"
    assert attributes["cloud.region"] == "us-east-1"
    assert attributes["gen_ai.request.max_tokens"] == 10
    assert attributes["gen_ai.response.finish_reasons"] == ("max_tokens",)
    assert attributes["gen_ai.usage.input_tokens"] == 8
    assert attributes["gen_ai.usage.output_tokens"] == 10
    # titan-text-lite: 0.15 in, 0.2 out
    assert attributes["gen_ai.usage.cost.amount"] == 3.2e-06


def test_converse_tool_calls_amazon_nova(instrumented: Any, telemetry: Telemetry) -> None:
    with bedrock("test_converse_tool_call_with_content.yaml") as (client, cassette):
        for index in range(2):
            client.converse(modelId="amazon.nova-micro-v1:0", **recorded_body(cassette, index))

    # nova-micro: 0.035 in, 0.14 out; 415/190 then 553/59 tokens.
    costs = [span.attributes["gen_ai.usage.cost.amount"] for span in telemetry.our_spans()]
    assert costs == [usd(415 * Decimal("0.035") + 190 * Decimal("0.14")), 2.7615e-05]
    assert costs[0] == 4.1125e-05


def test_converse_cache_tokens_join_the_input_of_a_regional_profile(
    instrumented: Any, telemetry: Telemetry
) -> None:
    model = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    with bedrock("test_bedrock_cache_write_and_read.yaml") as (client, cassette):
        for index in range(2):
            client.converse(modelId=model, **recorded_body(cassette, index))

    write, read = (span.attributes for span in telemetry.our_spans())
    # inputTokens 2 excludes the 1,322 written, then read, from the cache.
    assert write["gen_ai.usage.input_tokens"] == 1324
    assert write["gen_ai.usage.cache_creation.input_tokens"] == 1322
    assert read["gen_ai.usage.cache_read.input_tokens"] == 1322
    # The us. profile's rates, 10% above global: 3.3 in, 0.33 cache read, 4.125 cache write, 16.5 out.
    assert write["gen_ai.usage.cost.amount"] == 0.00554235
    assert read["gen_ai.usage.cost.amount"] == 0.00052536


def test_converse_stream_passes_every_event_untouched(instrumented: Any, telemetry: Telemetry) -> None:
    with bedrock("test_converse_stream_with_content.yaml") as (client, cassette):
        response = client.converse_stream(modelId="amazon.titan-text-lite-v1", **recorded_body(cassette))
        events = list(response["stream"])
    with bedrock("test_converse_stream_with_content.yaml") as (client, cassette), suppress_instrumentation():
        bare = list(
            client.converse_stream(modelId="amazon.titan-text-lite-v1", **recorded_body(cassette))["stream"]
        )

    assert events == bare
    assert events[-1]["metadata"]["usage"] == {"inputTokens": 8, "outputTokens": 10, "totalTokens": 18}
    attributes = telemetry.only_span().attributes
    assert attributes["gen_ai.usage.input_tokens"] == 8
    assert attributes["gen_ai.usage.output_tokens"] == 10
    assert attributes["gen_ai.usage.cost.amount"] == 3.2e-06
    assert "tokenbudget.cost.estimated" not in attributes


def test_converse_stream_with_thinking(instrumented: Any, telemetry: Telemetry) -> None:
    model = "us.anthropic.claude-sonnet-4-20250514-v1:0"
    with bedrock("test_bedrock_model_thinking_part_stream.yaml") as (client, cassette):
        events = list(client.converse_stream(modelId=model, **recorded_body(cassette))["stream"])

    assert events[-1]["metadata"]["usage"] == {"inputTokens": 36, "outputTokens": 73, "totalTokens": 109}
    attributes = telemetry.only_span().attributes
    assert attributes["gen_ai.usage.input_tokens"] == 36
    assert attributes["gen_ai.usage.output_tokens"] == 73
    assert attributes["gen_ai.response.finish_reasons"] == ("end_turn",)
    # sonnet-4 (us. profile at the same rates as global here): 3 in, 15 out; thinking is in outputTokens.
    assert attributes["gen_ai.usage.cost.amount"] == 0.001203


@pytest.mark.parametrize(
    "case",
    [
        # titan-text-lite: 0.15 in, 0.2 out
        ("amazon_titan", "amazon.titan-text-lite-v1", (5, 10), 2.75e-06),
        # llama3-1-70b: 0.72 in and out
        ("meta_llama", "meta.llama3-1-70b-instruct-v1:0", (5, 10), 1.08e-05),
    ],
)
def test_invoke_model_reads_the_token_headers_not_the_body(
    instrumented: Any, telemetry: Telemetry, case: tuple[str, str, tuple[int, int], float]
) -> None:
    family, model, tokens, cost = case
    with bedrock(f"test_invoke_model_with_content_{family}.yaml") as (client, cassette):
        response = client.invoke_model(modelId=model, body=cassette.recorded_requests[0]["body"])
        body = json.loads(response["body"].read())  # still whole: the caller's to read

    assert body
    attributes = telemetry.only_span().attributes
    assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == tokens
    assert attributes["gen_ai.usage.cost.amount"] == cost


def test_invoke_model_cache_headers_anthropic_claude(instrumented: Any, telemetry: Telemetry) -> None:
    model = "anthropic.claude-3-5-haiku-20241022-v1:0"
    with bedrock("test_prompt_cache.yaml") as (client, cassette):
        for index in range(2):
            client.invoke_model(modelId=model, body=cassette.recorded_requests[index]["body"])

    write, read = (span.attributes for span in telemetry.our_spans())
    assert write["gen_ai.usage.input_tokens"] == 4 + 18131
    assert read["gen_ai.usage.cache_read.input_tokens"] == 18131
    # haiku-3.5: 0.8 in, 1 cache write, 0.08 cache read, 4 out
    assert write["gen_ai.usage.cost.amount"] == 0.0183342
    assert read["gen_ai.usage.cost.amount"] == 0.00165368


def test_invoke_model_with_response_stream(instrument: Any, telemetry: Telemetry) -> None:
    # claude-v2 is retired and genai-prices no longer has it: the user's price for it.
    instrument(prices={"anthropic.claude-v2": {"input_mtok": 8, "output_mtok": 24}})
    name = "test_invoke_model_with_response_stream_with_content_anthropic_claude.yaml"
    with bedrock(name) as (client, cassette):
        response = client.invoke_model_with_response_stream(
            modelId="anthropic.claude-v2", body=cassette.recorded_requests[0]["body"]
        )
        chunks = [event["chunk"]["bytes"] for event in response["body"]]

    assert b"amazon-bedrock-invocationMetrics" in chunks[-1]
    attributes = telemetry.only_span().attributes
    assert attributes["gen_ai.usage.input_tokens"] == 14
    assert attributes["gen_ai.usage.output_tokens"] == 10
    assert attributes["gen_ai.usage.cost.amount"] == 0.000352


def test_provider_error_passes_through_unchanged(instrumented: Any, telemetry: Telemetry) -> None:
    with (
        bedrock("test_converse_with_invalid_model.yaml") as (client, cassette),
        pytest.raises(ClientError) as raised,
    ):
        client.converse(modelId="does-not-exist", **recorded_body(cassette))

    assert type(raised.value).__name__ == "ValidationException"
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    span = telemetry.only_span()
    assert span.attributes["error.type"] == "ValidationException"


def test_other_aws_calls_are_left_alone(instrumented: Any, telemetry: Telemetry) -> None:
    s3 = boto3.client("s3", region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
    with Stubber(s3) as stubber:
        stubber.add_response("list_buckets", {"Buckets": []})
        assert s3.list_buckets()["Buckets"] == []

    assert telemetry.our_spans() == []


def test_hard_budget_refuses_before_the_request_leaves(instrument: Any, telemetry: Telemetry) -> None:
    instrument(budgets=[Budget("bedrock", limit_usd=0, window="day")])
    with bedrock("test_converse_with_content.yaml") as (client, cassette):
        with pytest.raises(BudgetExceededError):
            client.converse(modelId="amazon.titan-text-lite-v1", **recorded_body(cassette))
        assert cassette.requests == []


def test_stream_closed_early_still_ends_its_call(instrumented: Any, telemetry: Telemetry) -> None:
    with bedrock("test_converse_stream_with_content.yaml") as (client, cassette):
        stream = client.converse_stream(modelId="amazon.titan-text-lite-v1", **recorded_body(cassette))[
            "stream"
        ]
        for _ in stream:
            break
        stream.close()

    attributes = telemetry.only_span().attributes
    assert attributes["tokenbudget.cost.estimated"] is True
    assert "gen_ai.usage.input_tokens" in attributes
