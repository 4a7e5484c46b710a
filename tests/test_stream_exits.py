"""Every way a stream can end ends its span exactly once, for both providers, sync and async."""

from __future__ import annotations

import gc
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anthropic
import httpx2
import openai
import pytest
import yaml

from tests.conftest import Telemetry
from tests.recorded import CASSETTES

STREAMS = {
    "openai": ("openai/test_chat_completion_streaming.yaml", 0.00066),
    "anthropic": ("anthropic/test_anthropic_message_streaming_legacy.yaml", 0.000218),
}


class _RecordedEvents:
    """The recorded SSE body, event by event, optionally failing after `fail_after` events."""

    def __init__(self, provider: str, fail_after: int | None = None) -> None:
        interaction = yaml.safe_load((CASSETTES / STREAMS[provider][0]).read_text())["interactions"][0]
        body: str = interaction["response"]["body"]["string"]
        self.request: dict[str, Any] = json.loads(interaction["request"]["body"])
        self.events = [event + "\n\n" for event in body.split("\n\n") if event.strip()]
        self.fail_after = fail_after

    def chunks(self) -> Iterator[bytes]:
        for index, event in enumerate(self.events):
            if self.fail_after is not None and index == self.fail_after:
                raise httpx2.ReadError("connection reset by peer")
            yield event.encode()


class _SyncBody(httpx2.SyncByteStream):
    def __init__(self, events: _RecordedEvents) -> None:
        self._events = events

    def __iter__(self) -> Iterator[bytes]:
        return self._events.chunks()


class _AsyncBody(httpx2.AsyncByteStream):
    def __init__(self, events: _RecordedEvents) -> None:
        self._events = events

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._events.chunks():
            yield chunk


def _client(provider: str, events: _RecordedEvents, is_async: bool) -> Any:
    headers = {"content-type": "text/event-stream"}
    if is_async:

        async def handle_async(request: httpx2.Request) -> httpx2.Response:
            return httpx2.Response(200, headers=headers, stream=_AsyncBody(events))

        http_async = httpx2.AsyncClient(transport=httpx2.MockTransport(handle_async))
        if provider == "openai":
            return openai.AsyncOpenAI(
                api_key="k", base_url="https://api.openai.com/v1", http_client=http_async
            )
        return anthropic.AsyncAnthropic(
            api_key="k", base_url="https://api.anthropic.com", http_client=http_async
        )

    def handle(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers=headers, stream=_SyncBody(events))

    http = httpx2.Client(transport=httpx2.MockTransport(handle))
    if provider == "openai":
        return openai.OpenAI(
            api_key="k", base_url="https://api.openai.com/v1", http_client=http, max_retries=0
        )
    return anthropic.Anthropic(
        api_key="k", base_url="https://api.anthropic.com", http_client=http, max_retries=0
    )


def _connection_error(provider: str) -> type[Exception]:
    # OpenAI's SDK turns a transport error mid-stream into its APIConnectionError; Anthropic's lets the
    # transport's own error through. Either way the user must get exactly what the SDK raised.
    return openai.APIConnectionError if provider == "openai" else httpx2.ReadError


def _create(client: Any, provider: str, request: dict[str, Any]) -> Any:
    if provider == "openai":
        return client.chat.completions.create(**request)
    return client.messages.create(**request)


PROVIDERS = pytest.mark.parametrize("provider", ["openai", "anthropic"])


@PROVIDERS
def test_exhausted(instrumented: Any, telemetry: Telemetry, provider: str) -> None:
    events = _RecordedEvents(provider)
    stream = _create(_client(provider, events, False), provider, events.request)
    for _ in stream:
        pass
    stream.close()

    attributes = telemetry.only_span().attributes
    assert attributes["gen_ai.usage.cost.amount"] == STREAMS[provider][1]
    assert "tokenbudget.cost.estimated" not in attributes


@PROVIDERS
def test_break_and_close(instrumented: Any, telemetry: Telemetry, provider: str) -> None:
    events = _RecordedEvents(provider)
    stream = _create(_client(provider, events, False), provider, events.request)
    for _ in zip(range(2), stream, strict=False):
        pass
    assert telemetry.our_spans() == []
    stream.close()

    attributes = telemetry.only_span().attributes
    assert attributes["tokenbudget.cost.estimated"] is True


@PROVIDERS
def test_context_exit(instrumented: Any, telemetry: Telemetry, provider: str) -> None:
    events = _RecordedEvents(provider)
    with _create(_client(provider, events, False), provider, events.request) as stream:
        next(iter(stream))

    assert telemetry.only_span().attributes["tokenbudget.cost.estimated"] is True


