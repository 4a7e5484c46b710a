"""Property-based: whatever a provider answers, instrumenting changes nothing for the caller.

Every adapter (OpenAI chat, Responses, embeddings and completions; Anthropic messages, also through
`messages.stream()`), sync and async, plain, streamed and raw, is driven through the real SDK over
`httpx2.MockTransport` with generated usage blocks (counts that are ints, floats, strings, bools,
huge, negative, null, lists, objects; blocks that are no blocks), model names, HTTP statuses and
event sequences (cut short, read in part then closed). Each example runs the same call twice, once
with the instrumentation suppressed, and asserts:

- the caller gets exactly what the uninstrumented SDK gives: the same value (compared by repr, item
  by item for streams) or the same exception (type and message);
- exactly one span of ours ended, and it satisfies the convention registry (`check_spans`);
- its token counts are ints in range and its cost, if any, a finite float;
- the budget's reservations are back to zero (a budget on the memory store, which every call matches).

Profiles: ``ci`` (the default: derandomized, a bounded number of examples per test, so that the whole
module adds well under 40 s on two cores) and ``long`` (random, many more examples), chosen with
``TOKENBUDGET_HYPOTHESIS_PROFILE=long``. A failure prints the example and the
``@reproduce_failure`` line that replays it.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from opentelemetry_instrumentation_tokenbudget import Budget, TokenBudgetInstrumentor
from opentelemetry_instrumentation_tokenbudget.budgets.stores.memory import MemoryStore
from opentelemetry_instrumentation_tokenbudget.usage import MAX_TOKENS_PER_CALL
from tests.budget_support import ledger
from tests.hostile import (
    OMITTED,
    Server,
    anthropic_client,
    chat_completion,
    chat_stream,
    completion_stream,
    embedding,
    event_stream,
    json_answer,
    message,
    message_events,
    openai_client,
    response_object,
    responses_stream,
    text_completion,
)
from tests.semconv_live_check import check_spans

settings.register_profile(
    "ci",
    max_examples=60,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.register_profile(
    "long",
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
PROFILE = settings.get_profile(os.environ.get("TOKENBUDGET_HYPOTHESIS_PROFILE", "ci"))

HI = [{"role": "user", "content": "hi"}]
TOKEN_ATTRIBUTES = (
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.reasoning.output_tokens",
)

# ---- what a server may put where a count belongs -----------------------------------------------

counts = st.one_of(
    st.integers(0, 100_000),
    st.sampled_from([0, 1, -1, -1_000_000_000, MAX_TOKENS_PER_CALL, 10**20, True, False, ""]),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e21),
    st.text(max_size=4),
    st.none(),
    st.lists(st.integers(0, 9), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(0, 9), max_size=1),
)
not_a_block = st.sampled_from(["n/a", 5, [], {}, None, 1.5, True])


def blocks(*names: str, **nested: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A usage block with some of `names` (each a generated count) and of `nested`, or no block."""
    return st.one_of(
        st.fixed_dictionaries({}, optional={**dict.fromkeys(names, counts), **nested}),
        not_a_block,
    )


def details(*names: str) -> st.SearchStrategy[Any]:
    return st.one_of(st.fixed_dictionaries({}, optional=dict.fromkeys(names, counts)), not_a_block)


chat_usage = blocks(
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    prompt_tokens_details=details("cached_tokens", "audio_tokens"),
    completion_tokens_details=details("reasoning_tokens", "audio_tokens"),
)
responses_usage = blocks(
    "input_tokens",
    "output_tokens",
    "total_tokens",
    input_tokens_details=details("cached_tokens"),
    output_tokens_details=details("reasoning_tokens"),
)
embeddings_usage = blocks("prompt_tokens", "total_tokens")
anthropic_usage = blocks(
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    cache_creation=details("ephemeral_1h_input_tokens", "ephemeral_5m_input_tokens"),
    server_tool_use=details("web_search_requests"),
)
models = st.one_of(
    st.sampled_from(["gpt-4o-mini", "claude-haiku-4-5", "", "x" * 300, "m\n\x00", 5, None]),
    st.text(max_size=8),
)
statuses = st.sampled_from([200, 200, 200, 200, 200, 400, 529])
texts = st.lists(st.text(max_size=4), max_size=3)
# How much of a stream the caller reads before closing it (None: all of it).
read_limits = st.one_of(st.none(), st.integers(0, 3))

