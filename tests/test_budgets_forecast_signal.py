"""Live forecasts and anomaly alerts: real OpenAI SDK calls against the fake provider, a settable
clock, each call costing $0.00001965 (gpt-4o-mini) or $0.0003275 (gpt-4o: 103 x $2.50 + 7 x $10 per
million)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import openai
import pytest

from opentelemetry_instrumentation_tokenbudget import AnomalyEvent, Budget, ForecastEvent, cost_attributes
from opentelemetry_instrumentation_tokenbudget.budgets.store import SpendStore
from opentelemetry_instrumentation_tokenbudget.budgets.stores import open_store
from opentelemetry_instrumentation_tokenbudget.testing import FakeProvider
from tests.budget_support import MAX_TOKENS, PROMPT, Clock, ask, client_for
from tests.conftest import Telemetry

JUNE_1 = datetime(2026, 6, 1, tzinfo=timezone.utc)
SIX_AM = JUNE_1.timestamp() + 6 * 3600
LOGGER = "opentelemetry_instrumentation_tokenbudget.budgets"


@pytest.fixture
def clock() -> Clock:
    return Clock(SIX_AM)


@pytest.fixture
def store(clock: Clock) -> Iterator[SpendStore]:
    opened = open_store("memory", clock=clock)
    yield opened
    opened.close()


@pytest.fixture
def client() -> openai.OpenAI:
    return client_for(FakeProvider())


def per_tenant(limit: str = "0.0005") -> Budget:
    return Budget("per-tenant", limit, "day", group_by=["tokenbudget.tenant"], action="warn")


def events_named(telemetry: Telemetry, name: str) -> list[tuple[int, dict[str, Any]]]:
    spans = sorted(telemetry.our_spans(), key=lambda span: span.start_time or 0)
    return [
        (index, dict(event.attributes or {}))
        for index, span in enumerate(spans)
        for event in span.events
        if event.name == name
    ]


def test_predictive_warning_once_per_window_and_group(
    *, instrument: Any, telemetry: Telemetry, store: SpendStore, clock: Clock, client: openai.OpenAI, caplog
) -> None:
    warnings: list[ForecastEvent] = []
    instrument(budgets=[per_tenant()], store=store, clock=clock, on_forecast=warnings.append)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        for _ in range(12):  # t9: a call every 10 minutes from 06:00, $0.0001179 an hour
            with cost_attributes(tenant="t9"):
                ask(client)
            clock.advance(600)
        with cost_attributes(tenant="t2"):  # t2: one call, far under its limit
            ask(client)

    # The eighth call (07:10, $0.0001572 spent, 29.9% of the day gone) projects $0.0005264 by midnight.
    exhausted = datetime(2026, 6, 1, 22, 47, 41, 68702, tzinfo=timezone.utc)
    assert warnings == [
        ForecastEvent(
            budget="per-tenant",
            group="tokenbudget.tenant=t9",
            action="warn",
            spent_usd=Decimal("0.0001572"),
            forecast_usd=Decimal("0.0005264"),
            limit_usd=Decimal("0.0005"),
            exhausted_at=exhausted,
            window_start=JUNE_1,
            resets_at=datetime(2026, 6, 2, tzinfo=timezone.utc),
            method="burn-rate",
        )
    ]
    assert [r.getMessage() for r in caplog.records if r.name.endswith("forecast_signal")] == [
        "tokenbudget: budget 'per-tenant' for tokenbudget.tenant=t9 will pass its $0.0005 limit around"
        " 22:47 UTC at the current rate (spent $0.0001572, projected $0.0005264 by 2026-06-02T00:00:00+00:00)"
    ]
    assert events_named(telemetry, "tokenbudget.budget.forecast_exceeded") == [
        (
            7,
            {
                "tokenbudget.budget.name": "per-tenant",
                "tokenbudget.budget.action": "warn",
                "tokenbudget.budget.group": "tokenbudget.tenant=t9",
                "tokenbudget.budget.spent": 0.0001572,
                "tokenbudget.budget.forecast": 0.0005264,
                "tokenbudget.budget.limit": 0.0005,
                "tokenbudget.budget.exhausted_at": exhausted.isoformat(),
            },
        )
    ]
    [warned] = telemetry.metric_points("tokenbudget.budget.forecast_warnings")
    assert (warned.value, dict(warned.attributes)) == (
        1,
        {"tokenbudget.budget.name": "per-tenant", "tokenbudget.budget.action": "warn"},
    )
    # The gauge at 08:00: t9 spent 12 calls in 2/12 of the day, t2 one call.
    forecast = {
        point.attributes["tokenbudget.budget.group"]: point.value
        for point in telemetry.metric_points("tokenbudget.budget.forecast")
    }
    assert forecast == {
        "tokenbudget.tenant=t9": pytest.approx(12 * 0.00001965 * 3),
        "tokenbudget.tenant=t2": pytest.approx(0.00001965 * 3),
    }


def test_no_projection_in_the_first_minutes_of_a_window(
    *, instrument: Any, telemetry: Telemetry, store: SpendStore, clock: Clock, client: openai.OpenAI
) -> None:
    warnings: list[ForecastEvent] = []
    clock.now = JUNE_1.timestamp() + 60  # one call in the first minute would "project" $0.028
    instrument(budgets=[per_tenant()], store=store, clock=clock, on_forecast=warnings.append)
    with cost_attributes(tenant="t9"):
        ask(client)
    assert warnings == []
    assert telemetry.metric_points("tokenbudget.budget.forecast") == []


def test_a_spend_just_past_a_twentieth_of_the_limit_warns_as_the_window_opens(
    *, instrument: Any, store: SpendStore, clock: Clock, client: openai.OpenAI
) -> None:
    # Settlements of at most 1/20 of the limit are not projected: as the first 5% of the day ends,
    # a spend of 5.1% of the limit projects past it, and must still be seen to.
    warnings: list[ForecastEvent] = []
    clock.now = JUNE_1.timestamp() + 4350  # 01:12:30, 5.03% of the day
    instrument(budgets=[per_tenant("0.000385")], store=store, clock=clock, on_forecast=warnings.append)
    with cost_attributes(tenant="t9"):
        ask(client)  # $0.00001965, 5.1% of $0.000385

    assert [(event.spent_usd, event.forecast_usd) for event in warnings] == [
        (Decimal("0.00001965"), Decimal("0.0003903"))
    ]


def test_the_previous_window_shape_replaces_the_burn_rate(
    *, instrument: Any, telemetry: Telemetry, store: SpendStore, clock: Clock, client: openai.OpenAI
) -> None:
    instrument(budgets=[per_tenant("1")], store=store, clock=clock)
    for day, calls in ((0, 16), (1, 4)):  # office hours from 01:00, a call every 30 minutes
        clock.now = JUNE_1.timestamp() + day * 86400 + 3600
        for _ in range(calls):
            with cost_attributes(tenant="t9"):
                ask(client)
            clock.advance(1800)
    # Day 2 at 03:00, 4 calls in: the burn rate would project 4 calls per eighth of the day, 32 calls;
    # by 03:00 day 1 had spent a quarter of its total, so the shape projects 16 calls, what day 1 spent.
    [point] = telemetry.metric_points("tokenbudget.budget.forecast")
    assert point.value == pytest.approx(16 * 0.00001965)


def test_anomaly_names_the_model_that_drove_the_excess(
    *, instrument: Any, telemetry: Telemetry, store: SpendStore, clock: Clock, client: openai.OpenAI, caplog
) -> None:
    alerts: list[AnomalyEvent] = []
    instrument(budgets=[per_tenant("10")], store=store, clock=clock, on_anomaly=alerts.append)
    with caplog.at_level(logging.WARNING, logger=LOGGER), cost_attributes(tenant="t9", feature="search"):
        for _ in range(16):  # four hours of one gpt-4o-mini call per quarter hour
            ask(client)
            clock.advance(900)
        ask(client)
        with cost_attributes(feature="export"):
            for _ in range(3):  # a runaway export on gpt-4o
                client.chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": PROMPT}], max_tokens=MAX_TOKENS
                )
        clock.advance(900)
        ask(client)  # the next quarter hour is back to normal

    ten_am = datetime(2026, 6, 1, 10, tzinfo=timezone.utc)
    assert len(alerts) == 1
    alert = alerts[0]
    assert (alert.budget, alert.group, alert.start, alert.end) == (
        "per-tenant",
        "tokenbudget.tenant=t9",
        ten_am,
        datetime(2026, 6, 1, 10, 15, tzinfo=timezone.utc),
    )
    # Alerted by the first gpt-4o call: one mini call and one gpt-4o, against one mini call expected.
    assert alert.observed_usd == pytest.approx(0.00001965 + 0.0003275)
    assert alert.expected_usd == pytest.approx(0.00001965)
    assert (alert.driver, alert.driver_excess_usd) == (
        "gen_ai.request.model=gpt-4o",
        pytest.approx(0.0003275),
    )
    [(index, attributes)] = events_named(telemetry, "tokenbudget.budget.anomaly")
    assert index == 17
    assert attributes["tokenbudget.anomaly.driver"] == "gen_ai.request.model=gpt-4o"
    [counted] = telemetry.metric_points("tokenbudget.budget.anomalies")
    assert counted.value == 1
    assert [r.getMessage() for r in caplog.records if r.name.endswith("anomaly_signal")] == [
        "tokenbudget: budget 'per-tenant' for tokenbudget.tenant=t9 spent $0.0003472 in the 15 minutes from"
        " 10:00 UTC, against $0.00001965 expected; driven by gen_ai.request.model=gpt-4o ($0.0003275 above"
        " its usual share)"
    ]
