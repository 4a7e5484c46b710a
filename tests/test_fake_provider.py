"""The fake provider, through the real OpenAI and Anthropic SDKs: in process and over loopback HTTP."""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
import time
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from opentelemetry_instrumentation_tokenbudget.testing import (
    CUT_STREAM_AFTER,
    PLACEHOLDER_OUTPUT_TOKENS,
    FakeProvider,
    FakeProviderServer,
    ahandle,
    anthropic_input,
    canned_reply,
    chat_prompt_tokens,
    count_tokens,
    handle,
    is_reasoning_model,
    message_tokens,
    openai_cached_tokens,
    prompt_tokens,
    responses_input_tokens,
)

USER = "Say this is a test"
REPLY = "This is a fake reply to: Say this is a test"
REPLY_WORDS = 11
PROMPT = 8  # ceil(18 / 4) + 3 framing tokens
MESSAGES = [{"role": "user", "content": USER}]
CLAUDE = "claude-haiku-4-5"
EMBEDDER = "text-embedding-3-small"
INCLUDE_USAGE = {"include_usage": True}
LONG_TEXT = "The quick brown fox jumps over the lazy dog. " * 60  # 2700 characters


def openai_client(provider: FakeProvider, *, max_retries: int = 0) -> openai.OpenAI:
    http = httpx2.Client(transport=provider.transport())
    return openai.OpenAI(api_key="test", base_url="http://fake/v1", http_client=http, max_retries=max_retries)


def anthropic_client(provider: FakeProvider) -> anthropic.Anthropic:
    http = httpx2.Client(transport=provider.transport())
    return anthropic.Anthropic(api_key="test", base_url="http://fake", http_client=http, max_retries=0)


def raw_post(provider: FakeProvider, path: str, body: dict[str, Any]) -> httpx2.Response:
    with httpx2.Client(transport=provider.transport()) as client:
        return client.post("http://fake" + path, json=body)


def sse(response: httpx2.Response) -> list[tuple[str | None, Any]]:
    """(event name, decoded data) of each server-sent event; ``[DONE]`` stays a string."""
    events: list[tuple[str | None, Any]] = []
    for block in response.text.split("\n\n"):
        if not block.strip():
            continue
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        data = fields["data"]
        events.append((fields.get("event"), data if data == "[DONE]" else json.loads(data)))
    return events


def split(usage: anthropic.types.Usage) -> tuple[int, int | None, int | None]:
    """Anthropic's three-way split of input tokens: uncached, written to the cache, read from it."""
    return usage.input_tokens, usage.cache_creation_input_tokens, usage.cache_read_input_tokens


@pytest.fixture
def provider() -> FakeProvider:
    return FakeProvider()


# --- the token formula ------------------------------------------------------------------------------


def test_token_formula_in_numbers():
    assert [count_tokens(text) for text in ("", "abcd", "abcde", USER)] == [0, 1, 2, 5]
    assert message_tokens(USER) == PROMPT
    assert message_tokens(["abcd", "abcde"]) == 3 + 1 + 2
    assert prompt_tokens([USER, ["abcd", "abcde"]]) == PROMPT + 6
    assert canned_reply(USER) == REPLY
    assert canned_reply("1 2 3 4 5 6 7 8") == "This is a fake reply to: 1 2 3 4 5 6"
    assert canned_reply("   ") == "This is a fake reply."
    # The real API's 1370-token prompt reported 1280 cached tokens.
    assert [openai_cached_tokens(n) for n in (0, 191, 192, 1370)] == [0, 0, 128, 1280]
    assert all(is_reasoning_model(m) for m in ("o1", "o3-mini", "o4-mini", "gpt-5", "gpt-5.4-mini"))
    assert not any(is_reasoning_model(m) for m in ("gpt-4o", "gpt-4.1", "omni-moderation-latest"))
    assert chat_prompt_tokens({"messages": [{"role": "system", "content": "abcd"}, *MESSAGES]}) == 4 + PROMPT


# --- OpenAI chat completions ------------------------------------------------------------------------


def test_chat_completion_shape_and_usage(provider):
    raw = openai_client(provider).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES, n=2
    )
    completion = raw.parse()
    assert raw.headers["content-type"] == "application/json"
    assert raw.headers["x-request-id"].startswith("req_")
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.created == 1_760_000_000
    assert completion.model == "gpt-4o-mini"
    assert [(c.index, c.message.content, c.finish_reason) for c in completion.choices] == [
        (0, REPLY, "stop"),
        (1, REPLY, "stop"),
    ]
    usage = completion.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (8, 22, 30)
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 0
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 0


