"""Baggage is a trust boundary: a remote caller writes it. Values are cleaned and capped, budgets see
them only for the keys named in baggage_budget_keys, and a budget keeps at most max_groups groups per
window, so that rotating ids share one overflow group instead of each getting a fresh limit."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry.baggage.propagation import W3CBaggagePropagator

from opentelemetry_instrumentation_tokenbudget import Budget, BudgetExceededError, cost_attributes
from opentelemetry_instrumentation_tokenbudget.attribution import CONTROL_CHARACTERS, MAX_BAGGAGE_VALUE_LENGTH
from opentelemetry_instrumentation_tokenbudget.budgets.store import Balance, SpendStore
from opentelemetry_instrumentation_tokenbudget.budgets.stores import open_store
from opentelemetry_instrumentation_tokenbudget.testing import FakeProvider
from tests.budget_support import CALL_COST_PICO, Clock, ask, client_for, ledger
from tests.conftest import Telemetry

TENANT = "tokenbudget.tenant"
# Two calls of 19.65 fit (39.3 + 19.2 > 50 refuses the third).
PER_TENANT = "0.00005"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(clock: Clock) -> Iterator[SpendStore]:
    opened = open_store("memory", clock=clock)
    yield opened
    opened.close()


def _from_baggage(header: str) -> object:
    return otel_context.attach(W3CBaggagePropagator().extract({"baggage": header}))


def _calls_until_refused(client: Any, header: str) -> int:
    token = _from_baggage(header)
    admitted = 0
    try:
        while admitted < 20:
            try:
                ask(client)
            except BudgetExceededError:
                break
            admitted += 1
    finally:
        otel_context.detach(token)  # type: ignore[arg-type]
    return admitted


def test_baggage_does_not_pick_a_budget_group_unless_named_for_it(
    *, instrument: Any, telemetry: Telemetry, store: SpendStore, clock: Clock
) -> None:
    budget = Budget("per-tenant", PER_TENANT, group_by=[TENANT])
    instrument(budgets=[budget], store=store, clock=clock, baggage_attribution=True)
    client = client_for(FakeProvider())
    with cost_attributes(tenant="victim"):
        ask(client)

    # The attacker claims to be the victim: the span says so, but the victim's budget is not charged.
    assert _calls_until_refused(client, f"{TENANT}=victim") == 2
    assert ledger(store, budget, clock.now, f"{TENANT}=victim") == Balance(spent=CALL_COST_PICO, reserved=0)
    assert ledger(store, budget, clock.now, f"{TENANT}=<unset>") == Balance(
        spent=2 * CALL_COST_PICO, reserved=0
    )
    assert [span.attributes[TENANT] for span in telemetry.our_spans()] == ["victim"] * 3


def test_named_baggage_keys_pick_groups(*, instrument: Any, store: SpendStore, clock: Clock) -> None:
    budget = Budget("per-tenant", PER_TENANT, group_by=[TENANT])
    instrument(budgets=[budget], store=store, clock=clock, baggage_budget_keys=[TENANT])
    assert _calls_until_refused(client_for(FakeProvider()), f"{TENANT}=t-9") == 2
    assert ledger(store, budget, clock.now, f"{TENANT}=t-9") == Balance(spent=2 * CALL_COST_PICO, reserved=0)


@pytest.mark.parametrize(("max_groups", "admitted"), [(1000, 120), (10, 22)])
def test_rotating_tenants_share_one_overflow_group_past_max_groups(
    *, instrument: Any, store: SpendStore, clock: Clock, max_groups: int, admitted: int
) -> None:
    budget = Budget("per-tenant", PER_TENANT, group_by=[TENANT], max_groups=max_groups)
    instrument(budgets=[budget], store=store, clock=clock, baggage_budget_keys=[TENANT])
    client = client_for(FakeProvider())
    calls = sum(_calls_until_refused(client, f"{TENANT}=rotating-{index}") for index in range(60))
    # 60 tenants of 2 calls each without a cap; with 10 groups, 10 * 2 and 2 in the overflow group.
    assert calls == admitted
    if max_groups == 10:
        assert ledger(store, budget, clock.now, "<overflow>") == Balance(spent=2 * CALL_COST_PICO, reserved=0)
        assert ledger(store, budget, clock.now, f"{TENANT}=rotating-9") == Balance(
            spent=2 * CALL_COST_PICO, reserved=0
        )
        assert ledger(store, budget, clock.now, f"{TENANT}=rotating-10") == Balance(spent=0, reserved=0)


def test_baggage_values_lose_control_characters_and_are_capped(
    *,
    instrument: Any,
    telemetry: Telemetry,
    store: SpendStore,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    budget = Budget("per-tenant", "0.00003", group_by=[TENANT], thresholds=[0.5])
    instrument(
        budgets=[budget],
        store=store,
        clock=clock,
        baggage_attribution=[TENANT, "user.id"],
        baggage_budget_keys=[TENANT],
    )
    client = client_for(FakeProvider())
    forged = "t1%0AWARNING%20forged%0D%1B%E2%80%A8"
    long = "u" * (MAX_BAGGAGE_VALUE_LENGTH + 50)
    with caplog.at_level(logging.DEBUG):
        _calls_until_refused(client, f"{TENANT}={forged},user.id={long}")
    span = telemetry.our_spans()[0]
    assert span.attributes[TENANT] == "t1WARNING forged"
    assert span.attributes["user.id"] == "u" * MAX_BAGGAGE_VALUE_LENGTH
    messages = [record.getMessage() for record in caplog.records]
    assert any("passed 50% of its limit" in message for message in messages)
    assert not [message for message in messages if CONTROL_CHARACTERS.search(message)]


def test_a_local_value_with_control_characters_is_escaped_in_its_group(
    *, instrument: Any, store: SpendStore, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    budget = Budget("per-user", "0.00003", group_by=["user.id"], thresholds=[0.5])
    instrument(budgets=[budget], store=store, clock=clock)
    with caplog.at_level(logging.WARNING), cost_attributes(user="u1\nWARNING forged\u2028"):
        ask(client_for(FakeProvider()))
        with pytest.raises(BudgetExceededError) as refused:
            ask(client_for(FakeProvider()))
    assert refused.value.group == "user.id=u1%0AWARNING forged%u2028"
    assert "\n" not in str(refused.value)
    (warning,) = [record.getMessage() for record in caplog.records if "50%" in record.getMessage()]
    assert "for user.id=u1%0AWARNING forged%u2028 passed 50%" in warning
    assert not CONTROL_CHARACTERS.search(warning)