# ---- one instrumentation for the module, a budget that every call matches ------------------------


@dataclass
class Rig:
    exporter: InMemorySpanExporter
    store: MemoryStore
    budget: Budget
    server: Server

    def our_spans(self) -> list[ReadableSpan]:
        return [
            span
            for span in self.exporter.get_finished_spans()
            if span.instrumentation_scope is not None
            and span.instrumentation_scope.name.startswith("opentelemetry_instrumentation_tokenbudget")
        ]


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    store = MemoryStore()
    # A warning budget: it reserves and settles like any other, and never refuses, so that the
    # spend the examples pile up cannot change what a later example's caller gets.
    budget = Budget("everything", 1, action="warn")
    instrumentor = TokenBudgetInstrumentor()
    instrumentor.instrument(
        tracer_provider=tracer_provider, meter_provider=MeterProvider(), budgets=[budget], store=store
    )
    yield Rig(exporter, store, budget, Server())
    instrumentor.uninstrument()
    tracer_provider.shutdown()


# ---- what the caller gets ----------------------------------------------------------------------------


def _items(stream: Any, limit: int | None) -> tuple[Any, ...]:
    seen = []
    try:
        for item in stream:
            if limit is not None and len(seen) >= limit:
                break
            seen.append(repr(item))
    except Exception as error:
        return (*seen, "raised", type(error), str(error))
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
    return tuple(seen)


async def _async_items(stream: Any, limit: int | None) -> tuple[Any, ...]:
    seen = []
    try:
        async for item in stream:
            if limit is not None and len(seen) >= limit:
                break
            seen.append(repr(item))
    except Exception as error:
        return (*seen, "raised", type(error), str(error))
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            await close()
    return tuple(seen)


async def _parsed(raw: Any) -> Any:
    """`parse()` of an async client's raw response: a coroutine in Anthropic's SDK, not in OpenAI's."""
    parsed = raw.parse()
    return await parsed if inspect.isawaitable(parsed) else parsed


def _outcome(call: Callable[[], Any]) -> tuple[Any, ...]:
    try:
        return ("returned", call())
    except Exception as error:
        return ("raised", type(error), str(error))


async def _async_outcome(call: Callable[[], Awaitable[Any]]) -> tuple[Any, ...]:
    try:
        return ("returned", await call())
    except Exception as error:
        return ("raised", type(error), str(error))


def _same_as_uninstrumented(rig: Rig, run: Callable[[], tuple[Any, ...]]) -> None:
    # Spans left by an earlier example that failed would be counted again here.
    rig.exporter.clear()
    rig.server.requests.clear()
    with suppress_instrumentation():
        expected = run()
    assert rig.our_spans() == []
    rig.exporter.clear()

    assert run() == expected

    spans = rig.our_spans()
    assert len(spans) == 1, [span.name for span in spans]
    assert check_spans(spans) == []
    attributes = spans[0].attributes or {}
    for name in TOKEN_ATTRIBUTES:
        value = attributes.get(name)
        assert value is None or (type(value) is int and 0 <= value < MAX_TOKENS_PER_CALL), (name, value)
    cost = attributes.get("gen_ai.usage.cost.amount")
    assert cost is None or (type(cost) is float and math.isfinite(cost) and cost >= 0), cost
    assert ledger(rig.store, rig.budget, time.time()).reserved == 0
    rig.exporter.clear()
    rig.server.requests.clear()


def _check(
    rig: Rig,
    is_async: bool,
    sync_run: Callable[[Any], Any],
    async_run: Callable[[Any], Any],
    client: Callable[..., Any],
) -> None:
    if is_async:
        _same_as_uninstrumented(rig, lambda: asyncio.run(async_run(client(rig.server, True))))
    else:
        sync_client = client(rig.server)
        _same_as_uninstrumented(rig, lambda: sync_run(sync_client))


# ---- OpenAI -------------------------------------------------------------------------------------------

parametrize_async = pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])


