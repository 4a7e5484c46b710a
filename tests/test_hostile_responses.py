"""Responses that no well-behaved provider sends, through the real SDKs: whatever a response holds, the
caller gets what the SDK gives, the span ends once, and the budget's reservation is settled or released.

Each test is one row of issue 12's table (D1, D3, D4, R3, R4, R6); `test_properties.py` generates
many more such responses.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import anthropic
import openai
import pytest
from genai_prices.types import ModelInfo

from opentelemetry_instrumentation_tokenbudget import Budget
from opentelemetry_instrumentation_tokenbudget.budgets.stores.memory import MemoryStore
from opentelemetry_instrumentation_tokenbudget.limits import MAX_ATTRIBUTE_LENGTH
from opentelemetry_instrumentation_tokenbudget.usage import MAX_TOKENS_PER_CALL
from tests.budget_support import PICO, ledger
from tests.conftest import Telemetry
from tests.hostile import (
    Server,
    anthropic_client,
    chat_chunk,
    chat_completion,
    chat_stream,
    event_stream,
    json_answer,
    message,
    message_events,
    openai_client,
)

HI = [{"role": "user", "content": "hi"}]  # estimated at one token (four characters a token)


@pytest.fixture
def budget() -> Budget:
    return Budget("all", 1000)


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def budgeted(instrument: Any, budget: Budget, store: MemoryStore) -> Any:
    return instrument(budgets=[budget], store=store)


def _balance(store: MemoryStore, budget: Budget) -> tuple[int, int]:
    balance = ledger(store, budget, time.time())
    return balance.spent, balance.reserved


def _attributes(telemetry: Telemetry) -> dict[str, Any]:
    return dict(telemetry.only_span().attributes or {})


# ---- D1: counts that are no counts ---------------------------------------------------------------


@pytest.mark.parametrize(
    "prompt_tokens",
    [1200.5, "abc", "", "1200", 10**20, MAX_TOKENS_PER_CALL, True, -1000, [100], {"n": 100}],
    ids=repr,
)
def test_d1_an_input_count_that_is_no_count_is_estimated(
    budgeted: Any, telemetry: Telemetry, store: MemoryStore, budget: Budget, prompt_tokens: object
) -> None:
    server = Server(
        lambda request: json_answer(
            200, chat_completion({"prompt_tokens": prompt_tokens, "completion_tokens": 7})
        )
    )

    response = openai_client(server).chat.completions.create(model="gpt-4o-mini", messages=HI)

    assert response.usage.prompt_tokens == prompt_tokens  # the caller's response is untouched
    attributes = _attributes(telemetry)
    # Missing input: the prompt's estimate, one token; the output as reported; priced (gpt-4o-mini,
    # 0.15 and 0.6 USD per million) and marked estimated.
    assert attributes["gen_ai.usage.input_tokens"] == 1
    assert attributes["gen_ai.usage.output_tokens"] == 7
    assert attributes["tokenbudget.cost.estimated"] is True
    assert attributes["gen_ai.usage.cost.amount"] == 4.35e-06
    assert _balance(store, budget) == (4_350_000, 0)


@pytest.mark.parametrize("cached_tokens", ["twelve", 3.5, -1, 10**20, None], ids=repr)
def test_d1_each_field_fails_alone(
    budgeted: Any, telemetry: Telemetry, store: MemoryStore, budget: Budget, cached_tokens: object
) -> None:
    usage = {
        "prompt_tokens": 100,
        "completion_tokens": 7,
        "prompt_tokens_details": {"cached_tokens": cached_tokens},
    }
    server = Server(lambda request: json_answer(200, chat_completion(usage)))

    openai_client(server).chat.completions.create(model="gpt-4o-mini", messages=HI)

    attributes = _attributes(telemetry)
    assert attributes["gen_ai.usage.input_tokens"] == 100
    assert attributes["gen_ai.usage.output_tokens"] == 7
    assert "gen_ai.usage.cache_read.input_tokens" not in attributes
    # None is "not reported", not a broken count.
    assert attributes.get("tokenbudget.cost.estimated") is (None if cached_tokens is None else True)
    assert attributes["gen_ai.usage.cost.amount"] == 1.92e-05  # 100 * 0.15 + 7 * 0.6 microdollars
    assert _balance(store, budget) == (19_200_000, 0)


def test_d1_a_usage_block_of_the_wrong_shape_is_estimated(
    budgeted: Any, telemetry: Telemetry, store: MemoryStore, budget: Budget
) -> None:
    server = Server(lambda request: json_answer(200, chat_completion("n/a")))

    response = openai_client(server).chat.completions.create(model="gpt-4o-mini", messages=HI)

    assert response.usage == "n/a"
    attributes = _attributes(telemetry)
    assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (1, 0)
    assert attributes["tokenbudget.cost.estimated"] is True
    assert _balance(store, budget) == (150_000, 0)


# ---- D3: the usage chunk we asked for --------------------------------------------------------------


@pytest.mark.parametrize(
    "usage",
    ["n/a", 5, [], None, {"prompt_tokens": "x"}, {"prompt_tokens": 10, "completion_tokens": 2}],
    ids=repr,
)
@pytest.mark.parametrize("usage_with_content", [False, True], ids=["own chunk", "on a content chunk"])
def test_d3_the_injected_usage_chunk_is_hidden_whatever_it_holds(
    *,
    budgeted: Any,
    telemetry: Telemetry,
    store: MemoryStore,
    budget: Budget,
    usage: object,
    usage_with_content: bool,
) -> None:
    server = Server(lambda request: chat_stream(request, usage, usage_with_content=usage_with_content))

    chunks = list(
        openai_client(server).chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True)
    )

    assert server.requests[0]["stream_options"] == {"include_usage": True}
    # What the server sends a caller who did not ask for usage: three chunks, each with a choice and
    # no usage (the caller's `chunk.choices[0]` must not fail).
    assert [(len(chunk.choices), chunk.usage) for chunk in chunks] == [(1, None)] * 3
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks) == "Hello"
    attributes = _attributes(telemetry)
    if usage == {"prompt_tokens": 10, "completion_tokens": 2}:
        assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (10, 2)
        assert "tokenbudget.cost.estimated" not in attributes
    else:
        assert attributes["tokenbudget.cost.estimated"] is True
    assert _balance(store, budget)[1] == 0


def test_d3_a_chunk_without_choices_before_the_finish_is_the_servers(
    budgeted: Any, telemetry: Telemetry, store: MemoryStore, budget: Budget
) -> None:
    """Azure OpenAI opens a stream with its prompt filter results and no choices; with usage asked
    for, every chunk carries `"usage": null`. That chunk is the caller's."""
    filters = chat_chunk("gpt-4o-mini", [], prompt_filter_results=[{"prompt_index": 0}], usage=None)

    server = Server(
        lambda request: chat_stream(
            request, {"prompt_tokens": 10, "completion_tokens": 2}, usage_choices=[], before=[filters]
        )
    )

    chunks = list(
        openai_client(server).chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True)
    )

    assert [len(chunk.choices) for chunk in chunks] == [0, 1, 1, 1]
    assert chunks[0].prompt_filter_results == [{"prompt_index": 0}]
    attributes = _attributes(telemetry)
    assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (10, 2)
    assert _balance(store, budget)[1] == 0


