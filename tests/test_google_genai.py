"""Gemini calls through the real `google-genai` SDK, replayed from real recorded exchanges (Gemini API
and Vertex AI): exact tokens and exact cost.

Prices (genai-prices 0.2.3, USD per million tokens): gemini-2.5-flash input 0.3, cache read 0.03,
output 2.5 -- the same on the Gemini API and on Vertex AI.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import httpx2
import pytest
from genai_prices import Usage, calc_price
from google import genai
from google.genai import errors, types
from google.oauth2.credentials import Credentials

from opentelemetry_instrumentation_tokenbudget import Budget, BudgetExceededError
from tests.conftest import Telemetry
from tests.recorded import Cassette

MILLION = Decimal(1_000_000)
FLASH = {"input": Decimal("0.3"), "cache_read": Decimal("0.03"), "output": Decimal("2.5")}


def usd(amount: Decimal) -> float:
    return float(amount / MILLION)


def gemini_client(cassette: Cassette, *, vertex: bool = False) -> genai.Client:
    """A real client whose HTTP requests are answered from `cassette`, sync and async alike."""
    http_options = types.HttpOptions(
        api_version="v1beta1" if vertex else "v1beta",
        httpx_client=httpx2.Client(transport=httpx2.MockTransport(cassette.handle)),
        httpx_async_client=httpx2.AsyncClient(transport=httpx2.MockTransport(cassette.handle_async)),
    )
    if vertex:
        return genai.Client(
            vertexai=True,
            project="test-project",
            location="test-location",
            credentials=Credentials(token="test"),  # type: ignore[no-untyped-call]
            http_options=http_options,
        )
    return genai.Client(api_key="test", http_options=http_options)


def recorded_contents(cassette: Cassette, index: int = 0) -> Any:
    request = cassette.recorded_requests[index]
    body = json.loads(request["body"]) if "body" in request else request["parsed_body"]
    return body["contents"]


def test_generate_content_counts_tool_use_prompt_as_input_and_thoughts_as_output(
    instrumented: Any, telemetry: Telemetry
) -> None:
    cassette = Cassette("google_genai/test_validate_token_counts.yaml")

    gemini_client(cassette).models.generate_content(
        model="gemini-2.5-flash", contents=recorded_contents(cassette)
    )

    span = telemetry.only_span()
    assert span.name == "generate_content gemini-2.5-flash"
    attributes = span.attributes
    assert attributes["gen_ai.provider.name"] == "gcp.gemini"
    assert attributes["server.address"] == "generativelanguage.googleapis.com"
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    # promptTokenCount 32 + toolUsePromptTokenCount 720; candidates 341 + thoughts 103.
    assert attributes["gen_ai.usage.input_tokens"] == 752
    assert attributes["gen_ai.usage.output_tokens"] == 444
    assert attributes["gen_ai.usage.reasoning.output_tokens"] == 103
    assert attributes["gen_ai.usage.cost.amount"] == usd(752 * FLASH["input"] + 444 * FLASH["output"])
    assert attributes["gen_ai.usage.cost.amount"] == 0.0013356
    assert "cloud.region" not in attributes
    assert cassette.exhausted


def test_stream_takes_the_last_running_total_never_the_sum(instrumented: Any, telemetry: Telemetry) -> None:
    cassette = Cassette("google_genai/test_validate_token_counts_stream.yaml")

    chunks = list(
        gemini_client(cassette).models.generate_content_stream(
            model="gemini-2.5-flash", contents=recorded_contents(cassette)
        )
    )

    assert len(chunks) == 11  # every chunk reached the caller
    attributes = telemetry.only_span().attributes
    # The chunks' candidatesTokenCount add up to 2,968; the last chunk's running total is 477.
    assert attributes["gen_ai.usage.input_tokens"] == 32 + 764
    assert attributes["gen_ai.usage.output_tokens"] == 477 + 240
    assert attributes["gen_ai.usage.cost.amount"] == 0.0020313
    assert "tokenbudget.cost.estimated" not in attributes


def test_cached_content_is_inside_the_prompt_count(instrumented: Any, telemetry: Telemetry) -> None:
    cassette = Cassette("google_genai/test_google_model_cached_content.yaml")
    client = gemini_client(cassette)
    client.caches.create(model="gemini-2.5-flash", config={"contents": ["Paris"], "ttl": "120s"})

    client.models.generate_content(
        model="gemini-2.5-flash",
        contents="What is the capital of France?",
        config={"cached_content": "cachedContents/7lf5him5ev4iemi1yjv2gwli5bhpz3yidzejwllo"},
    )

    attributes = telemetry.only_span().attributes
    assert attributes["gen_ai.usage.input_tokens"] == 3520
    assert attributes["gen_ai.usage.cache_read.input_tokens"] == 3512
    assert attributes["gen_ai.usage.output_tokens"] == 2 + 42
    # 8 uncached x 0.3 + 3,512 cached x 0.03 + 44 x 2.5 = 217.76 microdollars
    assert attributes["gen_ai.usage.cost.amount"] == 0.00021776
    assert attributes["tokenbudget.cost.cache_read"] == usd(3512 * FLASH["cache_read"])


def test_chat_counts_each_message_once(instrumented: Any, telemetry: Telemetry) -> None:
    cassette = Cassette("google_genai/test_caching_multi_turn_conversation.yaml")
    chat = gemini_client(cassette).chats.create(model="gemini-2.5-flash")

    for index in range(3):
        chat.send_message(recorded_contents(cassette, index)[-1]["parts"][0]["text"])

    costs = [span.attributes["gen_ai.usage.cost.amount"] for span in telemetry.our_spans()]
    # 742 x 0.3 + 3,055 cached x 0.03 + (656 + 1,549) x 2.5; then 4,464 and 4,610 uncached.
    assert costs == [0.00582675, 0.0040767, 0.004113]
    assert cassette.exhausted


def test_vertex_ai_plain(instrumented: Any, telemetry: Telemetry) -> None:
    cassette = Cassette("google_genai/vertex_test_non_streaming.yaml")

    gemini_client(cassette, vertex=True).models.generate_content(
        model="gemini-2.5-flash", contents=recorded_contents(cassette)
    )

    attributes = telemetry.only_span().attributes
    assert attributes["gen_ai.provider.name"] == "gcp.vertex_ai"
    assert attributes["cloud.region"] == "test-location"
    assert attributes["server.address"] == "test-location-aiplatform.googleapis.com"
    assert attributes["gen_ai.usage.input_tokens"] == 8
    assert attributes["gen_ai.usage.output_tokens"] == 433 + 1477
    assert attributes["gen_ai.usage.cost.amount"] == usd(8 * FLASH["input"] + 1910 * FLASH["output"])
    assert attributes["gen_ai.usage.cost.amount"] == 0.0047774


def test_vertex_ai_async_stream_has_its_counts_in_the_last_chunk_only(
    instrumented: Any, telemetry: Telemetry
) -> None:
    cassette = Cassette("google_genai/vertex_test_streaming.yaml")
    client = gemini_client(cassette, vertex=True)

    async def read() -> int:
        stream = await client.aio.models.generate_content_stream(
            model="gemini-2.5-flash", contents=recorded_contents(cassette)
        )
        return len([chunk async for chunk in stream])

    assert asyncio.run(read()) == 6
    attributes = telemetry.only_span().attributes
    assert attributes["gen_ai.usage.input_tokens"] == 8
    assert attributes["gen_ai.usage.output_tokens"] == 388 + 2193
    assert attributes["gen_ai.usage.cost.amount"] == 0.0064549
    assert "tokenbudget.cost.estimated" not in attributes


def test_async_generate_content(instrumented: Any, telemetry: Telemetry) -> None:
    cassette = Cassette("google_genai/test_validate_token_counts.yaml")
    client = gemini_client(cassette)

    asyncio.run(
        client.aio.models.generate_content(model="gemini-2.5-flash", contents=recorded_contents(cassette))
    )

    assert telemetry.only_span().attributes["gen_ai.usage.cost.amount"] == 0.0013356


def test_async_stream_from_the_gemini_api(instrumented: Any, telemetry: Telemetry) -> None:
    cassette = Cassette("google_genai/test_streaming_reasoning_with_multiple_tool_calls.yaml")
    client = gemini_client(cassette)

    async def read() -> None:
        stream = await client.aio.models.generate_content_stream(
            model="gemini-3.5-flash", contents=recorded_contents(cassette)
        )
        async for _ in stream:
            pass

    asyncio.run(read())
    attributes = telemetry.only_span().attributes
    assert attributes["gen_ai.usage.input_tokens"] == 71
    assert attributes["gen_ai.usage.output_tokens"] == 33 + 93


def test_provider_error_passes_through_unchanged(instrumented: Any, telemetry: Telemetry) -> None:
    cassette = Cassette("google_genai/test_authentication_error.yaml")

    with pytest.raises(errors.ClientError) as raised:
        gemini_client(cassette).models.generate_content(
            model="gemini-2.5-flash", contents="This should fail with AuthenticationError"
        )

    assert raised.value.code == 400
    span = telemetry.only_span()
    assert span.attributes["error.type"] == "ClientError"
    assert "gen_ai.usage.cost.amount" not in span.attributes


def test_hard_budget_stops_a_chat_loop_before_the_request_leaves(
    instrument: Any, telemetry: Telemetry
) -> None:
    instrument(budgets=[Budget("gemini", limit_usd=Decimal("0.005"), window="day")])
    cassette = Cassette("google_genai/test_caching_multi_turn_conversation.yaml")
    chat = gemini_client(cassette).chats.create(model="gemini-2.5-flash")

    def send(index: int) -> None:
        chat.send_message(recorded_contents(cassette, index)[-1]["parts"][0]["text"])

    send(0)
    # The first message cost 0.00582675, past the 0.005: the second is refused before it is sent.
    with pytest.raises(BudgetExceededError):
        send(1)

    assert len(cassette.requests) == 1
    assert [span.attributes["gen_ai.usage.cost.amount"] for span in telemetry.our_spans()] == [0.00582675]


def test_stream_left_early_still_ends_its_call_estimated(instrumented: Any, telemetry: Telemetry) -> None:
    cassette = Cassette("google_genai/test_validate_token_counts_stream.yaml")
    stream = gemini_client(cassette).models.generate_content_stream(
        model="gemini-2.5-flash", contents=recorded_contents(cassette)
    )

    for _ in stream:
        break
    stream.close()

    attributes = telemetry.only_span().attributes
    # The first chunk's running totals: prompt 32, candidates 22 + thoughts 240 so far.
    assert attributes["gen_ai.usage.input_tokens"] == 32
    assert attributes["gen_ai.usage.output_tokens"] == 262
    assert attributes["tokenbudget.cost.estimated"] is True


def _answer(body: dict[str, Any]) -> genai.Client:
    def handle(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, json=body)

    http_options = types.HttpOptions(httpx_client=httpx2.Client(transport=httpx2.MockTransport(handle)))
    return genai.Client(api_key="test", http_options=http_options)


def test_audio_input_and_google_search_grounding_are_priced_at_their_own_rates(
    instrumented: Any, telemetry: Telemetry
) -> None:
    # A voice question answered with Google Search: 900 of the 1,000 prompt tokens are audio.
    body = {
        "candidates": [
            {
                "content": {"parts": [{"text": "ok"}], "role": "model"},
                "finishReason": "STOP",
                "groundingMetadata": {"webSearchQueries": ["weather paris", "paris forecast"]},
            }
        ],
        "usageMetadata": {
            "promptTokenCount": 1000,
            "candidatesTokenCount": 200,
            "totalTokenCount": 1200,
            "promptTokensDetails": [
                {"modality": "TEXT", "tokenCount": 100},
                {"modality": "AUDIO", "tokenCount": 900},
            ],
            "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": 200}],
        },
        "modelVersion": "gemini-2.5-flash",
        "responseId": "r1",
    }
    _answer(body).models.generate_content(model="gemini-2.5-flash", contents="(audio)")

    attributes = telemetry.only_span().attributes
    assert attributes["gen_ai.usage.input_tokens"] == 1000
    assert attributes["gen_ai.usage.audio.input_tokens"] == 900
    assert attributes["tokenbudget.usage.web_searches"] == 1
    # Text 100 x 0.30 + audio 900 x 1.00 + output 200 x 2.50 per million, and one grounded prompt at
    # $35 per thousand: 30 + 900 + 500 + 35,000 microdollars.
    assert attributes["gen_ai.usage.cost.amount"] == 0.03643
    expected = calc_price(
        Usage(input_tokens=1000, input_audio_tokens=900, output_tokens=200, web_searches=1),
        "gemini-2.5-flash",
        provider_id="google",
    )
    assert float(expected.total_price) == 0.03643


def test_a_stream_grounded_in_its_last_chunk_counts_one_search(
    instrumented: Any, telemetry: Telemetry
) -> None:
    first = {
        "candidates": [{"content": {"parts": [{"text": "o"}], "role": "model"}}],
        "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 1, "totalTokenCount": 11},
        "modelVersion": "gemini-2.5-flash",
    }
    last = {
        "candidates": [
            {
                "content": {"parts": [{"text": "k"}], "role": "model"},
                "finishReason": "STOP",
                "groundingMetadata": {"webSearchQueries": ["q"]},
            }
        ],
        "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 2, "totalTokenCount": 12},
        "modelVersion": "gemini-2.5-flash",
    }
    lines = "".join(f"data: {json.dumps(chunk)}\r\n\r\n" for chunk in (first, last))

    def handle(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=lines, headers={"content-type": "text/event-stream"})

    http_options = types.HttpOptions(httpx_client=httpx2.Client(transport=httpx2.MockTransport(handle)))
    client = genai.Client(api_key="test", http_options=http_options)
    text = "".join(
        chunk.text or ""
        for chunk in client.models.generate_content_stream(model="gemini-2.5-flash", contents="q")
    )

    assert text == "ok"
    attributes = telemetry.only_span().attributes
    assert attributes["tokenbudget.usage.web_searches"] == 1
    # 10 x 0.30 + 2 x 2.50 per million + $0.035: 3 + 5 + 35,000 microdollars.
    assert attributes["gen_ai.usage.cost.amount"] == 0.035008