@parametrize_async
@settings(PROFILE)
@given(usage=chat_usage, model=models, status=statuses, raw=st.booleans())
def test_openai_chat(*, rig: Rig, is_async: bool, usage: Any, model: Any, status: int, raw: bool) -> None:
    rig.server.answer = lambda request: json_answer(status, chat_completion(usage, model))

    def create(client: Any) -> Any:
        completions = client.chat.completions.with_raw_response if raw else client.chat.completions
        return completions.create(model="gpt-4o-mini", messages=HI)

    def sync_run(client: Any) -> tuple[Any, ...]:
        return _outcome(lambda: repr(create(client).parse() if raw else create(client)))

    async def async_run(client: Any) -> tuple[Any, ...]:
        async def call() -> str:
            result = await create(client)
            return repr(await _parsed(result) if raw else result)

        return await _async_outcome(call)

    _check(rig, is_async, sync_run, async_run, openai_client)


@parametrize_async
@settings(PROFILE)
@given(
    usage=chat_usage,
    model=models,
    texts=texts,
    usage_with_content=st.booleans(),
    usage_choices=st.sampled_from([[], None, OMITTED]),
    caller_asks=st.booleans(),
    raw=st.booleans(),
    limit=read_limits,
)
def test_openai_chat_stream(
    *,
    rig: Rig,
    is_async: bool,
    usage: Any,
    model: Any,
    texts: list[str],
    usage_with_content: bool,
    usage_choices: Any,
    caller_asks: bool,
    raw: bool,
    limit: int | None,
) -> None:
    rig.server.answer = lambda request: chat_stream(
        request,
        usage,
        model=model,
        texts=texts,
        usage_with_content=usage_with_content,
        usage_choices=usage_choices,
    )
    options: dict[str, Any] = {"stream_options": {"include_usage": True}} if caller_asks else {}

    def create(client: Any) -> Any:
        completions = client.chat.completions.with_raw_response if raw else client.chat.completions
        return completions.create(model="gpt-4o-mini", messages=HI, stream=True, **options)

    def sync_run(client: Any) -> tuple[Any, ...]:
        def call() -> tuple[Any, ...]:
            result = create(client)
            return _items(result.parse() if raw else result, limit)

        return _outcome(call)

    async def async_run(client: Any) -> tuple[Any, ...]:
        async def call() -> tuple[Any, ...]:
            result = await create(client)
            return await _async_items(await _parsed(result) if raw else result, limit)

        return await _async_outcome(call)

    _check(rig, is_async, sync_run, async_run, openai_client)


@parametrize_async
@settings(PROFILE)
@given(usage=chat_usage, model=models, status=statuses, stream=st.booleans(), limit=read_limits)
def test_openai_completions(
    *, rig: Rig, is_async: bool, usage: Any, model: Any, status: int, stream: bool, limit: int | None
) -> None:
    if stream:
        rig.server.answer = lambda request: completion_stream(request, usage, model)
    else:
        rig.server.answer = lambda request: json_answer(status, text_completion(usage, model))

    def sync_run(client: Any) -> tuple[Any, ...]:
        def call() -> Any:
            result = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="hi", stream=stream)
            return _items(result, limit) if stream else repr(result)

        return _outcome(call)

    async def async_run(client: Any) -> tuple[Any, ...]:
        async def call() -> Any:
            result = await client.completions.create(
                model="gpt-3.5-turbo-instruct", prompt="hi", stream=stream
            )
            return await _async_items(result, limit) if stream else repr(result)

        return await _async_outcome(call)

    _check(rig, is_async, sync_run, async_run, openai_client)


@parametrize_async
@settings(PROFILE)
@given(usage=embeddings_usage, model=models, status=statuses, raw=st.booleans())
def test_openai_embeddings(
    *, rig: Rig, is_async: bool, usage: Any, model: Any, status: int, raw: bool
) -> None:
    rig.server.answer = lambda request: json_answer(status, embedding(usage, model))

    def create(client: Any) -> Any:
        embeddings = client.embeddings.with_raw_response if raw else client.embeddings
        return embeddings.create(model="text-embedding-3-small", input="hi", encoding_format="float")

    def sync_run(client: Any) -> tuple[Any, ...]:
        return _outcome(lambda: repr(create(client).parse() if raw else create(client)))

    async def async_run(client: Any) -> tuple[Any, ...]:
        async def call() -> str:
            result = await create(client)
            return repr(await _parsed(result) if raw else result)

        return await _async_outcome(call)

    _check(rig, is_async, sync_run, async_run, openai_client)


