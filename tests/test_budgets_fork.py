"""A process forked while other threads are mid-call (a prefork server such as gunicorn, after the
application was instrumented): the child's locks, store connections and the budget processor's worker
are its own, so the child's calls go on and are counted, with every store."""

from __future__ import annotations

import faulthandler
import os
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

from opentelemetry_instrumentation_tokenbudget import Budget
from opentelemetry_instrumentation_tokenbudget.budgets.store import SpendStore
from opentelemetry_instrumentation_tokenbudget.budgets.stores import open_store
from opentelemetry_instrumentation_tokenbudget.testing import FakeProvider
from tests import conftest_redis
from tests.budget_support import CALL_COST_PICO, ask, client_for, ledger
from tests.conftest import Telemetry

redis_server = conftest_redis.redis_server
redis_url = conftest_redis.redis_url

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork on this platform")

CHILD_CALLS = 5
FOREIGN_COST_PICO = 150_000_000  # 1000 input tokens of gpt-4o-mini at $0.15 per million


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "memory":
        yield "memory"
    elif request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'spend.db'}"
    else:
        yield request.getfixturevalue("redis_url")


def _foreign_span(tracer_provider: TracerProvider) -> None:
    """A GenAI span of another instrumentation, priced and counted by the budget processor."""
    tracer = tracer_provider.get_tracer("another.instrumentation")
    with tracer.start_as_current_span("chat gpt-4o-mini") as span:
        span.set_attributes(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.usage.input_tokens": 1000,
                "gen_ai.usage.output_tokens": 0,
            }
        )


def _fork(work: Callable[[], bool]) -> tuple[int, int]:
    """Fork now; the child waits for a byte on its pipe, runs `work` and exits 0 if it said True (2
    if not, 3 if it hung). Returns the child's pid and the pipe's writing end."""
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns that forking a process with threads may deadlock: that is the point.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        status = 1
        try:
            os.close(write_end)
            os.read(read_end, 1)
            faulthandler.dump_traceback_later(30, exit=False)
            signal.signal(signal.SIGALRM, lambda *_: os._exit(3))
            signal.alarm(31)
            status = 0 if work() else 2
        finally:
            os._exit(status)
    os.close(read_end)
    return pid, write_end


def _run(pid: int, write_end: int) -> int:
    """Let the child go on, and wait for its exit code (-9: killed after a minute)."""
    os.write(write_end, b"x")
    os.close(write_end)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return -9


def test_children_forked_mid_call_make_and_count_their_own_calls(
    *, instrument: Any, telemetry: Telemetry, store_url: str
) -> None:
    budget = Budget("shared", "1")
    instrument(budgets=[budget], store=store_url)
    client = client_for(FakeProvider(delay_s=0.0002))
    stop = threading.Event()
    errors: list[BaseException] = []

    def call_until_stopped() -> None:
        try:
            while not stop.is_set():
                ask(client)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    def child_work() -> bool:
        child_client = client_for(FakeProvider())
        for _ in range(CHILD_CALLS):
            ask(child_client)
        _foreign_span(telemetry.tracer_provider)
        # The processor's worker is the child's own: what the foreign span costs is settled.
        return bool(telemetry.tracer_provider.force_flush(10_000))

    # One call first: its lazy imports (genai-prices) are done before any fork. A module that a thread
    # is still importing when the process forks stays locked in the child, whatever we renew.
    ask(client)
    threads = [threading.Thread(target=call_until_stopped) for _ in range(4)]
    for thread in threads:
        thread.start()
    children = []
    try:
        for _ in range(3):
            time.sleep(0.02)  # the threads are mid-call
            children.append(_fork(child_work))
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    # The children call once the parent's threads stopped, so that none waits on the store's lock
    # past its timeout (a call admitted while the store fails is a case of its own).
    exit_codes = [_run(pid, write_end) for pid, write_end in children]
    assert errors == []
    assert exit_codes == [0, 0, 0]
    if store_url != "memory":  # a memory store is each process's own
        # The children wrote to the shared store: their calls and the foreign spans are in it, with
        # the parent's, and nothing is left reserved.
        store = open_store(store_url)
        balance = ledger(store, budget, time.time())
        store.close()
        parent_calls = len(telemetry.our_spans())
        assert balance.reserved == 0
        assert balance.spent == (parent_calls + 3 * CHILD_CALLS) * CALL_COST_PICO + 3 * FOREIGN_COST_PICO


def test_a_lock_held_by_another_thread_at_the_fork_is_free_in_the_child(
    *, instrument: Any, store_url: str
) -> None:
    # Deterministic: a thread of the parent holds the store's lock while the process forks. The SQLite
    # store's fork waits for it instead (its lock guards every use of SQLite, whose own mutexes a fork
    # mid-transaction would copy held): there the holder lets go after a moment.
    sqlite = store_url.startswith("sqlite")
    store: SpendStore = open_store(store_url)
    instrument(budgets=[Budget("shared", "1")], store=store)
    # The Redis store has no lock of its own; its client's pool has, taken on every command.
    lock = getattr(store, "_lock", None) or store._client.connection_pool._lock  # type: ignore[attr-defined]
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with lock:
            held.set()
            release.wait(30)

    ask(client_for(FakeProvider()))
    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(10)
    if sqlite:
        threading.Timer(0.5, release.set).start()
    started = time.monotonic()
    try:
        child = _fork(lambda: ask(client_for(FakeProvider())) is not None)
        forked_after = time.monotonic() - started
        code = _run(*child)
    finally:
        release.set()
        holder.join(10)
        store.close()
    assert code == 0
    if sqlite:
        assert forked_after >= 0.5
    else:
        assert forked_after < 0.5
