"""Budgets enforced on real OpenAI SDK calls: refused before anything is sent, exact to the picodollar
under contention, per window, per group, per attribute set, whatever the tracing setup.

Each call costs 19.65 microdollars and is estimated at 21 before it is sent (see budget_support).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import httpx2
import openai
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

from opentelemetry_instrumentation_tokenbudget import (
    Budget,
    BudgetExceededError,
    TokenBudgetInstrumentor,
    cost_attributes,
)
from opentelemetry_instrumentation_tokenbudget.budgets.store import Balance, SpendStore
from opentelemetry_instrumentation_tokenbudget.budgets.stores import open_store
from opentelemetry_instrumentation_tokenbudget.testing import FakeProvider
from tests.budget_support import (
    CALL_COST,
    CALL_COST_PICO,
    CALL_ESTIMATE_PICO,
    EXPECTED_ESTIMATE,
    MODEL,
    NOON_JUNE_1,
    PROMPT,
    Clock,
    ask,
    client_for,
    ledger,
    span_costs,
)
from tests.conftest import Telemetry

DAY = 86_400


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(clock: Clock) -> Iterator[SpendStore]:
    # The store expires past windows by its own clock: it must be the test's.
    opened = open_store("memory", clock=clock)
    yield opened
    opened.close()


@pytest.fixture
def provider() -> FakeProvider:
    return FakeProvider()


@pytest.fixture
def client(provider: FakeProvider) -> openai.OpenAI:
    return client_for(provider)


# Strict: never above the limit, and less than one estimate below it: 50 calls of 19.65 = 982.5 <= 1000,
# and 1000 - 982.5 < 21. So exactly 50, whatever the interleaving. Expected: each call in flight may
# cost 0.45 more than it reserved (19.65 against 19.2), so the 16 threads can pass the limit by at
# most 16 * 0.45 = 7.2, which is room for one call more: 50 or 51 (1002.15 of 1000), never 52.
@pytest.mark.parametrize(("reservation", "outcomes"), [("strict", (50,)), ("expected", (50, 51))])
def test_sixteen_threads_never_spend_past_one_hard_limit(
    *,
    instrument: Any,
    telemetry: Telemetry,
    store: SpendStore,
    clock: Clock,
    reservation: str,
    outcomes: tuple[int, ...],
) -> None:
    budget = Budget("hard", "0.001")
    instrument(budgets=[budget], store=store, clock=clock, reservation=reservation)
    # Each answer takes a few milliseconds, so that many calls are in flight at once.
    client = client_for(provider := FakeProvider(delay_s=0.0003))
    barrier = threading.Barrier(16)
    admitted: list[int] = []
    refusals: list[BudgetExceededError] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait(30)
            calls = 0
            while True:
                try:
                    ask(client)
                except BudgetExceededError as refused:
                    refusals.append(refused)
                    # Calls in flight may cost less than they reserved: try again once they settle.
                    # A refusal with nothing in flight is final.
                    if refused.reserved_usd == 0:
                        break
                    time.sleep(0.001)
                    continue
                calls += 1
            admitted.append(calls)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert errors == []
    assert not any(thread.is_alive() for thread in threads)
    calls = sum(admitted)
    ratio = calls * CALL_COST / budget.limit_usd
    print(f"16 threads, reservation={reservation}: {calls} calls, spend/limit = {ratio}")
    assert calls in outcomes
    assert ledger(store, budget, clock.now) == Balance(spent=calls * CALL_COST_PICO, reserved=0)
    assert span_costs(telemetry) == calls * CALL_COST
    assert len(provider.requests) == calls
    assert len(telemetry.our_spans()) == calls
    # The threads did contend: some were refused because of reservations of calls still in flight.
    assert any(refused.reserved_usd for refused in refusals)
    (refused,) = telemetry.metric_points("tokenbudget.budget.refusals")
    assert refused.value == len(refusals)
    assert dict(refused.attributes) == {
        "tokenbudget.budget.name": "hard",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": MODEL,
    }


def test_the_refusal_a_user_sees(
    *,
    instrument: Any,
    telemetry: Telemetry,
    store: SpendStore,
    clock: Clock,
    provider: FakeProvider,
    client: openai.OpenAI,
) -> None:
    budget = Budget("per-user", "0.00005", "day", group_by=["user.id"])
    instrument(budgets=[budget], store=store, clock=clock)
    tracer = telemetry.tracer_provider.get_tracer("the application")

    with tracer.start_as_current_span("handle request"), cost_attributes(user="u-42", feature="search"):
        ask(client)
        ask(client)
        with pytest.raises(BudgetExceededError) as raised:
            ask(client)

    refused = raised.value
    assert str(refused) == (
        "budget 'per-user' for user.id=u-42 refused the call before sending it: spent $0.0000393"
        " + reserved by calls in flight $0.00 + this call's estimate $0.0000192 = $0.0000585 would pass"
        " the limit of $0.00005; the window resets at 2026-06-02T00:00:00+00:00"
    )
    assert (refused.budget, refused.group) == ("per-user", "user.id=u-42")
    assert (refused.spent_usd, refused.reserved_usd) == (Decimal("0.0000393"), Decimal(0))
    assert (refused.estimate_usd, refused.limit_usd) == (EXPECTED_ESTIMATE, Decimal("0.00005"))
    assert refused.resets_at == datetime(2026, 6, 2, tzinfo=timezone.utc)
    # Nothing was sent, and the refused call left no span of its own...
    assert len(provider.requests) == 2
    assert len(telemetry.our_spans()) == 2
    # ...but the caller's span says why it failed.
    (parent,) = [span for span in telemetry.spans() if span.name == "handle request"]
    (event,) = parent.events
    assert event.name == "tokenbudget.budget.refused"
    assert dict(event.attributes or {}) == {
        "tokenbudget.budget.name": "per-user",
        "tokenbudget.budget.group": "user.id=u-42",
        "tokenbudget.budget.spent": 3.93e-05,
        "tokenbudget.budget.reserved": 0.0,
        "tokenbudget.budget.estimate": 1.92e-05,
        "tokenbudget.budget.limit": 5e-05,
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": MODEL,
    }
    (counted,) = telemetry.metric_points("tokenbudget.budget.refusals")
    assert counted.value == 1
    assert dict(counted.attributes) == {
        "tokenbudget.budget.name": "per-user",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": MODEL,
        "tokenbudget.feature": "search",
    }


def test_calls_in_flight_count_against_the_limit(
    instrument: Any, telemetry: Telemetry, store: SpendStore, clock: Clock, provider: FakeProvider
) -> None:
    budget = Budget("hard", "0.00004")
    instrument(budgets=[budget], store=store, clock=clock)
    entered, release = threading.Event(), threading.Event()

    def slow(request: httpx2.Request) -> httpx2.Response:
        entered.set()
        release.wait(10)
        return provider.handle(request)

    slow_client = openai.OpenAI(
        api_key="test", http_client=httpx2.Client(transport=httpx2.MockTransport(slow)), max_retries=0
    )
    first = threading.Thread(target=ask, args=(slow_client,))
    first.start()
    try:
        assert entered.wait(10)
        assert ledger(store, budget, clock.now) == Balance(spent=0, reserved=CALL_ESTIMATE_PICO)
        with pytest.raises(BudgetExceededError) as raised:
            ask(client_for(provider))
    finally:
        release.set()
        first.join(10)

    assert str(raised.value) == (
        "budget 'hard' refused the call before sending it: spent $0.00 + reserved by calls in flight"
        " $0.000021 + this call's estimate $0.000021 = $0.000042 would pass the limit of $0.00004;"
        " the budget has no window, so it never resets"
    )
    assert ledger(store, budget, clock.now) == Balance(spent=CALL_COST_PICO, reserved=0)


@pytest.mark.parametrize(
    ("window", "seconds_to_next", "resets_at"),
    [
        ("day", 12 * 3600, datetime(2026, 6, 2, tzinfo=timezone.utc)),
        ("1h", 3600, datetime(2026, 6, 1, 13, tzinfo=timezone.utc)),
        ("week", 6 * DAY + 12 * 3600, datetime(2026, 6, 8, tzinfo=timezone.utc)),
        ("month", 29 * DAY + 12 * 3600, datetime(2026, 7, 1, tzinfo=timezone.utc)),
    ],
)
def test_a_new_window_starts_from_zero(
    *,
    instrument: Any,
    telemetry: Telemetry,
    store: SpendStore,
    clock: Clock,
    client: openai.OpenAI,
    window: str,
    seconds_to_next: int,
    resets_at: datetime,
) -> None:
    budget = Budget("periodic", "0.00005", window)
    instrument(budgets=[budget], store=store, clock=clock)
    ask(client)
    ask(client)
    with pytest.raises(BudgetExceededError) as raised:
        ask(client)
    assert raised.value.resets_at == resets_at

    clock.advance(seconds_to_next - 1)
    with pytest.raises(BudgetExceededError):
        ask(client)
    clock.advance(1)
    ask(client)
    ask(client)

    assert ledger(store, budget, NOON_JUNE_1) == Balance(spent=2 * CALL_COST_PICO, reserved=0)
    assert ledger(store, budget, clock.now) == Balance(spent=2 * CALL_COST_PICO, reserved=0)


def test_each_group_has_its_own_limit(
    instrument: Any, telemetry: Telemetry, store: SpendStore, clock: Clock, client: openai.OpenAI
) -> None:
    budget = Budget("per-user", "0.00005", "day", group_by=["user.id"])
    instrument(budgets=[budget], store=store, clock=clock)

    with cost_attributes(user="u-1"):
        ask(client)
        ask(client)
        with pytest.raises(BudgetExceededError):
            ask(client)
    with cost_attributes(user="u-2"):
        ask(client)
        ask(client)
    # Calls that name no user share one group rather than escaping the limit.
    ask(client)
    ask(client)
    with pytest.raises(BudgetExceededError) as raised:
        ask(client)

    assert raised.value.group == "user.id=<unset>"
    assert str(raised.value).startswith("budget 'per-user' for user.id=<unset> refused the call")
    for group in ("user.id=u-1", "user.id=u-2", "user.id=<unset>"):
        assert ledger(store, budget, clock.now, group) == Balance(spent=2 * CALL_COST_PICO, reserved=0)


def test_budgets_follow_nested_cost_attributes(
    instrument: Any, telemetry: Telemetry, store: SpendStore, clock: Clock, client: openai.OpenAI
) -> None:
    search = Budget("search", "0.00005", match={"tokenbudget.feature": "search"})
    acme = Budget("acme", 1, match={"tokenbudget.project": "acme"})
    instrument(budgets=[search, acme], store=store, clock=clock)

    with cost_attributes(project="acme", feature="search"):
        ask(client)
        with cost_attributes(feature="rerank"):
            for _ in range(3):
                ask(client)
        ask(client)
        with pytest.raises(BudgetExceededError) as raised:
            ask(client)

    assert raised.value.budget == "search"
    assert ledger(store, search, clock.now) == Balance(spent=2 * CALL_COST_PICO, reserved=0)
    assert ledger(store, acme, clock.now) == Balance(spent=5 * CALL_COST_PICO, reserved=0)
    # A budget on the provider and model the call names.
    assert Budget("m", 1, match={"gen_ai.request.model": MODEL, "gen_ai.provider.name": "openai"}).matches(
        {"gen_ai.request.model": MODEL, "gen_ai.provider.name": "openai"}
    )


def test_budgets_are_exact_when_the_sampler_drops_every_span(
    telemetry: Telemetry, store: SpendStore, clock: Clock, client: openai.OpenAI
) -> None:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider(sampler=ALWAYS_OFF)
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    budget = Budget("hard", "0.00005")
    instrumentor = TokenBudgetInstrumentor()
    instrumentor.instrument(
        tracer_provider=tracer_provider,
        meter_provider=telemetry.meter_provider,
        budgets=[budget],
        store=store,
        clock=clock,
    )
    try:
        ask(client)
        ask(client)
        with pytest.raises(BudgetExceededError):
            ask(client)
    finally:
        instrumentor.uninstrument()

    assert exporter.get_finished_spans() == ()
    assert ledger(store, budget, clock.now) == Balance(spent=2 * CALL_COST_PICO, reserved=0)
    (cost,) = telemetry.metric_points("gen_ai.client.operation.cost")
    assert (cost.count, cost.sum) == (2, 2 * float(CALL_COST))


def test_budgets_are_exact_without_an_sdk_tracer_provider(
    telemetry: Telemetry,
    store: SpendStore,
    clock: Clock,
    client: openai.OpenAI,
    caplog: pytest.LogCaptureFixture,
) -> None:
    budget = Budget("hard", "0.00005")
    instrumentor = TokenBudgetInstrumentor()
    with caplog.at_level(logging.INFO, logger="opentelemetry_instrumentation_tokenbudget"):
        instrumentor.instrument(
            tracer_provider=trace.NoOpTracerProvider(),
            meter_provider=telemetry.meter_provider,
            budgets=[budget],
            store=store,
            clock=clock,
        )
    try:
        ask(client)
        ask(client)
        with pytest.raises(BudgetExceededError):
            ask(client)
    finally:
        instrumentor.uninstrument()

    assert ledger(store, budget, clock.now) == Balance(spent=2 * CALL_COST_PICO, reserved=0)
    assert (
        "tokenbudget: the tracer provider NoOpTracerProvider takes no span processors, so budgets count"
        " the calls made through this instrumentation only, not GenAI spans of other instrumentations"
    ) in caplog.messages


def test_a_failed_call_releases_its_reservation_and_a_stream_holds_it_until_its_end(
    instrument: Any, telemetry: Telemetry, store: SpendStore, clock: Clock, client: openai.OpenAI
) -> None:
    budget = Budget("hard", "0.001")
    instrument(budgets=[budget], store=store, clock=clock, prices={"fail-500": {"input_mtok": 1}})

    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="fail-500", messages=[{"role": "user", "content": PROMPT}])
    assert ledger(store, budget, clock.now) == Balance(spent=0, reserved=0)

    stream = ask(client, stream=True)
    assert ledger(store, budget, clock.now) == Balance(spent=0, reserved=CALL_ESTIMATE_PICO)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream)
    assert text == "This is a fake reply to: " + PROMPT
    assert ledger(store, budget, clock.now) == Balance(spent=CALL_COST_PICO, reserved=0)
    assert span_costs(telemetry) == CALL_COST


def test_without_max_tokens_the_estimate_is_the_models_recent_average_output(
    instrument: Any, telemetry: Telemetry, store: SpendStore, clock: Clock, client: openai.OpenAI
) -> None:
    budget = Budget("hard", "0.0001")
    instrument(budgets=[budget], store=store, clock=clock)

    def ask_without_limit() -> Any:
        return client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": PROMPT}])

    # No output seen yet: 256 tokens assumed, 100 * 0.15 + 256 * 0.6 = 168.6 microdollars.
    with pytest.raises(BudgetExceededError) as raised:
        ask_without_limit()
    assert raised.value.estimate_usd == Decimal("0.0001686")
    # One answer of 7 tokens teaches it: 100 * 0.15 + 7 * 0.6 = 19.2 microdollars now fit.
    ask(client)
    ask_without_limit()
    assert ledger(store, budget, clock.now) == Balance(spent=2 * CALL_COST_PICO, reserved=0)


def test_an_unpriced_model_is_admitted_at_zero_and_said_once(
    *,
    instrument: Any,
    telemetry: Telemetry,
    store: SpendStore,
    clock: Clock,
    client: openai.OpenAI,
    caplog: pytest.LogCaptureFixture,
) -> None:
    budget = Budget("hard", "0.00001")
    instrument(budgets=[budget], store=store, clock=clock)
    with caplog.at_level(logging.WARNING, logger="opentelemetry_instrumentation_tokenbudget.budgets"):
        for _ in range(3):
            client.chat.completions.create(
                model="my-finetune-7", messages=[{"role": "user", "content": PROMPT}], max_tokens=10
            )

    assert ledger(store, budget, clock.now) == Balance(spent=0, reserved=0)
    assert [r.getMessage() for r in caplog.records if r.name.endswith(".budgets.estimate")] == [
        "tokenbudget: no price is known for model 'my-finetune-7' of provider 'openai'; budgets admit its"
        " calls with an estimate of $0 and cannot count their cost. Pass prices={'my-finetune-7': {...}}"
        " to price it"
    ]


def test_uninstrument_stops_enforcing(
    instrument: Any, telemetry: Telemetry, store: SpendStore, clock: Clock, client: openai.OpenAI
) -> None:
    instrumentor = instrument(budgets=[Budget("hard", 0)], store=store, clock=clock)
    with pytest.raises(BudgetExceededError):
        ask(client)
    instrumentor.uninstrument()
    ask(client)
    instrumentor.instrument(
        tracer_provider=telemetry.tracer_provider,
        meter_provider=telemetry.meter_provider,
        budgets=[Budget("hard", 0)],
        store=store,
        clock=clock,
    )
    with pytest.raises(BudgetExceededError):
        ask(client)


def test_a_call_whose_usage_never_arrived_is_charged_its_reservation(
    instrument: Any, telemetry: Telemetry, store: SpendStore, clock: Clock, client: openai.OpenAI
) -> None:
    # An event stream read as raw lines bypasses the SDK's parser, where usage is read; the provider
    # billed it all the same, so it must not be settled at nothing.
    budget = Budget("hard", "0.001")
    instrument(budgets=[budget], store=store, clock=clock)

    with client.chat.completions.with_streaming_response.create(
        model=MODEL, messages=[{"role": "user", "content": PROMPT}], stream=True
    ) as response:
        reserved = ledger(store, budget, clock.now).reserved
        lines = list(response.iter_lines())

    assert "data: [DONE]" in lines
    assert reserved > 0
    assert ledger(store, budget, clock.now) == Balance(spent=reserved, reserved=0)
    assert "gen_ai.usage.cost.amount" not in telemetry.only_span().attributes
