"""Gemini and Bedrock at the lowest declared releases too (google-genai 1.8, boto3/botocore 1.34.116,
the first with the Converse API), as at the newest: `./run floors` runs this module beside
`test_sdk_generations.py`. Over loopback HTTP to the fake provider, which every release can be
pointed at (google-genai's `base_url`, botocore's `endpoint_url`).

The fake's counts: the prompt is one message of 3 + ceil(47/4) = 15 tokens; the reply 12 tokens, and
gemini-2.5 models think 2 tokens per word shown (24), billed as output. gemini-2.5-flash: 0.3 in, 2.5
out per million; nova-micro on Bedrock 0.035 / 0.14.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib import metadata
from typing import Any

import pytest

from opentelemetry_instrumentation_tokenbudget.testing import FakeProviderServer
from tests.conftest import Telemetry

genai = pytest.importorskip("google.genai")
boto3 = pytest.importorskip("boto3")

QUESTION = "In two sentences, why do token budgets matter?"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as running:
        yield running


def _usage(span: Any) -> tuple[Any, ...]:
    attributes = span.attributes
    return (
        span.name,
        attributes["gen_ai.usage.input_tokens"],
        attributes["gen_ai.usage.output_tokens"],
        attributes["gen_ai.usage.cost.amount"],
    )


def test_the_sdks_under_test_are_named() -> None:
    versions = {name: metadata.version(name) for name in ("google-genai", "boto3", "botocore")}
    assert all(versions.values()), versions


def _gemini(server: FakeProviderServer) -> Any:
    # A plain dict: google-genai before 1.10 keeps its options as one.
    return genai.Client(api_key="test", http_options={"base_url": server.base_url})


def test_gemini_generate_content(instrumented: Any, telemetry: Telemetry, server: FakeProviderServer) -> None:
    client = _gemini(server)  # kept: newer releases close their HTTP client when it is collected
    response = client.models.generate_content(model="gemini-2.5-flash", contents=QUESTION)

    assert response.text.startswith("This is a fake reply")
    # 15 x 0.3 + 36 x 2.5 = 94.5 microdollars.
    assert _usage(telemetry.only_span()) == ("generate_content gemini-2.5-flash", 15, 36, 9.45e-05)


def test_gemini_generate_content_stream(
    instrumented: Any, telemetry: Telemetry, server: FakeProviderServer
) -> None:
    client = _gemini(server)
    stream = client.models.generate_content_stream(model="gemini-2.5-flash", contents=QUESTION)

    assert "".join(chunk.text or "" for chunk in stream).startswith("This is a fake reply")
    assert _usage(telemetry.only_span()) == ("generate_content gemini-2.5-flash", 15, 36, 9.45e-05)


async def test_gemini_async_generate_content(
    instrumented: Any, telemetry: Telemetry, server: FakeProviderServer
) -> None:
    client = _gemini(server)
    await client.aio.models.generate_content(model="gemini-2.5-flash", contents=QUESTION)

    assert _usage(telemetry.only_span()) == ("generate_content gemini-2.5-flash", 15, 36, 9.45e-05)


def _bedrock(server: FakeProviderServer) -> Any:
    return boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=server.base_url,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def test_bedrock_converse(instrumented: Any, telemetry: Telemetry, server: FakeProviderServer) -> None:
    messages = [{"role": "user", "content": [{"text": QUESTION}]}]
    _bedrock(server).converse(modelId="amazon.nova-micro-v1:0", messages=messages)

    # 15 x 0.035 + 12 x 0.14 = 2.205 microdollars.
    assert _usage(telemetry.only_span()) == ("chat amazon.nova-micro-v1:0", 15, 12, 2.205e-06)


def test_bedrock_converse_stream(instrumented: Any, telemetry: Telemetry, server: FakeProviderServer) -> None:
    messages = [{"role": "user", "content": [{"text": QUESTION}]}]
    events = list(
        _bedrock(server).converse_stream(modelId="amazon.nova-micro-v1:0", messages=messages)["stream"]
    )

    assert list(events[-1]) == ["metadata"]
    assert _usage(telemetry.only_span()) == ("chat amazon.nova-micro-v1:0", 15, 12, 2.205e-06)