# ---- D4: Anthropic stream with a broken count ------------------------------------------------------


@pytest.mark.parametrize("input_tokens", ["", "twelve", 1.5, None, -3], ids=repr)
def test_d4_an_anthropic_stream_with_a_broken_input_count_ends_and_settles(
    budgeted: Any, telemetry: Telemetry, store: MemoryStore, budget: Budget, input_tokens: object
) -> None:
    start_usage = {"input_tokens": input_tokens, "output_tokens": 1}
    server = Server(lambda request: event_stream(message_events(start_usage, {"output_tokens": 5})))

    events = list(
        anthropic_client(server).messages.create(
            model="claude-haiku-4-5", max_tokens=64, messages=HI, stream=True
        )
    )

    assert [event.type for event in events][-1] == "message_stop"
    attributes = _attributes(telemetry)
    # input_tokens is always reported: null is as broken as a string.
    assert attributes["gen_ai.usage.input_tokens"] == 1  # the prompt's estimate
    assert attributes["tokenbudget.cost.estimated"] is True
    assert attributes["gen_ai.usage.output_tokens"] == 5
    assert _balance(store, budget)[1] == 0


# The SDK's snapshot serializer warns of the string it was sent, with or without us.
@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning")
def test_d4_the_same_through_messages_stream(
    budgeted: Any, telemetry: Telemetry, store: MemoryStore, budget: Budget
) -> None:
    start_usage = {"input_tokens": "", "output_tokens": 1}
    server = Server(lambda request: event_stream(message_events(start_usage, {"output_tokens": 5})))

    with anthropic_client(server).messages.stream(
        model="claude-haiku-4-5", max_tokens=64, messages=HI
    ) as stream:
        text = "".join(stream.text_stream)

    assert text == "Hello"
    attributes = _attributes(telemetry)
    assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (1, 5)
    assert attributes["tokenbudget.cost.estimated"] is True
    # claude-haiku-4-5: 1 and 5 USD per million: 1 + 25 microdollars.
    assert _balance(store, budget) == (26 * PICO // 10**6, 0)


# ---- R3: state and attributes per model name ---------------------------------------------------------


def test_r3_a_model_name_of_any_length_is_capped(instrumented: Any, telemetry: Telemetry) -> None:
    long_name = "m" * 100_000
    server = Server(
        lambda request: json_answer(
            200, chat_completion({"prompt_tokens": 3, "completion_tokens": 1}, model=long_name)
        )
    )

    openai_client(server).chat.completions.create(model="x" * 100_000, messages=HI)

    span = telemetry.only_span()
    attributes = dict(span.attributes or {})
    assert span.name == "chat " + "x" * MAX_ATTRIBUTE_LENGTH
    assert attributes["gen_ai.request.model"] == "x" * MAX_ATTRIBUTE_LENGTH
    assert attributes["gen_ai.response.model"] == "m" * MAX_ATTRIBUTE_LENGTH
    assert attributes["tokenbudget.cost.unpriced"] is True
    models = {
        (point.attributes["gen_ai.request.model"], point.attributes["gen_ai.response.model"])
        for point in telemetry.metric_points("gen_ai.client.token.usage")
    }
    assert models == {("x" * MAX_ATTRIBUTE_LENGTH, "m" * MAX_ATTRIBUTE_LENGTH)}


def test_r3_two_thousand_model_names_leave_bounded_state(
    instrumented: Any, telemetry: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    from opentelemetry_instrumentation_tokenbudget.pricing.book import MAX_CACHED_MODELS
    from opentelemetry_instrumentation_tokenbudget.unpriced import MAX_REPORTED_MODELS

    names = iter(range(2000))
    server = Server(
        lambda request: json_answer(
            200, chat_completion({"prompt_tokens": 3, "completion_tokens": 1}, model=f"made-up-{next(names)}")
        )
    )
    client = openai_client(server)

    with caplog.at_level(logging.WARNING, logger="opentelemetry_instrumentation_tokenbudget"):
        for _ in range(2000):
            client.chat.completions.create(model="made-up", messages=HI)

    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == MAX_REPORTED_MODELS + 1
    assert warnings[-1].getMessage() == (
        f"tokenbudget: {MAX_REPORTED_MODELS} models without a price were reported; further ones are not named"
    )
    prices = instrumented._runtime.prices  # the state under test
    assert len(prices._cache) <= MAX_CACHED_MODELS
    assert len(telemetry.our_spans()) == 2000


# ---- R4: provider error messages --------------------------------------------------------------------

_ECHO = {
    "error": {"message": "Invalid request: 'my secret prompt' is too long", "type": "invalid_request_error"}
}


def test_r4_a_provider_error_message_stays_off_the_span(instrumented: Any, telemetry: Telemetry) -> None:
    server = Server(lambda request: json_answer(400, _ECHO))

    with pytest.raises(openai.BadRequestError, match="my secret prompt"):
        openai_client(server).chat.completions.create(model="gpt-4o-mini", messages=HI)

    span = telemetry.only_span()
    assert span.status.description is None
    assert (span.attributes or {})["error.type"] == "BadRequestError"
    assert (span.attributes or {})["http.response.status_code"] == 400
    assert all("my secret prompt" not in str(value) for value in (span.attributes or {}).values())


def test_r4_record_error_messages_records_them(instrument: Any, telemetry: Telemetry) -> None:
    instrument(record_error_messages=True)
    server = Server(lambda request: json_answer(400, _ECHO))

    with pytest.raises(openai.BadRequestError):
        openai_client(server).chat.completions.create(model="gpt-4o-mini", messages=HI)

    description = telemetry.only_span().status.description
    assert description is not None
    assert "my secret prompt" in description


# ---- R6: pricing that fails, a stream manager never entered -------------------------------------------


def test_r6_pricing_that_raises_keeps_the_tokens_and_settles(
    budgeted: Any, telemetry: Telemetry, store: MemoryStore, budget: Budget, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: ModelInfo, *args: Any, **kwargs: Any) -> Any:
        raise ValueError("price data that cannot be applied")

    # The price data, not our code, fails: a service tier is priced through genai-prices per call.
    monkeypatch.setattr(ModelInfo, "get_prices", broken)
    body = {**chat_completion({"prompt_tokens": 100, "completion_tokens": 7}), "service_tier": "flex"}
    server = Server(lambda request: json_answer(200, body))

    response = openai_client(server).chat.completions.create(model="gpt-4o-mini", messages=HI)

    assert response.usage.prompt_tokens == 100
    attributes = _attributes(telemetry)
    assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (100, 7)
    assert attributes["tokenbudget.cost.unpriced"] is True
    assert "gen_ai.usage.cost.amount" not in attributes
    assert _balance(store, budget) == (0, 0)
    (point,) = telemetry.metric_points("tokenbudget.client.unpriced_calls")
    assert point.value == 1


# The async SDK makes its request's coroutine when `stream()` is called; never entered, it is never
# awaited, with or without us.
@pytest.mark.filterwarnings("ignore:coroutine 'AsyncAPIClient.post' was never awaited:RuntimeWarning")
@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_r6_a_stream_manager_never_entered_is_released(
    budgeted: Any, telemetry: Telemetry, store: MemoryStore, budget: Budget, is_async: bool
) -> None:
    server = Server(lambda request: json_answer(200, message({"input_tokens": 1, "output_tokens": 1})))
    client = anthropic_client(server, is_async)

    manager = client.messages.stream(model="claude-haiku-4-5", max_tokens=64, messages=HI)
    assert _balance(store, budget)[1] > 0  # reserved when the method was called
    del manager

    assert server.requests == []
    span = telemetry.only_span()
    assert "gen_ai.usage.input_tokens" not in (span.attributes or {})
    assert _balance(store, budget) == (0, 0)


def test_r6_an_anthropic_sdk_error_in_the_stream_passes_through(
    budgeted: Any, telemetry: Telemetry, store: MemoryStore, budget: Budget
) -> None:
    server = Server(
        lambda request: event_stream(
            [("error", {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}})]
        )
    )

    with pytest.raises(anthropic.APIStatusError):
        list(
            anthropic_client(server).messages.create(
                model="claude-haiku-4-5", max_tokens=64, messages=HI, stream=True
            )
        )

    assert _attributes(telemetry)["error.type"] == "APIStatusError"
    assert _balance(store, budget)[1] == 0
