"""Thresholds fire once per window and group (a log warning, a span event, a metric, a callback), and
the budget gauges report the store's figures per group, or one series once groups are too many."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import openai
import pytest

from opentelemetry_instrumentation_tokenbudget import Budget, ThresholdEvent, cost_attributes
from opentelemetry_instrumentation_tokenbudget.budgets.store import SpendStore
from opentelemetry_instrumentation_tokenbudget.budgets.stores import open_store
from opentelemetry_instrumentation_tokenbudget.testing import FakeProvider
from tests.budget_support import Clock, ask, client_for
from tests.conftest import Telemetry

JUNE_1 = datetime(2026, 6, 1, tzinfo=timezone.utc)
JUNE_2 = datetime(2026, 6, 2, tzinfo=timezone.utc)
JUNE_3 = datetime(2026, 6, 3, tzinfo=timezone.utc)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(clock: Clock) -> Iterator[SpendStore]:
    opened = open_store("memory", clock=clock)
    yield opened
    opened.close()


@pytest.fixture
def client() -> openai.OpenAI:
    return client_for(FakeProvider())


def _crossed(telemetry: Telemetry) -> list[tuple[int, dict[str, Any]]]:
    """(index of our span, event attributes) of every threshold event, in call order."""
    spans = sorted(telemetry.our_spans(), key=lambda span: span.start_time or 0)
    return [
        (index, dict(event.attributes or {}))
        for index, span in enumerate(spans)
        for event in span.events
        if event.name == "tokenbudget.budget.threshold_crossed"
    ]


def test_thresholds_fire_once_per_window_and_group(
    *,
    instrument: Any,
    telemetry: Telemetry,
    store: SpendStore,
    clock: Clock,
    client: openai.OpenAI,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # 25 and 50 microdollars; calls cost 19.65 each, so spend goes 19.65, 39.3, 58.95, 78.6.
    budget = Budget("w", "0.00005", "day", group_by=["user.id"], action="warn", thresholds=(0.5, 1.0))
    events: list[ThresholdEvent] = []
    instrument(budgets=[budget], store=store, clock=clock, on_threshold=events.append)

    with caplog.at_level(logging.WARNING, logger="opentelemetry_instrumentation_tokenbudget.budgets"):
        with cost_attributes(user="u-1"):
            for _ in range(4):
                ask(client)
        with cost_attributes(user="u-2"):
            ask(client)
            ask(client)
        clock.advance(12 * 3600)  # midnight: a new window
        with cost_attributes(user="u-1"):
            ask(client)
            ask(client)

    def event(group: str, threshold: str, spent: str, start: datetime, end: datetime) -> ThresholdEvent:
        return ThresholdEvent(
            "w", group, "warn", Decimal(threshold), Decimal(spent), Decimal("0.00005"), start, end
        )

    assert events == [
        event("user.id=u-1", "0.5", "0.0000393", JUNE_1, JUNE_2),
        event("user.id=u-1", "1.0", "0.00005895", JUNE_1, JUNE_2),
        event("user.id=u-2", "0.5", "0.0000393", JUNE_1, JUNE_2),
        event("user.id=u-1", "0.5", "0.0000393", JUNE_2, JUNE_3),
    ]
    assert [r.getMessage() for r in caplog.records if r.name.endswith(".thresholds")] == [
        "tokenbudget: budget 'w' for user.id=u-1 passed 50% of its limit: spent $0.0000393 of $0.00005;"
        " the window resets at 2026-06-02T00:00:00+00:00",
        "tokenbudget: budget 'w' for user.id=u-1 passed 100% of its limit: spent $0.00005895 of $0.00005;"
        " the window resets at 2026-06-02T00:00:00+00:00",
        "tokenbudget: budget 'w' for user.id=u-2 passed 50% of its limit: spent $0.0000393 of $0.00005;"
        " the window resets at 2026-06-02T00:00:00+00:00",
        "tokenbudget: budget 'w' for user.id=u-1 passed 50% of its limit: spent $0.0000393 of $0.00005;"
        " the window resets at 2026-06-03T00:00:00+00:00",
    ]

    def attributes(group: str, threshold: float, spent: float) -> dict[str, Any]:
        return {
            "tokenbudget.budget.name": "w",
            "tokenbudget.budget.action": "warn",
            "tokenbudget.budget.threshold": threshold,
            "tokenbudget.budget.spent": spent,
            "tokenbudget.budget.limit": 5e-05,
            "tokenbudget.budget.group": group,
        }

    # On the span of the call whose cost took the spend across: calls 2, 3, 6 and 8.
    assert _crossed(telemetry) == [
        (1, attributes("user.id=u-1", 0.5, 3.93e-05)),
        (2, attributes("user.id=u-1", 1.0, 5.895e-05)),
        (5, attributes("user.id=u-2", 0.5, 3.93e-05)),
        (7, attributes("user.id=u-1", 0.5, 3.93e-05)),
    ]
    points = {
        point.attributes["tokenbudget.budget.threshold"]: (point.value, dict(point.attributes))
        for point in telemetry.metric_points("tokenbudget.budget.threshold_crossings")
    }
    assert points == {
        0.5: (
            3,
            {
                "tokenbudget.budget.name": "w",
                "tokenbudget.budget.action": "warn",
                "tokenbudget.budget.threshold": 0.5,
            },
        ),
        1.0: (
            1,
            {
                "tokenbudget.budget.name": "w",
                "tokenbudget.budget.action": "warn",
                "tokenbudget.budget.threshold": 1.0,
            },
        ),
    }


def test_one_call_can_cross_several_thresholds_and_a_failing_callback_is_contained(
    *,
    instrument: Any,
    telemetry: Telemetry,
    store: SpendStore,
    clock: Clock,
    client: openai.OpenAI,
    caplog: pytest.LogCaptureFixture,
) -> None:
    budget = Budget("w", "0.00002", action="warn")
    seen: list[Decimal] = []

    def callback(event: ThresholdEvent) -> None:
        seen.append(event.threshold)
        raise RuntimeError("the callback's own bug")

    instrument(budgets=[budget], store=store, clock=clock, on_threshold=callback)
    with caplog.at_level(logging.WARNING):
        response = ask(client)

    assert response.choices[0].message.content.startswith("This is a fake reply")
    # 19.65 of 20 microdollars: past 50% and 80% at once, not 100%.
    assert seen == [Decimal("0.5"), Decimal("0.8")]
    assert [r.getMessage() for r in caplog.records if r.name.endswith(".thresholds")] == [
        "tokenbudget: budget 'w' passed 50% of its limit: spent $0.00001965 of $0.00002; the budget has no"
        " window, so it never resets",
        "tokenbudget: the on_threshold callback raised",
        "tokenbudget: budget 'w' passed 80% of its limit: spent $0.00001965 of $0.00002; the budget has no"
        " window, so it never resets",
        "tokenbudget: the on_threshold callback raised",
    ]
    assert [attributes["tokenbudget.budget.threshold"] for _, attributes in _crossed(telemetry)] == [0.5, 0.8]
    assert all("tokenbudget.budget.group" not in attributes for _, attributes in _crossed(telemetry))


def _gauges(telemetry: Telemetry) -> dict[str, dict[tuple[str, str | None], float]]:
    result: dict[str, dict[tuple[str, str | None], float]] = {}
    for name in ("tokenbudget.budget.usage", "tokenbudget.budget.limit", "tokenbudget.budget.utilization"):
        result[name] = {
            (
                point.attributes["tokenbudget.budget.name"],
                point.attributes.get("tokenbudget.budget.group"),
            ): point.value
            for point in telemetry.metric_points(name)
        }
    return result


def test_budget_gauges_report_the_stores_figures_per_group(
    instrument: Any, telemetry: Telemetry, store: SpendStore, clock: Clock, client: openai.OpenAI
) -> None:
    per_user = Budget("per-user", "0.00005", "day", group_by=["user.id"], action="warn")
    overall = Budget("overall", "0.001", "day")
    instrument(budgets=[per_user, overall], store=store, clock=clock)
    with cost_attributes(user="u-1"):
        ask(client)
        ask(client)
    with cost_attributes(user="u-2"):
        ask(client)

    assert _gauges(telemetry) == {
        "tokenbudget.budget.usage": {
            ("per-user", "user.id=u-1"): 3.93e-05,
            ("per-user", "user.id=u-2"): 1.965e-05,
            ("overall", None): 5.895e-05,
        },
        "tokenbudget.budget.limit": {
            ("per-user", "user.id=u-1"): 5e-05,
            ("per-user", "user.id=u-2"): 5e-05,
            ("overall", None): 0.001,
        },
        "tokenbudget.budget.utilization": {
            ("per-user", "user.id=u-1"): 0.786,
            ("per-user", "user.id=u-2"): 0.393,
            ("overall", None): 0.05895,
        },
    }
    (point,) = [
        p
        for p in telemetry.metric_points("tokenbudget.budget.usage")
        if p.attributes.get("tokenbudget.budget.group") == "user.id=u-2"
    ]
    assert dict(point.attributes) == {
        "tokenbudget.budget.name": "per-user",
        "tokenbudget.budget.action": "warn",
        "tokenbudget.budget.group": "user.id=u-2",
    }


def test_past_max_metric_groups_a_grouped_budget_reports_its_fullest_group_only(
    instrument: Any, telemetry: Telemetry, store: SpendStore, clock: Clock, client: openai.OpenAI
) -> None:
    per_user = Budget("per-user", "0.00005", "day", group_by=["user.id"], action="warn")
    instrument(budgets=[per_user], store=store, clock=clock, max_metric_groups=1)
    with cost_attributes(user="u-1"):
        ask(client)
    with cost_attributes(user="u-2"):
        ask(client)
        ask(client)

    assert _gauges(telemetry) == {
        "tokenbudget.budget.usage": {("per-user", None): 3.93e-05},
        "tokenbudget.budget.limit": {("per-user", None): 5e-05},
        "tokenbudget.budget.utilization": {("per-user", None): 0.786},
    }
    # The next window has seen no group yet: nothing to report for it.
    clock.advance(12 * 3600)
    telemetry.reader.collect()
    assert telemetry.metric_points("tokenbudget.budget.usage") == []