def test_chat_stream_without_include_usage_has_no_usage_at_all(provider):
    client = openai_client(provider)
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    assert len(chunks) == 1 + REPLY_WORDS + 1
    assert all(chunk.usage is None and len(chunk.choices) == 1 for chunk in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks) == REPLY
    assert chunks[-1].choices[0].finish_reason == "stop"

    body = {"model": "gpt-4o", "messages": MESSAGES, "stream": True}
    response = raw_post(provider, "/v1/chat/completions", body)
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse(response)
    assert events[-1] == (None, "[DONE]")
    assert all("usage" not in data for _, data in events[:-1])


def test_chat_stream_with_include_usage_ends_with_a_usage_only_chunk(provider):
    body = {"model": "gpt-4o", "messages": MESSAGES, "stream": True, "stream_options": INCLUDE_USAGE}
    events = sse(raw_post(provider, "/v1/chat/completions", body))
    payloads = [data for _, data in events[:-1]]
    assert len(payloads) == 1 + REPLY_WORDS + 1 + 1  # role, words, finish, usage
    assert events[-1][1] == "[DONE]"
    assert all(payload["usage"] is None and len(payload["choices"]) == 1 for payload in payloads[:-1])
    assert payloads[-1]["choices"] == []
    assert payloads[-1]["usage"]["prompt_tokens"] == PROMPT
    assert payloads[-1]["usage"]["completion_tokens"] == REPLY_WORDS

    stream = openai_client(provider).chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    last = list(stream)[-1]
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.total_tokens) == (8, 11, 19)


@pytest.mark.parametrize("limit_name", ["max_tokens", "max_completion_tokens"])
def test_chat_token_limit_truncates_with_finish_reason_length(provider, limit_name):
    completion = openai_client(provider).chat.completions.create(
        model="gpt-4o", messages=MESSAGES, **{limit_name: 4}
    )
    assert completion.choices[0].message.content == "This is a fake"
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 4


def test_reasoning_model_counts_reasoning_inside_completion_tokens(provider):
    client = openai_client(provider)
    full = client.chat.completions.create(model="o4-mini", messages=MESSAGES)
    assert full.usage is not None
    assert full.usage.completion_tokens_details is not None
    assert full.usage.completion_tokens_details.reasoning_tokens == 2 * REPLY_WORDS
    assert full.usage.completion_tokens == 3 * REPLY_WORDS
    assert full.choices[0].message.content == REPLY

    # The limit covers reasoning too: 10 tokens buy 3 visible words and their 6 reasoning tokens.
    cut = client.chat.completions.create(model="gpt-5", messages=MESSAGES, max_completion_tokens=10)
    assert cut.choices[0].message.content == "This is a"
    assert cut.choices[0].finish_reason == "length"
    assert cut.usage is not None
    assert cut.usage.completion_tokens_details is not None
    assert (cut.usage.completion_tokens, cut.usage.completion_tokens_details.reasoning_tokens) == (9, 6)


def test_openai_prompt_cache_by_key_per_provider_instance(provider):
    messages = [{"role": "user", "content": LONG_TEXT}]
    prompt = message_tokens(LONG_TEXT)
    assert prompt == 678
    client = openai_client(provider)

    def cached(**options: Any) -> tuple[int, int]:
        usage = client.chat.completions.create(model="gpt-4o-mini", messages=messages, **options).usage
        assert usage is not None
        assert usage.prompt_tokens_details is not None
        assert usage.prompt_tokens_details.cached_tokens is not None
        return usage.prompt_tokens, usage.prompt_tokens_details.cached_tokens

    assert cached(prompt_cache_key="k1") == (678, 0)
    assert cached(prompt_cache_key="k1") == (678, 512)
    assert cached(prompt_cache_key="k1") == (678, 512)
    assert cached(prompt_cache_key="k2") == (678, 0)
    assert cached() == (678, 0)
    # The Responses API shares the key space, as the provider's cache does.
    response = client.responses.create(model="gpt-4o-mini", input=LONG_TEXT, prompt_cache_key="k2")
    assert response.usage is not None
    assert response.usage.input_tokens_details.cached_tokens == openai_cached_tokens(prompt) == 512
    # The state belongs to the instance.
    other = openai_client(FakeProvider()).chat.completions.create(
        model="gpt-4o-mini", messages=messages, prompt_cache_key="k1"
    )
    assert other.usage is not None
    assert other.usage.prompt_tokens_details is not None
    assert other.usage.prompt_tokens_details.cached_tokens == 0


