"""Spend that other instrumentations traced: counted once into the same budgets.

The Anthropic SDK traces its own calls; a span it starts inside one of ours is the same call and is
not counted again. A GenAI span of another instrumentation that no call of ours covers is priced from
its token counts (or taken at its own cost) and counted, with the attribution in force where it began.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import anthropic
import httpx2
import pytest
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import Tracer

from opentelemetry_instrumentation_tokenbudget import (
    Budget,
    BudgetExceededError,
    ThresholdEvent,
    cost_attributes,
)
from opentelemetry_instrumentation_tokenbudget.budgets.store import Balance, SpendStore
from opentelemetry_instrumentation_tokenbudget.budgets.stores import open_store
from opentelemetry_instrumentation_tokenbudget.testing import FakeProvider
from tests.budget_support import CALL_COST_PICO, MODEL, PICO, PROMPT, Clock, ask, client_for, ledger
from tests.conftest import Telemetry

# 1000 input and 500 output tokens of gpt-4o-mini: 1000 * 0.15 + 500 * 0.6 = 450 microdollars.
FOREIGN_COST_PICO = 450 * 10**6


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(clock: Clock) -> Iterator[SpendStore]:
    opened = open_store("memory", clock=clock)
    yield opened
    opened.close()


@pytest.fixture
def other(telemetry: Telemetry) -> Tracer:
    """The tracer of another GenAI instrumentation."""
    return telemetry.tracer_provider.get_tracer("other.genai.instrumentation")


def _inference(
    input_tokens: int = 1000, output_tokens: int = 500, operation: str = "chat", model: str = MODEL
) -> dict[str, Any]:
    return {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": model,
        "gen_ai.usage.input_tokens": input_tokens,
        "gen_ai.usage.output_tokens": output_tokens,
    }


def test_the_anthropic_sdks_own_span_kept_inside_our_call_is_not_counted_twice(
    *, instrument: Any, telemetry: Telemetry, store: SpendStore, clock: Clock
) -> None:
    budget = Budget("all", 1)
    instrument(budgets=[budget], store=store, clock=clock, anthropic_sdk_spans=True)
    client = anthropic.Anthropic(
        api_key="test",
        base_url="https://api.anthropic.com",
        http_client=httpx2.Client(transport=FakeProvider().transport()),
        max_retries=0,
        open_telemetry={"tracer_provider": telemetry.tracer_provider},
    )

    client.messages.create(
        model="claude-3-5-haiku-20241022", max_tokens=10, messages=[{"role": "user", "content": PROMPT}]
    )
    assert telemetry.tracer_provider.force_flush()

    (sdk_span,) = [s for s in telemetry.spans() if s.name == "anthropic.messages.create"]
    assert (
        sdk_span.attributes["gen_ai.usage.input_tokens"],
        sdk_span.attributes["gen_ai.usage.output_tokens"],
    ) == (
        103,
        7,
    )
    ours = telemetry.only_span()
    assert sdk_span.parent is not None
    assert sdk_span.parent.span_id == ours.context.span_id
    # 103 * 0.8 + 7 * 4 = 110.4 microdollars, once.
    assert Decimal(repr(ours.attributes["gen_ai.usage.cost.amount"])) == Decimal("0.0001104")
    assert ledger(store, budget, clock.now) == Balance(spent=110_400_000, reserved=0)


def test_one_genai_span_per_anthropic_call_by_default(
    *, instrument: Any, telemetry: Telemetry, store: SpendStore, clock: Clock
) -> None:
    budget = Budget("all", 1)
    instrument(budgets=[budget], store=store, clock=clock)
    client = anthropic.Anthropic(
        api_key="test",
        base_url="https://api.anthropic.com",
        http_client=httpx2.Client(transport=FakeProvider().transport()),
        max_retries=0,
        open_telemetry={"tracer_provider": telemetry.tracer_provider},
    )
    request: dict[str, Any] = {
        "model": "claude-3-5-haiku-20241022",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": PROMPT}],
    }

    client.messages.create(**request)
    with client.messages.stream(**request) as stream:
        stream.get_final_text()
    # A call we do not record keeps the SDK's span.
    with suppress_instrumentation():
        client.messages.create(**request)
    assert telemetry.tracer_provider.force_flush()

    names = sorted(span.name for span in telemetry.spans())
    assert names == [
        "anthropic.messages.create",
        "chat claude-3-5-haiku-20241022",
        "chat claude-3-5-haiku-20241022",
    ]
    # 103 * 0.8 + 7 * 4 = 110.4 microdollars per call, each once: the two we recorded, and the one
    # only the SDK traced, counted from its span by the budget processor.
    assert ledger(store, budget, clock.now) == Balance(spent=3 * 110_400_000, reserved=0)


async def test_one_genai_span_per_async_anthropic_call(instrument: Any, telemetry: Telemetry) -> None:
    instrument()
    client = anthropic.AsyncAnthropic(
        api_key="test",
        http_client=httpx2.AsyncClient(transport=FakeProvider().transport()),
        max_retries=0,
        open_telemetry={"tracer_provider": telemetry.tracer_provider},
    )
    request: dict[str, Any] = {
        "model": "claude-3-5-haiku-20241022",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": PROMPT}],
    }

    await client.messages.create(**request)
    async with client.messages.stream(**request) as stream:
        await stream.get_final_text()

    ours = "chat claude-3-5-haiku-20241022"
    assert [span.name for span in telemetry.spans()] == [ours, ours]


def test_costs_and_cache_counts_that_other_instrumentations_report(
    *, instrument: Any, telemetry: Telemetry, store: SpendStore, clock: Clock, other: Tracer
) -> None:
    budget = Budget("all", 1)
    instrument(budgets=[budget], store=store, clock=clock)

    # LiteLLM's own price of the call (its spans do not count cache reads apart), then OpenLIT's.
    with other.start_as_current_span(
        "litellm_request", attributes={**_inference(), "gen_ai.cost.total_cost": 0.0001}
    ):
        pass
    with other.start_as_current_span(
        "chat gpt-4o-mini", attributes={**_inference(), "gen_ai.usage.cost": 0.0003}
    ):
        pass
    # A cost that is no amount of money: priced from the tokens instead, 450 microdollars.
    with other.start_as_current_span(
        "chat gpt-4o-mini", attributes={**_inference(), "gen_ai.cost.total_cost": -1.0}
    ):
        pass
    # Cache reads under the older underscore name: 200 x 0.15 + 800 x 0.075 + 500 x 0.6 = 390.
    with other.start_as_current_span(
        "chat gpt-4o-mini", attributes={**_inference(), "gen_ai.usage.cache_read_input_tokens": 800}
    ):
        pass
    assert telemetry.tracer_provider.force_flush()

    assert ledger(store, budget, clock.now) == Balance(spent=(100 + 300 + 450 + 390) * 10**6, reserved=0)


def test_a_span_around_our_call_is_that_call(
    *, instrument: Any, telemetry: Telemetry, store: SpendStore, clock: Clock, other: Tracer
) -> None:
    # An instrumentation that wraps the SDK outside ours starts its span first and ends it last.
    budget = Budget("all", 1)
    instrument(budgets=[budget], store=store, clock=clock)
    client = client_for(FakeProvider())

    with other.start_as_current_span("chat gpt-4o-mini") as outer:
        ask(client)
        outer.set_attributes(_inference(103, 7))
    assert telemetry.tracer_provider.force_flush()

    assert ledger(store, budget, clock.now) == Balance(spent=CALL_COST_PICO, reserved=0)


def test_genai_spans_of_other_instrumentations_are_priced_and_counted(
    *,
    instrument: Any,
    telemetry: Telemetry,
    store: SpendStore,
    clock: Clock,
    other: Tracer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    everything = Budget("everything", 1, action="warn", thresholds=(0.0004,))
    search = Budget("search", "0.00066", match={"tokenbudget.feature": "search"}, thresholds=())
    crossed: list[ThresholdEvent] = []
    instrument(budgets=[everything, search], store=store, clock=clock, on_threshold=crossed.append)

    with caplog.at_level(logging.WARNING, logger="opentelemetry_instrumentation_tokenbudget.budgets"):
        with cost_attributes(feature="search"):
            # Priced from its tokens, with the attribution in force where it started.
            with other.start_as_current_span("chat gpt-4o-mini", attributes=_inference()):
                pass
            # A span that carries its own cost in USD is taken at that cost.
            with other.start_as_current_span(
                "chat gpt-4o-mini",
                attributes={
                    **_inference(),
                    "gen_ai.usage.cost.amount": 0.0002,
                    "gen_ai.usage.cost.currency": "USD",
                    "gen_ai.usage.cost.source": "provider",
                },
            ):
                pass
        # Not inference: an agent's tokens are the sum of its calls'.
        with other.start_as_current_span(
            "invoke_agent planner", attributes=_inference(operation="invoke_agent")
        ):
            pass
        # No known price: said once, not counted.
        for _ in range(2):
            with other.start_as_current_span("chat mystery", attributes=_inference(model="mystery-model-9")):
                pass
        assert telemetry.tracer_provider.force_flush()

    assert ledger(store, everything, clock.now) == Balance(spent=FOREIGN_COST_PICO + 200 * 10**6, reserved=0)
    assert ledger(store, search, clock.now) == Balance(spent=FOREIGN_COST_PICO + 200 * 10**6, reserved=0)
    # Thresholds are checked on this spend too (no span of ours to carry an event, so log and callback).
    assert [(event.budget, event.threshold, event.spent_usd) for event in crossed] == [
        ("everything", Decimal("0.0004"), Decimal("0.00045")),
    ]
    assert [r.getMessage() for r in caplog.records if r.name.endswith(".processor")] == [
        "tokenbudget: no price is known for model 'mystery-model-9' of provider 'openai'; budgets cannot"
        " count the spans of other instrumentations that call it. Pass prices={'mystery-model-9': {...}}"
        " to price it"
    ]

    # That spend counts against the limit of calls made through our wrappers.
    client = client_for(FakeProvider())
    with cost_attributes(feature="search"), pytest.raises(BudgetExceededError) as raised:
        ask(client)
    assert raised.value.spent_usd == Decimal("0.00065")


def test_after_uninstrument_the_processor_counts_nothing(
    *, instrument: Any, telemetry: Telemetry, store: SpendStore, clock: Clock, other: Tracer
) -> None:
    budget = Budget("all", 1)
    instrumentor = instrument(budgets=[budget], store=store, clock=clock)
    with other.start_as_current_span("chat gpt-4o-mini", attributes=_inference()):
        pass
    assert telemetry.tracer_provider.force_flush()
    instrumentor.uninstrument()

    with other.start_as_current_span("chat gpt-4o-mini", attributes=_inference()):
        pass
    assert telemetry.tracer_provider.force_flush()

    assert ledger(store, budget, clock.now) == Balance(spent=FOREIGN_COST_PICO, reserved=0)
    assert int(Decimal("0.00045") * PICO) == FOREIGN_COST_PICO
