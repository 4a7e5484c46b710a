"""Spend stores under contention: threads, processes, a killed writer, and a Redis that goes away.

Every caller reserves a fixed amount and settles it in full until it is refused. The spend can then
be predicted exactly: never above the limit, and, since each caller stops only once the limit is
within one call's amount, exactly `amount * (limit // amount)`.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pytest

from opentelemetry_instrumentation_tokenbudget.budgets.store import Balance, LedgerKey, SpendStore, StoreError
from opentelemetry_instrumentation_tokenbudget.budgets.stores import open_store
from opentelemetry_instrumentation_tokenbudget.budgets.stores.redis import RedisStore
from opentelemetry_instrumentation_tokenbudget.budgets.stores.sqlite import SqliteStore
from tests import conftest_redis
from tests.redis_server import RedisServer

# pytest finds fixtures by name in the test module: these make the Redis ones available here.
redis_server = conftest_redis.redis_server
redis_server_factory = conftest_redis.redis_server_factory
redis_url = conftest_redis.redis_url

# Past 2**53 (and the limit within 2**63), so that any rounding in a store would show in the totals.
AMOUNT = 12_345_678_901_234_567
CALLS_THAT_FIT = 200
LIMIT = AMOUNT * CALLS_THAT_FIT + AMOUNT - 1
EXPECTED_SPEND = AMOUNT * CALLS_THAT_FIT
DEADLINE = 30.0

SPAWN = multiprocessing.get_context("spawn")


def _key() -> LedgerKey:
    # Fixed, so that every process names the same entry; the window is far in the future.
    return LedgerKey("daily", "shared", 4_000_000_000, 4_000_086_400, LIMIT, True)


def _spend_until_refused(store: SpendStore) -> int:
    key = _key()
    admitted = 0
    while store.reserve([key], AMOUNT).admitted:
        store.settle([key], AMOUNT, AMOUNT)
        admitted += 1
    return admitted


def _process_spends_until_refused(url: str, start: Any, results: Any) -> None:
    store = open_store(url)
    try:
        # Begin together once every process is up and connected, so that they really contend.
        start.wait(DEADLINE)
        results.put(_spend_until_refused(store))
    finally:
        store.close()


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "redis":
        url: str = request.getfixturevalue("redis_url")
        return url
    return "memory" if request.param == "memory" else f"sqlite:///{tmp_path / 'spend.db'}"


def test_sixteen_threads_never_spend_past_the_limit(store_url: str) -> None:
    store = open_store(store_url)
    barrier = threading.Barrier(16)
    admitted: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait(DEADLINE)
            admitted.append(_spend_until_refused(store))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(16)]
    # Switch threads as often as the interpreter can, so that an unguarded check-then-update would
    # interleave within these few hundred calls.
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(DEADLINE)
    finally:
        sys.setswitchinterval(switch_interval)

    assert errors == []
    assert not any(thread.is_alive() for thread in threads)
    assert sum(admitted) == CALLS_THAT_FIT
    assert store.balances([_key()]) == (Balance(spent=EXPECTED_SPEND, reserved=0),)
    store.close()


def _run_processes(url: str, count: int) -> list[int]:
    start = SPAWN.Barrier(count)
    results = SPAWN.Queue()
    processes = [
        SPAWN.Process(target=_process_spends_until_refused, args=(url, start, results)) for _ in range(count)
    ]
    return _collect(processes, results)


def _collect(processes: list[Any], results: Any) -> list[int]:
    """Start the processes and gather one result from each, failing fast if one dies."""
    for process in processes:
        process.start()
    collected: list[int] = []
    deadline = time.monotonic() + DEADLINE
    try:
        while len(collected) < len(processes):
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
                process.join()
    return collected


def test_four_processes_share_one_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'spend.db'}"

    admitted = _run_processes(url, 4)

    assert sum(admitted) == CALLS_THAT_FIT
    store = open_store(url)
    assert store.balances([_key()]) == (Balance(spent=EXPECTED_SPEND, reserved=0),)
    store.close()


def test_four_processes_share_one_redis_server(redis_url: str) -> None:
    admitted = _run_processes(redis_url, 4)

    assert sum(admitted) == CALLS_THAT_FIT
    store = open_store(redis_url)
    assert store.balances([_key()]) == (Balance(spent=EXPECTED_SPEND, reserved=0),)
    store.close()


def _open_new_files_together(directory: str, trials: int, start: Any, results: Any) -> None:
    opened = 0
    for trial in range(trials):
        start.wait(DEADLINE)
        SqliteStore(os.path.join(directory, f"{trial}.db")).close()
        opened += 1
    results.put(opened)


def test_processes_opening_a_new_sqlite_file_together(tmp_path: Path) -> None:
    # Turning a new file to WAL fails at once, without waiting, when another connection is doing the
    # same; eight processes racing on twenty new files meet that most times.
    trials, count = 20, 8
    start = SPAWN.Barrier(count)
    results = SPAWN.Queue()
    processes = [
        SPAWN.Process(target=_open_new_files_together, args=(str(tmp_path), trials, start, results))
        for _ in range(count)
    ]

    assert _collect(processes, results) == [trials] * count


# --- a writer killed with SIGKILL -----------------------------------------------------------------

KILL_AFTER = 150


def _settlement(index: int) -> int:
    # About a dollar each, so that thousands of them stay far from 2**63 whenever the kill lands.
    return 10**12 + index


def _settle_and_report_forever(url: str, reports: Connection) -> None:
    store = open_store(url)
    key = LedgerKey("daily", "killed", 4_000_000_000, 4_000_086_400, 2**63 - 1, True)
    index = 0
    while True:
        amount = _settlement(index)
        store.reserve([key], amount)
        store.settle([key], amount, amount)
        # Only after settle returned: what the parent hears of is what a caller was told is done.
        reports.send(amount)
        index += 1


def _read_balances(url: str, answer: Connection) -> None:
    store = open_store(url)
    answer.send(store.balances([LedgerKey("daily", "killed", 4_000_000_000, 4_000_086_400, 0, True)]))
    store.close()


def test_sqlite_keeps_every_reported_settlement_of_a_killed_process(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'spend.db'}"
    receiver, sender = SPAWN.Pipe(duplex=False)
    writer = SPAWN.Process(target=_settle_and_report_forever, args=(url, sender))
    writer.start()
    sender.close()
    reported: list[int] = []
    try:
        while len(reported) < KILL_AFTER:
            assert receiver.poll(DEADLINE), "the writer stopped reporting"
            reported.append(receiver.recv())
        os.kill(writer.pid, signal.SIGKILL)  # type: ignore[arg-type]
        writer.join(DEADLINE)
    finally:
        if writer.is_alive():
            writer.kill()
            writer.join()
    assert writer.exitcode == -signal.SIGKILL
    # Settlements reported between our last read and the kill are in the pipe still.
    while receiver.poll():
        try:
            reported.append(receiver.recv())
        except EOFError:
            break

    answer_receiver, answer_sender = SPAWN.Pipe(duplex=False)
    reader = SPAWN.Process(target=_read_balances, args=(url, answer_sender))
    reader.start()
    assert answer_receiver.poll(DEADLINE)
    (balance,) = answer_receiver.recv()
    reader.join(DEADLINE)

    count = len(reported)
    assert reported == [_settlement(i) for i in range(count)]
    done = sum(reported)
    unreported = _settlement(count)
    # The kill may land after a reserve, or after a settle that had not yet been reported.
    assert balance in (
        Balance(spent=done, reserved=0),
        Balance(spent=done, reserved=unreported),
        Balance(spent=done + unreported, reserved=0),
    )


# --- Redis going away -----------------------------------------------------------------------------


@pytest.fixture
def own_redis(
    redis_server_factory: Callable[[], AbstractContextManager[RedisServer]],
) -> Iterator[RedisServer]:
    with redis_server_factory() as server:
        yield server


def _assert_quick_store_errors(store: RedisStore, key: LedgerKey) -> None:
    for operation in (
        lambda: store.reserve([key], 1),
        lambda: store.settle([key], 1, 1),
        lambda: store.release([key], 1),
        lambda: store.balances([key]),
    ):
        started = time.monotonic()
        with pytest.raises(StoreError):
            operation()
        assert time.monotonic() - started < 1.0


def test_redis_killed_is_a_quick_store_error(own_redis: RedisServer) -> None:
    store = RedisStore.from_url(own_redis.url)
    key = LedgerKey("daily", "", int(time.time()), int(time.time()) + 60, 1000, True)
    assert store.reserve([key], 1).admitted

    own_redis.stop()

    _assert_quick_store_errors(store, key)
    store.close()


def test_redis_frozen_is_a_quick_store_error(own_redis: RedisServer) -> None:
    store = RedisStore.from_url(own_redis.url)
    key = LedgerKey("daily", "", int(time.time()), int(time.time()) + 60, 1000, True)
    assert store.reserve([key], 1).admitted

    own_redis.pause()
    try:
        _assert_quick_store_errors(store, key)
    finally:
        own_redis.resume()

    # Once the server answers again, so does the store (the reserve above may have landed meanwhile).
    assert store.settle([key], 0, 0)[0].spent == 0
    store.close()


def test_redis_never_reachable_is_a_quick_store_error(own_redis: RedisServer) -> None:
    port = own_redis.port
    own_redis.stop()
    store = RedisStore.from_url(f"redis://127.0.0.1:{port}/0")

    _assert_quick_store_errors(store, LedgerKey("daily", "", 0, 4_000_000_000, 1000, True))
    store.close()