def test_stream_options_without_stream_is_refused_like_the_real_api(provider):
    with pytest.raises(openai.BadRequestError) as caught:
        openai_client(provider).chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream_options={"include_usage": True}
        )
    assert caught.value.param == "stream_options"


# --- OpenAI legacy completions and embeddings ---------------------------------------------------------


def test_legacy_completion_with_and_without_stream(provider):
    client = openai_client(provider)
    completion = client.completions.create(model="gpt-3.5-turbo-instruct", prompt=USER)
    assert completion.object == "text_completion"
    assert completion.choices[0].text == REPLY
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (5, REPLY_WORDS)

    quiet = list(client.completions.create(model="gpt-3.5-turbo-instruct", prompt=USER, stream=True))
    assert all(chunk.usage is None and len(chunk.choices) == 1 for chunk in quiet)
    assert "".join(chunk.choices[0].text for chunk in quiet) == REPLY

    loud = list(
        client.completions.create(
            model="gpt-3.5-turbo-instruct", prompt=USER, stream=True, stream_options={"include_usage": True}
        )
    )
    assert len(loud) == REPLY_WORDS + 1 + 1  # words, finish, usage
    assert loud[-1].choices == []
    assert loud[-1].usage is not None
    assert loud[-1].usage.total_tokens == 5 + REPLY_WORDS
    assert all(chunk.usage is None for chunk in loud[:-1])


def test_legacy_completion_stops_at_16_tokens_by_default():
    long_reply = " ".join(f"w{i}" for i in range(20))
    completion = openai_client(FakeProvider(reply=long_reply)).completions.create(
        model="gpt-3.5-turbo-instruct", prompt=USER
    )
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 16


def test_embeddings_usage_and_vectors(provider):
    client = openai_client(provider)
    texts = ["hello world", "a much longer sentence to embed"]
    batch = client.embeddings.create(model="text-embedding-3-small", input=texts)
    assert batch.usage.prompt_tokens == sum(count_tokens(text) for text in texts) == 3 + 8
    assert batch.usage.total_tokens == 3 + 8
    assert [item.index for item in batch.data] == [0, 1]
    assert len(batch.data[0].embedding) == 1536
    assert math.isclose(sum(v * v for v in batch.data[0].embedding), 1.0, rel_tol=1e-5)
    # The SDK asked for base64 (its default); the float form decodes to the same float32 vector.
    as_floats = client.embeddings.create(model=EMBEDDER, input=texts[0], encoding_format="float")
    assert as_floats.usage.prompt_tokens == 3
    assert as_floats.data[0].embedding == pytest.approx(batch.data[0].embedding, abs=1e-7)
    assert as_floats.data[0].embedding != batch.data[1].embedding
    short = client.embeddings.create(model="text-embedding-3-large", input=[[1, 2, 3, 4, 5]], dimensions=8)
    assert (len(short.data[0].embedding), short.usage.prompt_tokens) == (8, 5)


# --- OpenAI Responses API ----------------------------------------------------------------------------


def test_response_shape_and_usage(provider):
    client = openai_client(provider)
    response = client.responses.create(model="gpt-4o-mini", input=USER, instructions="Be brief.")
    assert responses_input_tokens({"input": USER, "instructions": "Be brief."}) == PROMPT + 6
    assert (response.object, response.status, response.output_text) == ("response", "completed", REPLY)
    assert response.usage is not None
    assert response.usage.input_tokens == PROMPT + 6
    assert response.usage.output_tokens == REPLY_WORDS
    assert response.usage.total_tokens == PROMPT + 6 + REPLY_WORDS
    assert response.usage.output_tokens_details.reasoning_tokens == 0

    reasoning = client.responses.create(model="o3", input=MESSAGES, max_output_tokens=9)
    assert [item.type for item in reasoning.output] == ["reasoning", "message"]
    assert (reasoning.status, reasoning.output_text) == ("incomplete", "This is a")
    assert reasoning.incomplete_details is not None
    assert reasoning.incomplete_details.reason == "max_output_tokens"
    assert reasoning.usage is not None
    assert (reasoning.usage.output_tokens, reasoning.usage.output_tokens_details.reasoning_tokens) == (9, 6)
    assert client.responses.input_tokens.count(model="gpt-4o", input=USER).input_tokens == PROMPT


