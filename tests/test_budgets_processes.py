"""Four processes, four threads each, making instrumented OpenAI SDK calls against one budget kept in
one SQLite file or one real redis-server.

Every caller calls until it is refused with nothing in flight. In the strict reservation mode the spend
is then never above the limit and less than one estimate below it: calls of 19.65 microdollars
estimated at 21, a limit of 2000, so exactly 101 calls (1984.65), whatever the interleaving. In the
expected mode a call reserves 19.2 once its process has seen one (0.45 less than it costs), so the 16
callers can pass the limit by at most 16 * 0.45 = 7.2: 101 or 102 calls (2004.3), never 103. The
ledger holds exactly what the spans say, and each threshold fires once across the four processes.
"""

from __future__ import annotations

import multiprocessing
import queue
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from opentelemetry_instrumentation_tokenbudget import Budget, BudgetExceededError, TokenBudgetInstrumentor
from opentelemetry_instrumentation_tokenbudget.budgets.store import Balance
from opentelemetry_instrumentation_tokenbudget.budgets.stores import open_store
from opentelemetry_instrumentation_tokenbudget.testing import FakeProvider
from tests import conftest_redis
from tests.budget_support import CALL_COST, CALL_COST_PICO, ask, client_for, ledger

redis_server = conftest_redis.redis_server
redis_url = conftest_redis.redis_url

LIMIT = "0.002"
PROCESSES = 4
THREADS = 4
DEADLINE = 60.0
SPAWN = multiprocessing.get_context("spawn")


def _call_until_refused(client: Any, outcome: dict[str, int], lock: threading.Lock) -> None:
    admitted = in_flight_refusals = 0
    while True:
        try:
            ask(client)
        except BudgetExceededError as refused:
            if refused.reserved_usd == 0:
                break
            in_flight_refusals += 1
            time.sleep(0.001)
            continue
        admitted += 1
    with lock:
        outcome["admitted"] += admitted
        outcome["in_flight_refusals"] += in_flight_refusals


def _process(url: str, reservation: str, start: Any, results: Any) -> None:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    crossed: list[str] = []
    instrumentor = TokenBudgetInstrumentor()
    instrumentor.instrument(
        tracer_provider=tracer_provider,
        meter_provider=MeterProvider(),
        budgets=[Budget("shared", LIMIT)],
        store=url,
        reservation=reservation,
        on_threshold=lambda event: crossed.append(str(event.threshold)),
    )
    client = client_for(FakeProvider(delay_s=0.0003))
    outcome = {"admitted": 0, "in_flight_refusals": 0}
    lock = threading.Lock()
    threads = [
        threading.Thread(target=_call_until_refused, args=(client, outcome, lock)) for _ in range(THREADS)
    ]
    # Start calling together once every process is up, so that they really contend.
    start.wait(DEADLINE)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE)
    instrumentor.uninstrument()
    costs = sum(
        (
            Decimal(repr(span.attributes["gen_ai.usage.cost.amount"]))
            for span in exporter.get_finished_spans()
        ),
        Decimal(0),
    )
    results.put((outcome["admitted"], outcome["in_flight_refusals"], str(costs), crossed))


def _run(url: str, reservation: str) -> list[tuple[int, int, str, list[str]]]:
    start = SPAWN.Barrier(PROCESSES)
    results = SPAWN.Queue()
    processes = [
        SPAWN.Process(target=_process, args=(url, reservation, start, results)) for _ in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    collected: list[tuple[int, int, str, list[str]]] = []
    deadline = time.monotonic() + DEADLINE
    try:
        while len(collected) < PROCESSES:
            assert time.monotonic() < deadline, "the processes did not finish in time"
            try:
                collected.append(results.get(timeout=0.2))
            except queue.Empty:
                failed = [p.exitcode for p in processes if p.exitcode not in (None, 0)]
                assert not failed, f"a process failed with exit code {failed}"
        for process in processes:
            process.join(DEADLINE)
            assert process.exitcode == 0
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join(10)
    return collected


def _check(url: str, reservation: str, collected: list[tuple[int, int, str, list[str]]]) -> None:
    admitted = sum(calls for calls, _, _, _ in collected)
    span_costs = sum((Decimal(costs) for _, _, costs, _ in collected), Decimal(0))
    store = open_store(url)
    try:
        balance = ledger(store, Budget("shared", LIMIT), time.time())
    finally:
        store.close()
    ratio = span_costs / Decimal(LIMIT)
    print(f"4 processes, reservation={reservation}: {admitted} calls, spend/limit = {ratio}")
    assert admitted in ((101,) if reservation == "strict" else (101, 102))
    assert balance == Balance(spent=admitted * CALL_COST_PICO, reserved=0)
    assert span_costs == admitted * CALL_COST
    # They did contend: callers were refused because of other callers' calls in flight.
    assert sum(refusals for _, refusals, _, _ in collected) > 0
    # Each threshold reached fired once in all, in whichever process's call crossed it (100% only
    # when the calls in flight carried the spend past the limit).
    reached = ["0.5", "0.8"] + (["1.0"] if admitted == 102 else [])
    assert sorted(threshold for _, _, _, crossed in collected for threshold in crossed) == reached


@pytest.mark.parametrize("reservation", ["strict", "expected"])
def test_four_processes_share_one_sqlite_file(tmp_path: Path, reservation: str) -> None:
    url = f"sqlite:///{tmp_path / 'spend.db'}"
    _check(url, reservation, _run(url, reservation))


@pytest.mark.parametrize("reservation", ["strict", "expected"])
def test_four_processes_share_one_redis_server(redis_url: str, reservation: str) -> None:
    _check(redis_url, reservation, _run(redis_url, reservation))
