"""Nothing lost in an outage: under on_store_error="open", the spend of calls admitted while the store
is down is journaled and written when the store answers again, so that the store then holds exactly
what the spans say was spent. A real redis-server killed and restarted; a SQLite file locked by
another connection."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest

from opentelemetry_instrumentation_tokenbudget import Budget, cost_attributes
from opentelemetry_instrumentation_tokenbudget.budgets.journal import SpendJournal
from opentelemetry_instrumentation_tokenbudget.budgets.store import Balance, LedgerKey
from opentelemetry_instrumentation_tokenbudget.budgets.stores import open_store
from opentelemetry_instrumentation_tokenbudget.testing import FakeProvider
from tests import conftest_redis
from tests.budget_support import CALL_COST, CALL_COST_PICO, ask, client_for, ledger, span_costs
from tests.conftest import Telemetry
from tests.redis_server import RedisServer
from tests.test_budgets_store_down import _restart_on_the_same_port

redis_server_factory = conftest_redis.redis_server_factory

CALLS_IN_OUTAGE = 10


@pytest.fixture
def server(
    redis_server_factory: Callable[[], AbstractContextManager[RedisServer]],
) -> Iterator[RedisServer]:
    with redis_server_factory() as started:
        yield started


def test_a_redis_outage_loses_no_spend(*, instrument: Any, telemetry: Telemetry, server: RedisServer) -> None:
    budget = Budget("daily", "1", "day")
    instrument(budgets=[budget], store=server.url)  # on_store_error="open"
    client = client_for(FakeProvider())
    ask(client)
    server.stop()
    for _ in range(CALLS_IN_OUTAGE):
        ask(client)
    restarted = _restart_on_the_same_port(server)
    try:
        # The first call after the restart writes the journal (the restarted server is empty).
        ask(client)
        store = open_store(server.url)
        balance = ledger(store, budget, time.time())
        store.close()
    finally:
        restarted.kill()
        restarted.wait(10)
    # The call before the outage was lost with the server's memory (it kept no data); every call
    # from the outage on is in the store, and nothing stays reserved.
    assert balance == Balance(spent=(CALLS_IN_OUTAGE + 1) * CALL_COST_PICO, reserved=0)
    assert span_costs(telemetry) == (CALLS_IN_OUTAGE + 2) * CALL_COST


def test_a_locked_sqlite_file_loses_no_spend(
    *, instrument: Any, telemetry: Telemetry, tmp_path: Path
) -> None:
    path = tmp_path / "spend.db"
    budget = Budget("daily", "1", "day")
    store = open_store(f"sqlite:///{path}", busy_timeout=0.05)
    instrument(budgets=[budget], store=store)
    client = client_for(FakeProvider())
    ask(client)
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    for _ in range(CALLS_IN_OUTAGE):
        ask(client)
    locker.execute("ROLLBACK")
    locker.close()
    ask(client)
    balance = ledger(store, budget, time.time())
    store.close()
    assert balance == Balance(spent=(CALLS_IN_OUTAGE + 2) * CALL_COST_PICO, reserved=0)
    assert span_costs(telemetry) == (CALLS_IN_OUTAGE + 2) * CALL_COST


class _Down:
    """A store that fails every settlement (for the journal's bound)."""

    def settle(self, keys: Any, reserved: int, actual: int) -> Any:
        raise ConnectionError("down")


def test_the_journal_is_bounded_and_says_what_it_dropped(caplog: pytest.LogCaptureFixture) -> None:
    journal = SpendJournal(max_entries=3)
    key = LedgerKey("daily", "", 0, 10**10, 10**12, True)
    for amount in range(1, 6):
        journal.add([key], 0, amount)
    assert len(journal) == 3
    assert journal.write(_Down()) == 0  # type: ignore[arg-type]
    assert len(journal) == 3
    store = open_store("memory")
    assert journal.write(store) == 3
    # The oldest two were dropped: 3 + 4 + 5 remain.
    (balance,) = store.balances([key])
    assert balance == Balance(spent=12, reserved=0)
    assert "2 of the oldest were dropped" not in caplog.text
    assert "1 of the oldest were dropped" in caplog.text


class _Recorder:
    """A settlement listener that keeps what each settlement was told the call matched on."""

    def __init__(self) -> None:
        self.attributes: list[dict[str, Any]] = []

    def after_settle(self, charges: Any, balances: Any, amount: int, span: Any, attributes: Any) -> None:
        self.attributes.append(dict(attributes))


def test_a_call_admitted_while_the_store_was_down_settles_with_its_attributes(
    *, instrument: Any, tmp_path: Path
) -> None:
    # The file is locked when the call is reserved and unlocked by the time the provider answers:
    # the settlement reaches the store, and the signals (forecast, anomaly drivers) must be told the
    # call's attributes as for any other call, not nothing.
    path = tmp_path / "spend.db"
    budget = Budget("per-user", "1", "day", group_by=["user.id"])
    store = open_store(f"sqlite:///{path}", busy_timeout=0.05)
    instrumentor = instrument(budgets=[budget], store=store)
    recorder = _Recorder()
    instrumentor._runtime.guard.budgets.settle_listeners.append(recorder)  # the hook under test
    locker = sqlite3.connect(path, isolation_level=None)
    provider = FakeProvider()

    def unlock_then_answer(request: httpx2.Request) -> httpx2.Response:
        if locker.in_transaction:
            locker.execute("ROLLBACK")
        return provider.handle(request)

    client = openai.OpenAI(
        api_key="test",
        base_url="https://api.openai.com/v1",
        http_client=httpx2.Client(transport=httpx2.MockTransport(unlock_then_answer)),
        max_retries=0,
    )
    locker.execute("BEGIN EXCLUSIVE")
    with cost_attributes(user="u-42", feature="search"):
        ask(client)
    locker.close()
    balance = ledger(store, budget, time.time(), group="user.id=u-42")
    store.close()
    assert balance == Balance(spent=CALL_COST_PICO, reserved=0)
    assert len(recorder.attributes) == 1
    assert recorder.attributes[0]["user.id"] == "u-42"
    assert recorder.attributes[0]["tokenbudget.feature"] == "search"
    assert recorder.attributes[0]["gen_ai.request.model"] == "gpt-4o-mini"
