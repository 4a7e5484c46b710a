"""Every Gemini and Bedrock method, sync and async, plain and streamed, through the real SDKs against
the bundled fake provider: exact tokens and exact USD per cell.

The fake's counts (see `testing.fake_tokens`): the prompt QUESTION is one message of 3 + ceil(47/4) =
15 tokens; the reply shows 12 words (12 tokens), and gemini-2.5 models think 2 tokens per word shown
(24), billed as output. Prices (genai-prices 0.2.3, USD per million tokens): gemini-2.5-flash 0.3 in,
2.5 out; gemini-embedding-001 0.15 in; on Bedrock claude-haiku-4-5 1.1/5.5 for a regional profile
(us.) and 1/5 global; nova-micro 0.035/0.14; llama3-1-70b 0.72/0.72; claude-3-5-haiku 0.8/4.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest

genai = pytest.importorskip("google.genai")
boto3 = pytest.importorskip("boto3")

from google.genai import types  # noqa: E402
from google.oauth2.credentials import Credentials  # noqa: E402

from opentelemetry_instrumentation_tokenbudget.testing import FakeProvider, FakeProviderServer  # noqa: E402
from tests.conftest import Telemetry  # noqa: E402

QUESTION = "In two sentences, why do token budgets matter?"
HAIKU_4_5 = "anthropic.claude-haiku-4-5-20251001-v1:0"


@dataclass(frozen=True)
class Cell:
    api: str
    method: str
    is_async: bool
    stream: bool
    model: str
    input_tokens: int
    output_tokens: int
    usd: float
    estimated: bool = False

    def __str__(self) -> str:
        mode = ("async" if self.is_async else "sync") + ("-stream" if self.stream else "")
        return f"{self.api}-{self.method}-{mode}"


GEMINI_CELLS = [
    # 15 x 0.3 + 36 x 2.5 = 94.5 microdollars, on the Gemini API and on Vertex AI alike.
    *(
        Cell(api, "generate_content", is_async, stream, "gemini-2.5-flash", 15, 36, 9.45e-05)
        for api in ("gemini", "vertex")
        for is_async in (False, True)
        for stream in (False, True)
    ),
    # The Gemini API reports no tokens for embeddings: ceil((47 + 7) / 4) = 14 estimated, x 0.15.
    Cell("gemini", "embed_content", False, False, "gemini-embedding-001", 14, 0, 2.1e-06, estimated=True),
    Cell("gemini", "embed_content", True, False, "gemini-embedding-001", 14, 0, 2.1e-06, estimated=True),
]


def _gemini(provider: FakeProvider, vertex: bool) -> Any:
    http_options = types.HttpOptions(
        httpx_client=httpx2.Client(transport=provider.transport()),
        httpx_async_client=httpx2.AsyncClient(transport=httpx2.MockTransport(provider.ahandle)),
    )
    if vertex:
        return genai.Client(
            vertexai=True,
            project="demo",
            location="europe-west4",
            credentials=Credentials(token="test"),  # type: ignore[no-untyped-call]
            http_options=http_options,
        )
    return genai.Client(api_key="test", http_options=http_options)


def _call_gemini(cell: Cell, client: Any) -> None:
    models = client.aio.models if cell.is_async else client.models
    if cell.method == "embed_content":
        request = models.embed_content(model=cell.model, contents=[QUESTION, "budgets"])
    elif cell.stream:
        request = models.generate_content_stream(model=cell.model, contents=QUESTION)
    else:
        request = models.generate_content(model=cell.model, contents=QUESTION)
    if not cell.is_async:
        if cell.stream:
            assert "".join(chunk.text for chunk in request).startswith("This is a fake reply")
        return

    async def run() -> None:
        result = await request
        if cell.stream:
            texts = [chunk.text async for chunk in result]
            assert "".join(texts).startswith("This is a fake reply")

    asyncio.run(run())


@pytest.mark.parametrize("cell", GEMINI_CELLS, ids=str)
def test_gemini(instrumented: Any, telemetry: Telemetry, cell: Cell) -> None:
    _call_gemini(cell, _gemini(FakeProvider(), cell.api == "vertex"))

    attributes = telemetry.only_span().attributes
    assert attributes["gen_ai.provider.name"] == ("gcp.vertex_ai" if cell.api == "vertex" else "gcp.gemini")
    assert attributes.get("cloud.region") == ("europe-west4" if cell.api == "vertex" else None)
    assert attributes["gen_ai.usage.input_tokens"] == cell.input_tokens
    assert attributes["gen_ai.usage.output_tokens"] == cell.output_tokens
    assert attributes["gen_ai.usage.cost.amount"] == cell.usd
    assert attributes.get("tokenbudget.cost.estimated", False) is cell.estimated


def test_gemini_long_context_tier(instrumented: Any, telemetry: Telemetry) -> None:
    # 3 + 200,001 = 200,004 prompt tokens: past gemini-2.5-pro's 200,000, the whole request pays the
    # long-context rates (2.5 in instead of 1.25, 15 out instead of 10).
    client = _gemini(FakeProvider(), vertex=False)
    client.models.generate_content(model="gemini-2.5-pro", contents="x" * 800_004)

    attributes = telemetry.only_span().attributes
    assert attributes["gen_ai.usage.input_tokens"] == 200_004
    # "This is a fake reply to: xxx..." shows 7 words and thinks 14 tokens.
    assert attributes["gen_ai.usage.output_tokens"] == 7 + 14
    # 200,004 x 2.5 + 21 x 15 = 500,325 microdollars
    assert attributes["gen_ai.usage.cost.amount"] == 0.500325


BEDROCK_CELLS = [
    Cell("bedrock", "converse", False, False, f"us.{HAIKU_4_5}", 15, 12, 8.25e-05),
    Cell("bedrock", "converse", False, False, f"eu.{HAIKU_4_5}", 15, 12, 8.25e-05),
    Cell("bedrock", "converse", False, False, f"global.{HAIKU_4_5}", 15, 12, 7.5e-05),
    Cell("bedrock", "converse_stream", False, True, "amazon.nova-micro-v1:0", 15, 12, 2.205e-06),
    Cell("bedrock", "invoke_model", False, False, "meta.llama3-1-70b-instruct-v1:0", 15, 12, 1.944e-05),
    Cell(
        "bedrock",
        "invoke_model_with_response_stream",
        False,
        True,
        "anthropic.claude-3-5-haiku-20241022-v1:0",
        15,
        12,
        6e-05,
    ),
]


@pytest.fixture(scope="module")
def bedrock_server() -> Iterator[FakeProviderServer]:
    with FakeProviderServer(FakeProvider()) as server:
        yield server


def _call_bedrock(cell: Cell, client: Any) -> None:
    messages = [{"role": "user", "content": [{"text": QUESTION}]}]
    if cell.method == "converse":
        client.converse(modelId=cell.model, messages=messages)
    elif cell.method == "converse_stream":
        events = list(client.converse_stream(modelId=cell.model, messages=messages)["stream"])
        assert list(events[-1]) == ["metadata"]
    elif cell.method == "invoke_model":
        body = client.invoke_model(modelId=cell.model, body=json.dumps({"prompt": QUESTION}))["body"]
        assert json.loads(body.read())["generation"].startswith("This is a fake reply")
    else:
        body = json.dumps({"messages": [{"role": "user", "content": QUESTION}], "max_tokens": 100})
        chunks = list(client.invoke_model_with_response_stream(modelId=cell.model, body=body)["body"])
        assert len(chunks) == 13


@pytest.mark.parametrize("cell", BEDROCK_CELLS, ids=lambda cell: f"{cell}-{cell.model.split('.')[0]}")
def test_bedrock(
    instrumented: Any, telemetry: Telemetry, bedrock_server: FakeProviderServer, cell: Cell
) -> None:
    client = boto3.client(
        "bedrock-runtime",
        region_name="eu-central-1",
        endpoint_url=bedrock_server.base_url,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    _call_bedrock(cell, client)

    attributes = telemetry.only_span().attributes
    assert attributes["gen_ai.provider.name"] == "aws.bedrock"
    assert attributes["cloud.region"] == "eu-central-1"
    assert attributes["gen_ai.usage.input_tokens"] == cell.input_tokens
    assert attributes["gen_ai.usage.output_tokens"] == cell.output_tokens
    assert attributes["gen_ai.usage.cost.amount"] == cell.usd
    assert "tokenbudget.cost.estimated" not in attributes