@PROVIDERS
def test_user_exception_inside_the_block(instrumented: Any, telemetry: Telemetry, provider: str) -> None:
    events = _RecordedEvents(provider)
    stream = _create(_client(provider, events, False), provider, events.request)

    def users_block() -> None:
        with stream:
            next(iter(stream))
            raise KeyError("the user's own bug")

    with pytest.raises(KeyError):
        users_block()

    span = telemetry.only_span()
    assert span.attributes["tokenbudget.cost.estimated"] is True
    assert "error.type" not in span.attributes


@PROVIDERS
def test_connection_dies_mid_stream(instrumented: Any, telemetry: Telemetry, provider: str) -> None:
    events = _RecordedEvents(provider, fail_after=3)
    stream = _create(_client(provider, events, False), provider, events.request)
    with pytest.raises(_connection_error(provider)):
        for _ in stream:
            pass

    span = telemetry.only_span()
    assert span.attributes["error.type"] == _connection_error(provider).__qualname__
    # What arrived is still billed, marked as an estimate.
    assert span.attributes["tokenbudget.cost.estimated"] is True
    assert span.attributes["gen_ai.usage.input_tokens"] > 0


@PROVIDERS
def test_loop_over_the_call_itself(instrumented: Any, telemetry: Telemetry, provider: str) -> None:
    # `for` keeps only what iter() returned: the proxy itself is dropped before the first item.
    events = _RecordedEvents(provider)
    for _ in _create(_client(provider, events, False), provider, events.request):
        assert telemetry.our_spans() == []

    attributes = telemetry.only_span().attributes
    assert attributes["gen_ai.usage.cost.amount"] == STREAMS[provider][1]
    assert "tokenbudget.cost.estimated" not in attributes


@PROVIDERS
@pytest.mark.parametrize("started", [True, False], ids=["started", "never-started"])
def test_abandoned_iterator_ends_the_call_when_the_last_reference_goes(
    instrumented: Any, telemetry: Telemetry, provider: str, started: bool
) -> None:
    events = _RecordedEvents(provider)
    stream = _create(_client(provider, events, False), provider, events.request)
    items = iter(stream)
    if started:
        next(items)
    del stream
    assert telemetry.our_spans() == []
    del items  # no gc.collect(): nothing of ours makes a reference cycle that would delay the end

    assert telemetry.only_span().attributes["tokenbudget.cost.estimated"] is True


@PROVIDERS
def test_abandoned_stream_is_ended_by_garbage_collection(
    instrumented: Any, telemetry: Telemetry, provider: str
) -> None:
    events = _RecordedEvents(provider)
    stream = _create(_client(provider, events, False), provider, events.request)
    next(iter(stream))
    del stream
    gc.collect()

    assert telemetry.only_span().attributes["tokenbudget.cost.estimated"] is True


@PROVIDERS
async def test_async_exhausted(instrumented: Any, telemetry: Telemetry, provider: str) -> None:
    events = _RecordedEvents(provider)
    stream = await _create(_client(provider, events, True), provider, events.request)
    async for _ in stream:
        pass
    await stream.close()

    assert telemetry.only_span().attributes["gen_ai.usage.cost.amount"] == STREAMS[provider][1]


@PROVIDERS
async def test_async_break_and_close(instrumented: Any, telemetry: Telemetry, provider: str) -> None:
    events = _RecordedEvents(provider)
    stream = await _create(_client(provider, events, True), provider, events.request)
    async for _ in stream:
        break
    await stream.close()

    assert telemetry.only_span().attributes["tokenbudget.cost.estimated"] is True


@PROVIDERS
async def test_async_context_exit(instrumented: Any, telemetry: Telemetry, provider: str) -> None:
    events = _RecordedEvents(provider)
    async with await _create(_client(provider, events, True), provider, events.request) as stream:
        await stream.__anext__()

    assert telemetry.only_span().attributes["tokenbudget.cost.estimated"] is True


@PROVIDERS
async def test_async_connection_dies_mid_stream(
    instrumented: Any, telemetry: Telemetry, provider: str
) -> None:
    events = _RecordedEvents(provider, fail_after=3)
    stream = await _create(_client(provider, events, True), provider, events.request)
    with pytest.raises(_connection_error(provider)):
        async for _ in stream:
            pass

    assert telemetry.only_span().attributes["error.type"] == _connection_error(provider).__qualname__


@PROVIDERS
async def test_async_abandoned(instrumented: Any, telemetry: Telemetry, provider: str) -> None:
    events = _RecordedEvents(provider)
    stream = await _create(_client(provider, events, True), provider, events.request)
    await stream.__anext__()
    del stream
    gc.collect()

    assert len(telemetry.our_spans()) == 1