def test_response_stream_event_sequence_and_usage_only_at_the_end(provider):
    body = {"model": "gpt-4o-mini", "input": USER, "stream": True}
    events = sse(raw_post(provider, "/v1/responses", body))
    kinds = [name for name, _ in events]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * REPLY_WORDS,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [data["type"] for _, data in events] == kinds
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    with_usage = [name for name, data in events if (data.get("response") or {}).get("usage") is not None]
    assert with_usage == ["response.completed"]
    assert events[-1][1]["response"]["usage"]["output_tokens"] == REPLY_WORDS

    with openai_client(provider).responses.stream(model="o1", input=USER) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[2:4] == ["response.output_item.added", "response.output_item.done"]  # the reasoning item
    assert final.output_text == REPLY
    assert final.usage is not None
    assert (final.usage.input_tokens, final.usage.output_tokens) == (PROMPT, 3 * REPLY_WORDS)


# --- Anthropic ---------------------------------------------------------------------------------------


def test_anthropic_message_shape_and_usage(provider):
    client = anthropic_client(provider)
    raw = client.messages.with_raw_response.create(model=CLAUDE, max_tokens=100, messages=MESSAGES)
    message = raw.parse()
    assert raw.headers["request-id"].startswith("req_")
    assert (message.type, message.role, message.stop_reason) == ("message", "assistant", "end_turn")
    assert message.id.startswith("msg_01")
    assert message.content[0].type == "text"
    assert message.content[0].text == REPLY
    usage = message.usage
    assert (usage.input_tokens, usage.output_tokens) == (PROMPT, REPLY_WORDS)
    assert (usage.cache_creation_input_tokens, usage.cache_read_input_tokens) == (0, 0)

    cut = client.messages.create(model=CLAUDE, max_tokens=3, messages=MESSAGES, system="Be brief.")
    assert (cut.stop_reason, cut.usage.output_tokens, cut.usage.input_tokens) == ("max_tokens", 3, PROMPT + 6)
    assert cut.content[0].type == "text"
    assert cut.content[0].text == "This is a"

    beta = client.beta.messages.create(model=CLAUDE, max_tokens=100, messages=MESSAGES)
    assert beta.usage.output_tokens == REPLY_WORDS
    assert provider.requests[-1].path == "/v1/messages"
    assert client.messages.count_tokens(model=CLAUDE, messages=MESSAGES).input_tokens == PROMPT


