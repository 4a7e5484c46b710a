"""Attribution across services as W3C baggage: put there upstream with cost_attributes(propagate=True),
read back downstream by a service instrumented with baggage_attribution=True, and by nobody else."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from opentelemetry_instrumentation_tokenbudget import Budget, BudgetExceededError, cost_attributes
from opentelemetry_instrumentation_tokenbudget.budgets.store import Balance, SpendStore
from opentelemetry_instrumentation_tokenbudget.budgets.stores import open_store
from opentelemetry_instrumentation_tokenbudget.testing import FakeProvider
from tests.budget_support import CALL_COST_PICO, Clock, ask, client_for, ledger
from tests.conftest import Telemetry

PROPAGATOR = CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])


def _headers_sent_upstream(**attributes: Any) -> dict[str, str]:
    headers: dict[str, str] = {}
    with cost_attributes(**attributes):
        PROPAGATOR.inject(headers)
    return headers


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(clock: Clock) -> Iterator[SpendStore]:
    opened = open_store("memory", clock=clock)
    yield opened
    opened.close()


def test_propagate_puts_the_attribution_into_baggage() -> None:
    assert _headers_sent_upstream(user="u-42", feature="search", propagate=True) == {
        "baggage": "tokenbudget.feature=search,user.id=u-42"
    }
    assert _headers_sent_upstream(user="u-42", feature="search") == {}


def test_downstream_reads_baggage_when_asked_and_local_values_win(
    *, instrument: Any, telemetry: Telemetry, store: SpendStore, clock: Clock
) -> None:
    budget = Budget("per-user", "0.00005", group_by=["user.id"])
    instrument(
        budgets=[budget],
        store=store,
        clock=clock,
        baggage_attribution=True,
        # Named for it: baggage is the caller's word, and picks budget groups only for these keys.
        baggage_budget_keys=["user.id"],
    )
    client = client_for(FakeProvider())
    headers = _headers_sent_upstream(user="u-42", feature="search", propagate=True)

    token = otel_context.attach(PROPAGATOR.extract(headers))
    try:
        ask(client)
        ask(client)
        with pytest.raises(BudgetExceededError) as raised:
            ask(client)
        with cost_attributes(user="u-7"):
            ask(client)
    finally:
        otel_context.detach(token)

    assert raised.value.group == "user.id=u-42"
    assert ledger(store, budget, clock.now, "user.id=u-42") == Balance(spent=2 * CALL_COST_PICO, reserved=0)
    assert ledger(store, budget, clock.now, "user.id=u-7") == Balance(spent=CALL_COST_PICO, reserved=0)
    spans = telemetry.our_spans()
    assert [(s.attributes["user.id"], s.attributes["tokenbudget.feature"]) for s in spans] == [
        ("u-42", "search"),
        ("u-42", "search"),
        ("u-7", "search"),
    ]


def test_baggage_is_ignored_unless_asked_for(
    *, instrument: Any, telemetry: Telemetry, store: SpendStore, clock: Clock
) -> None:
    budget = Budget("per-user", "0.00005", group_by=["user.id"])
    instrument(budgets=[budget], store=store, clock=clock)
    headers = _headers_sent_upstream(user="u-42", propagate=True)

    token = otel_context.attach(PROPAGATOR.extract(headers))
    try:
        ask(client_for(FakeProvider()))
    finally:
        otel_context.detach(token)

    assert "user.id" not in telemetry.only_span().attributes
    assert ledger(store, budget, clock.now, "user.id=<unset>") == Balance(spent=CALL_COST_PICO, reserved=0)


def test_only_the_names_asked_for_are_read(*, instrument: Any, telemetry: Telemetry) -> None:
    instrument(baggage_attribution=["tokenbudget.tenant"])
    headers = _headers_sent_upstream(user="u-42", tenant="t-9", propagate=True)

    token = otel_context.attach(PROPAGATOR.extract(headers))
    try:
        ask(client_for(FakeProvider()))
    finally:
        otel_context.detach(token)

    attributes = telemetry.only_span().attributes
    assert attributes["tokenbudget.tenant"] == "t-9"
    assert "user.id" not in attributes
