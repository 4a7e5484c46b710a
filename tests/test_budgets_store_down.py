"""A spend store that goes away (a real redis-server, killed): warn budgets fail open, blocking budgets
follow on_store_error, the failure is logged loudly once, and a call admitted meanwhile still records
its cost when the store is back before it ends."""

from __future__ import annotations

import logging
import re
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import httpx2
import openai
import pytest

from opentelemetry_instrumentation_tokenbudget import Budget, BudgetExceededError, cost_attributes
from opentelemetry_instrumentation_tokenbudget.budgets.store import Balance
from opentelemetry_instrumentation_tokenbudget.budgets.stores import open_store
from opentelemetry_instrumentation_tokenbudget.errors import BudgetStoreUnavailableError
from opentelemetry_instrumentation_tokenbudget.testing import FakeProvider
from tests import conftest_redis
from tests.budget_support import CALL_COST_PICO, ask, client_for, ledger
from tests.conftest import Telemetry
from tests.redis_server import RedisServer, redis_server_binary

redis_server_factory = conftest_redis.redis_server_factory

HEALTH_LOGGER = "opentelemetry_instrumentation_tokenbudget.budgets.store_health"


@pytest.fixture
def server(
    redis_server_factory: Callable[[], AbstractContextManager[RedisServer]],
) -> Iterator[RedisServer]:
    with redis_server_factory() as started:
        yield started


def _health_logs(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == HEALTH_LOGGER]


def test_closed_refuses_blocking_budgets_and_warn_budgets_stay_open(
    *,
    instrument: Any,
    telemetry: Telemetry,
    server: RedisServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    chat = Budget("chat", 1, match={"tokenbudget.feature": "chat"})
    reports = Budget("reports", 1, match={"tokenbudget.feature": "report"}, action="warn")
    instrument(budgets=[chat, reports], store=server.url, on_store_error="closed")
    client = client_for(provider := FakeProvider())
    with cost_attributes(feature="chat"):
        ask(client)

    server.stop()
    with caplog.at_level(logging.WARNING, logger=HEALTH_LOGGER):
        with cost_attributes(feature="chat"), pytest.raises(BudgetStoreUnavailableError) as raised:
            ask(client)
        with cost_attributes(feature="report"):
            ask(client)

    assert isinstance(raised.value, BudgetExceededError)
    cause = re.escape(f"the Redis spend store failed: Error 111 connecting to 127.0.0.1:{server.port}.")
    pattern = (
        re.escape(f"budget 'chat' refused the call before sending it: its spend store {server.url} failed (")
        + f"StoreError: {cause}.*"
        + re.escape(") and on_store_error='closed'; the limit is $1.00")
    )
    assert re.fullmatch(pattern, str(raised.value))
    assert (raised.value.spent_usd, raised.value.reserved_usd) == (None, None)
    # The refused call sent nothing; the warn budget's call went through.
    assert len(provider.requests) == 2
    # Loud once, not once per failed operation (the report call's reserve and settle failed too).
    ((level, message),) = _health_logs(caplog)
    assert level == logging.ERROR
    assert re.fullmatch(
        re.escape(f"tokenbudget: the spend store {server.url} failed on reserve (StoreError: ")
        + f"{cause}.*"
        + re.escape(
            "); until it answers again, blocking budgets refuse every call they cover"
            " (on_store_error='closed'), and warn budgets count nothing"
        ),
        message,
    )
    refusals = {
        p.attributes["tokenbudget.budget.name"]: p.value
        for p in telemetry.metric_points("tokenbudget.budget.refusals")
    }
    assert refusals == {"chat": 1}


def _restart_on_the_same_port(server: RedisServer) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            redis_server_binary(),
            "--port",
            str(server.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=0.5) as connection:
                connection.sendall(b"PING\r\n")
                if connection.recv(64).startswith(b"+PONG"):
                    return process
        except OSError:
            time.sleep(0.02)
    process.kill()
    raise AssertionError("redis-server did not come back")


def test_open_admits_and_the_call_records_its_cost_once_the_store_is_back(
    *,
    instrument: Any,
    telemetry: Telemetry,
    server: RedisServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    budget = Budget("hard", "0.00002")
    instrument(budgets=[budget], store=server.url)  # on_store_error="open" is the default
    provider = FakeProvider()
    restarted: list[subprocess.Popen[bytes]] = []

    def store_comes_back_during_the_call(request: httpx2.Request) -> httpx2.Response:
        restarted.append(_restart_on_the_same_port(server))
        return provider.handle(request)

    client = openai.OpenAI(
        api_key="test",
        http_client=httpx2.Client(transport=httpx2.MockTransport(store_comes_back_during_the_call)),
        max_retries=0,
    )
    server.stop()
    try:
        with caplog.at_level(logging.WARNING, logger=HEALTH_LOGGER):
            ask(client)
        # The restarted server is empty: all it holds is what the call settled after it came back.
        store = open_store(server.url)
        assert ledger(store, budget, time.time()) == Balance(spent=CALL_COST_PICO, reserved=0)
        store.close()
    finally:
        for process in restarted:
            process.kill()
            process.wait(10)

    logs = _health_logs(caplog)
    assert [level for level, _ in logs] == [logging.ERROR, logging.WARNING]
    assert logs[0][1].endswith(
        "; until it answers again, blocking budgets admit calls unchecked (on_store_error='open'), and warn"
        " budgets count nothing"
    )
    assert logs[1][1] == (
        f"tokenbudget: the spend store {server.url} answers again after 1 failed operation; calls admitted"
        " meanwhile were not reserved, and the spend of those that settled meanwhile is written from the"
        " journal"
    )