def test_anthropic_stream_placeholder_then_cumulative_output_tokens(provider):
    body = {"model": CLAUDE, "max_tokens": 100, "messages": MESSAGES, "stream": True}
    events = sse(raw_post(provider, "/v1/messages", body))
    assert [name for name, _ in events] == [
        "message_start",
        "content_block_start",
        "ping",
        *["content_block_delta"] * REPLY_WORDS,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start_usage = events[0][1]["message"]["usage"]
    assert (start_usage["input_tokens"], start_usage["output_tokens"]) == (PROMPT, PLACEHOLDER_OUTPUT_TOKENS)
    assert PLACEHOLDER_OUTPUT_TOKENS != REPLY_WORDS
    assert events[-2][1]["usage"] == {"output_tokens": REPLY_WORDS}
    assert events[-2][1]["delta"]["stop_reason"] == "end_turn"

    client = anthropic_client(provider)
    with client.messages.stream(model=CLAUDE, max_tokens=100, messages=MESSAGES) as stream:
        assert stream.get_final_text() == REPLY
        final = stream.get_final_message()
    assert (final.usage.input_tokens, final.usage.output_tokens) == (PROMPT, REPLY_WORDS)


def test_anthropic_prompt_cache_writes_then_reads_the_prefix(provider):
    system = [{"type": "text", "text": LONG_TEXT, "cache_control": {"type": "ephemeral"}}]
    body = {"model": CLAUDE, "max_tokens": 50, "system": system, "messages": MESSAGES}
    counted = anthropic_input(body)
    assert (counted.total, counted.cacheable) == (678 + PROMPT, 678)
    client = anthropic_client(provider)

    first = client.messages.create(**body).usage
    assert split(first) == (8, 678, 0)
    assert first.cache_creation is not None
    assert first.cache_creation.ephemeral_5m_input_tokens == 678
    assert split(client.messages.create(**body).usage) == (8, 0, 678)
    # What follows the breakpoint is not part of the cached prefix.
    other_question = {**body, "messages": [{"role": "user", "content": "Other?"}]}
    assert split(client.messages.create(**other_question).usage) == (message_tokens("Other?"), 0, 678)
    assert client.messages.count_tokens(model=CLAUDE, system=system, messages=MESSAGES).input_tokens == 686

    hour = [{**system[0], "text": "x" * 400, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    long_lived = client.messages.create(**{**body, "system": hour}).usage
    assert long_lived.cache_creation is not None
    assert long_lived.cache_creation.ephemeral_1h_input_tokens == 103
    assert split(long_lived) == (8, 103, 0)


# --- errors, cut streams, determinism ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "openai_error", "anthropic_error", "status"),
    [
        ("fail-429", openai.RateLimitError, anthropic.RateLimitError, 429),
        ("fail-500", openai.InternalServerError, anthropic.InternalServerError, 500),
        ("fail-400", openai.BadRequestError, anthropic.BadRequestError, 400),
    ],
)
def test_failing_models_raise_the_sdks_own_errors(provider, model, openai_error, anthropic_error, status):
    with pytest.raises(openai_error) as from_openai:
        openai_client(provider).chat.completions.create(model=model, messages=MESSAGES)
    assert from_openai.value.status_code == status
    assert from_openai.value.request_id is not None
    assert set(from_openai.value.body) == {"message", "type", "param", "code"}  # the SDK unwraps "error"
    with pytest.raises(anthropic_error) as from_anthropic:
        anthropic_client(provider).messages.create(model=model, max_tokens=10, messages=MESSAGES)
    assert from_anthropic.value.status_code == status
    assert from_anthropic.value.body["type"] == "error"
    expected_retry_after = "0" if status == 429 else None
    assert from_openai.value.response.headers.get("retry-after") == expected_retry_after
    assert from_anthropic.value.response.headers.get("retry-after") == expected_retry_after


def test_rate_limited_requests_are_retried_by_the_sdk():
    provider = FakeProvider(retry_after="0.001")
    client = openai_client(provider, max_retries=2)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="fail-429", messages=MESSAGES)
    assert [seen.body["model"] for seen in provider.requests] == ["fail-429"] * 3


def test_cut_stream_ends_after_three_text_chunks_without_usage(provider):
    stream = openai_client(provider).chat.completions.create(
        model="cut-stream", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert [chunk.choices[0].delta.content for chunk in chunks] == ["", "This", " is", " a"]
    assert all(chunk.usage is None and chunk.choices[0].finish_reason is None for chunk in chunks)
    assert CUT_STREAM_AFTER == 3

    body = {"model": "cut-stream", "messages": MESSAGES, "stream": True}
    assert b"[DONE]" not in raw_post(provider, "/v1/chat/completions", body).content
    responses = [name for name, _ in sse(raw_post(provider, "/v1/responses", {**body, "input": USER}))]
    assert responses[-3:] == ["response.output_text.delta"] * 3
    assert "response.completed" not in responses
    messages = [name for name, _ in sse(raw_post(provider, "/v1/messages", {**body, "max_tokens": 50}))]
    assert messages == ["message_start", "content_block_start", "ping", *["content_block_delta"] * 3]


def test_same_request_same_bytes_and_unknown_routes(provider):
    body = {"model": "gpt-4o", "messages": MESSAGES, "stream": True}
    first = raw_post(FakeProvider(), "/v1/chat/completions", body)
    again = raw_post(FakeProvider(), "/v1/chat/completions", body)
    assert first.content == again.content
    assert first.headers["x-request-id"] == again.headers["x-request-id"]
    assert all(data["created"] == 1_760_000_000 for _, data in sse(first)[:-1])

    missing = raw_post(provider, "/v1/nothing", body)
    assert (missing.status_code, missing.json()["error"]["type"]) == (404, "invalid_request_error")
    with httpx2.Client(transport=provider.transport()) as client:
        broken = client.post("http://fake/v1/messages", content=b"{not json")
    assert (broken.status_code, broken.json()["error"]["type"]) == (400, "invalid_request_error")
    no_limit = raw_post(provider, "/v1/messages", {"model": CLAUDE, "messages": MESSAGES})
    assert no_limit.json()["error"]["message"] == "max_tokens: Field required"


# --- async, the module-level handler, latency ---------------------------------------------------------


async def test_async_clients_with_the_async_handler():
    http = httpx2.AsyncClient(transport=httpx2.MockTransport(ahandle))
    client = openai.AsyncOpenAI(api_key="test", base_url="http://fake/v1", http_client=http, max_retries=0)
    stream = await client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == REPLY_WORDS

    http = httpx2.AsyncClient(transport=httpx2.MockTransport(handle))
    claude = anthropic.AsyncAnthropic(api_key="test", base_url="http://fake", http_client=http, max_retries=0)
    async with claude.messages.stream(model=CLAUDE, max_tokens=100, messages=MESSAGES) as events:
        final = await events.get_final_message()
    assert (final.usage.input_tokens, final.usage.output_tokens) == (PROMPT, REPLY_WORDS)


async def test_async_latency_does_not_block_the_event_loop():
    provider = FakeProvider(delay_s=0.02)
    http = httpx2.AsyncClient(transport=provider.transport())
    client = openai.AsyncOpenAI(api_key="test", base_url="http://fake/v1", http_client=http, max_retries=0)

    async def one() -> int:
        stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
        return len([chunk async for chunk in stream])

    started = time.monotonic()
    counts = await asyncio.gather(one(), one(), one())
    elapsed = time.monotonic() - started
    events_per_stream = 1 + REPLY_WORDS + 1 + 1  # role, words, finish, [DONE]
    assert counts == [events_per_stream - 1] * 3
    assert 0.02 * events_per_stream <= elapsed < 2 * 0.02 * events_per_stream


def test_sync_latency_per_chunk():
    provider = FakeProvider(delay_s=0.01)
    started = time.monotonic()
    list(openai_client(provider).chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    assert time.monotonic() - started >= 0.01 * (REPLY_WORDS + 3)


# --- over real HTTP ----------------------------------------------------------------------------------


def test_server_sync_clients_over_loopback():
    provider = FakeProvider()
    with FakeProviderServer(provider) as server:
        assert server.base_url_openai == f"http://127.0.0.1:{server.port}/v1"
        assert server.base_url_anthropic == f"http://127.0.0.1:{server.port}"
        client = openai.OpenAI(api_key="test", base_url=server.base_url_openai, max_retries=0)
        completion = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert completion.usage is not None
        assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (PROMPT, REPLY_WORDS)
        cut = list(client.chat.completions.create(model="cut-stream", messages=MESSAGES, stream=True))
        assert len(cut) == 1 + CUT_STREAM_AFTER

        claude = anthropic.Anthropic(api_key="test", base_url=server.base_url_anthropic, max_retries=0)
        with claude.messages.stream(model=CLAUDE, max_tokens=100, messages=MESSAGES) as stream:
            assert stream.get_final_message().usage.output_tokens == REPLY_WORDS
        with pytest.raises(anthropic.RateLimitError):
            claude.messages.create(model="fail-429", max_tokens=10, messages=MESSAGES)
        port = server.port
    assert [seen.path for seen in provider.requests] == ["/v1/chat/completions"] * 2 + ["/v1/messages"] * 2
    with pytest.raises(httpx2.ConnectError):
        httpx2.post(f"http://127.0.0.1:{port}/v1/chat/completions", json={})


async def test_server_async_clients_over_loopback():
    with FakeProviderServer(FakeProvider(delay_s=0.001)) as server:
        client = openai.AsyncOpenAI(api_key="test", base_url=server.base_url_openai, max_retries=0)
        stream = await client.responses.create(model="gpt-4o-mini", input=USER, stream=True)
        events = [event async for event in stream]
        assert events[-1].type == "response.completed"
        assert events[-1].response.usage is not None
        assert events[-1].response.usage.output_tokens == REPLY_WORDS

        claude = anthropic.AsyncAnthropic(api_key="test", base_url=server.base_url_anthropic, max_retries=0)
        message = await claude.messages.create(model=CLAUDE, max_tokens=100, messages=MESSAGES)
        assert message.usage.output_tokens == REPLY_WORDS


def test_server_runs_as_a_module():
    module = "opentelemetry_instrumentation_tokenbudget.testing.fake_server"
    command = [sys.executable, "-m", module, "--port", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        first_line = process.stdout.readline()
        base_url = first_line.split()[-1]
        assert base_url.startswith("http://127.0.0.1:")
        assert base_url.endswith("/v1")
        client = openai.OpenAI(api_key="test", base_url=base_url, max_retries=0)
        embedding = client.embeddings.create(model="text-embedding-3-small", input=USER)
        assert embedding.usage.prompt_tokens == 5
    finally:
        process.terminate()
        process.wait(timeout=10)