@parametrize_async
@settings(PROFILE)
@given(
    usage=responses_usage,
    model=models,
    status=statuses,
    stream=st.booleans(),
    final=st.booleans(),
    limit=read_limits,
)
def test_openai_responses(
    *,
    rig: Rig,
    is_async: bool,
    usage: Any,
    model: Any,
    status: int,
    stream: bool,
    final: bool,
    limit: int | None,
) -> None:
    if stream:
        rig.server.answer = lambda request: responses_stream(usage, model, final=final)
    else:
        rig.server.answer = lambda request: json_answer(status, response_object(usage, model))

    def sync_run(client: Any) -> tuple[Any, ...]:
        def call() -> Any:
            result = client.responses.create(model="gpt-4o-mini", input="hi", stream=stream)
            return _items(result, limit) if stream else repr(result)

        return _outcome(call)

    async def async_run(client: Any) -> tuple[Any, ...]:
        async def call() -> Any:
            result = await client.responses.create(model="gpt-4o-mini", input="hi", stream=stream)
            return await _async_items(result, limit) if stream else repr(result)

        return await _async_outcome(call)

    _check(rig, is_async, sync_run, async_run, openai_client)


# ---- Anthropic ----------------------------------------------------------------------------------------


@parametrize_async
@settings(PROFILE)
@given(usage=anthropic_usage, model=models, status=statuses, raw=st.booleans())
def test_anthropic_messages(
    *, rig: Rig, is_async: bool, usage: Any, model: Any, status: int, raw: bool
) -> None:
    rig.server.answer = lambda request: json_answer(status, message(usage, model))

    def create(client: Any) -> Any:
        messages = client.messages.with_raw_response if raw else client.messages
        return messages.create(model="claude-haiku-4-5", max_tokens=64, messages=HI)

    def sync_run(client: Any) -> tuple[Any, ...]:
        return _outcome(lambda: repr(create(client).parse() if raw else create(client)))

    async def async_run(client: Any) -> tuple[Any, ...]:
        async def call() -> str:
            result = await create(client)
            return repr(await _parsed(result) if raw else result)

        return await _async_outcome(call)

    _check(rig, is_async, sync_run, async_run, anthropic_client)


anthropic_events = st.builds(
    message_events,
    anthropic_usage,
    anthropic_usage,
    model=models,
    texts=texts,
    cut_after=st.one_of(st.none(), st.integers(0, 7)),
)


@parametrize_async
@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning")
@settings(PROFILE)
@given(events=anthropic_events, manager=st.booleans(), limit=read_limits)
def test_anthropic_message_stream(
    *, rig: Rig, is_async: bool, events: list[tuple[str | None, object]], manager: bool, limit: int | None
) -> None:
    rig.server.answer = lambda request: event_stream(events)

    def sync_run(client: Any) -> tuple[Any, ...]:
        def call() -> tuple[Any, ...]:
            if manager:
                with client.messages.stream(model="claude-haiku-4-5", max_tokens=64, messages=HI) as stream:
                    return _items(stream, limit)
            return _items(
                client.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=HI, stream=True),
                limit,
            )

        return _outcome(call)

    async def async_run(client: Any) -> tuple[Any, ...]:
        async def call() -> tuple[Any, ...]:
            if manager:
                async with client.messages.stream(
                    model="claude-haiku-4-5", max_tokens=64, messages=HI
                ) as stream:
                    return await _async_items(stream, limit)
            created = await client.messages.create(
                model="claude-haiku-4-5", max_tokens=64, messages=HI, stream=True
            )
            return await _async_items(created, limit)

        return await _async_outcome(call)

    _check(rig, is_async, sync_run, async_run, anthropic_client)


def test_the_server_answers_what_it_was_set_to(rig: Rig) -> None:
    """The rig itself: a caller who did not ask for usage gets no usage chunk from it."""
    rig.server.answer = lambda request: chat_stream(request, {"prompt_tokens": 1, "completion_tokens": 1})
    rig.server.requests.clear()
    with suppress_instrumentation():
        chunks = list(openai_client(rig.server).chat.completions.create(model="m", messages=HI, stream=True))
    assert [chunk.usage for chunk in chunks] == [None, None, None]
    assert "stream_options" not in rig.server.requests[0]
