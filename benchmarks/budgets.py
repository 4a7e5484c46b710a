"""What a budget costs per call: reserve before the request and settle after it, for each store.

The real OpenAI SDK talks to the in-process fake provider (`httpx2.MockTransport`), instrumented with
an SDK TracerProvider and MeterProvider in both cases; times are wall-clock, one thread. Each round
measures the same calls bare, instrumented without budgets, and then with one blocking daily budget
and one per-user warn budget kept in each store; rounds alternate, and the figures are medians over
rounds, so drift of the machine cancels out.
The limits are high enough that no call is refused.

What budgets add per call is measured apart, in pairs (`--pairs`, `--batch`): with each store's
budgets instrumented once, batches of `--batch` calls alternate with the budgets' guard in place and
taken out of the call's path (the instrumentation otherwise the same), the order within each pair
alternating too; the figure is the median of the pairs' differences, with their quartiles. A pair
lasts a few tens of milliseconds, shorter than the bursts in which a shared machine slows down, so a
burst falls on both halves of most pairs, where between whole rounds it falls on one. The budgets'
flat floor (`budgets_floor.py`) is timed the same way in the guard's place, as "flat floor".

For redis it also counts the round trips of a call (target: at most 2, one to reserve and one to
settle): every packet of commands redis-py sends on a connection is one round trip, counted by
wrapping `send_packed_command` in this process; the server's count of the Lua scripts it ran says
how many atomic operations that was. A round trip's own time is the median of as many PINGs, each
right after a bare call, so that what redis costs a call beyond its round trips can be told apart
from the loopback's latency; PINGs are timed through redis-py and on a bare socket, and the
difference is the client's own time per command, which every store built on redis-py pays whatever
it does.

    python benchmarks/budgets.py [--rounds 10] [--calls 200] [--pairs 200] [--batch 20] [--json FILE]

Redis needs `redis-server` on PATH (a throwaway one is started on a loopback port).
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2
import openai
import redis
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from redis.connection import AbstractConnection

from opentelemetry_instrumentation_tokenbudget import Budget, TokenBudgetInstrumentor, cost_attributes
from opentelemetry_instrumentation_tokenbudget.testing import FakeProvider

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from budgets_floor import FlatBudgets
from report import quartiles, report
from tests.redis_server import running_redis_server

MESSAGES = [{"role": "user", "content": "Say this is a test"}]
FLAT_FLOOR = "flat floor"
"""`budgets_floor.FlatBudgets` with the memory store's budgets: the same work, timed the same way."""
BUDGETS = [
    Budget("daily", 1_000_000, "day"),
    Budget("per-user", 1_000_000, "day", group_by=["user.id"], action="warn"),
]


def _client() -> openai.OpenAI:
    http = httpx2.Client(transport=FakeProvider().transport())
    return openai.OpenAI(api_key="k", base_url="https://api.openai.com/v1", http_client=http, max_retries=0)


def _measure(calls: int, client: openai.OpenAI) -> float:
    """Wall-clock seconds per call: a store's round trips are waiting, not CPU, and the caller pays them."""
    start = time.perf_counter()
    with cost_attributes(user="u-42", feature="bench"):
        for _ in range(calls):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=20)
    return (time.perf_counter() - start) / calls


@contextmanager
def _instrumentation(**options: Any) -> Iterator[tuple[TokenBudgetInstrumentor, InMemorySpanExporter]]:
    """Ours instrumented with `options`, spans kept in memory and metrics read in memory, until the end."""
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    instrumentor = TokenBudgetInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider, **options)
    try:
        yield instrumentor, exporter
    finally:
        instrumentor.uninstrument()
        tracer_provider.shutdown()
        meter_provider.shutdown()


def _instrumented(calls: int, client: openai.OpenAI, **options: Any) -> float:
    with _instrumentation(**options):
        _measure(10, client)  # warm: price look-up, store connection, first window
        return _measure(calls, client)


def run(rounds: int, calls: int, stores: dict[str, str], pairs: int, batch: int) -> dict[str, Any]:
    client = _client()
    _instrumented(50, client)  # import genai-prices and warm the SDK before measuring anything
    per_round: dict[str, list[float]] = {"bare": [], "no budgets": [], **{name: [] for name in stores}}
    for _ in range(rounds):
        per_round["bare"].append(_measure(calls, client))
        per_round["no budgets"].append(_instrumented(calls, client))
        for name, url in stores.items():
            per_round[name].append(_instrumented(calls, client, budgets=BUDGETS, store=url))
    baseline = statistics.median(per_round["no budgets"])
    results: dict[str, Any] = {
        "rounds": rounds,
        "calls_per_round": calls,
        "per_call_us": {},
        "ratio": {},
        "added_us": {},
    }
    for name, seconds in per_round.items():
        median = statistics.median(seconds)
        results["per_call_us"][name] = round(median * 1e6, 1)
        results["ratio"][name] = round(median / baseline, 3)
    for name, url in [*stores.items(), (FLAT_FLOOR, "memory")]:
        low, median, high = quartiles(_paired_added_us(client, url, pairs, batch, flat=name == FLAT_FLOOR))
        results["added_us"][name] = {"median": round(median, 1), "p25": round(low, 1), "p75": round(high, 1)}
    results["pairs"] = pairs
    results["calls_per_batch"] = batch
    return results


def _paired_added_us(
    client: openai.OpenAI, url: str, pairs: int, batch: int, *, flat: bool = False
) -> list[float]:
    """Microseconds per call that the budgets' guard adds, one figure per pair of batches; `flat`:
    `budgets_floor.FlatBudgets` in the guard's place, the same work without the library's parts."""
    added = []
    with _instrumentation(budgets=BUDGETS, store=url) as (instrumentor, exporter):
        scoped = instrumentor._runtime.guard  # the ScopedGuard every call goes through
        guard = FlatBudgets(BUDGETS, instrumentor._runtime.prices) if flat else scoped.budgets
        _measure(50, client)
        for pair in range(pairs):
            seconds = {}
            for budgeted in (True, False) if pair % 2 else (False, True):
                scoped.budgets = guard if budgeted else None
                exporter.clear()
                seconds[budgeted] = _measure(batch, client)
            added.append((seconds[True] - seconds[False]) * 1e6)
    return added


def redis_round_trips(url: str, calls: int) -> dict[str, float]:
    sent = 0
    original = AbstractConnection.send_packed_command

    def counting(self: AbstractConnection, *args: Any, **kwargs: Any) -> Any:
        nonlocal sent
        sent += 1
        return original(self, *args, **kwargs)

    client = _client()
    with redis.Redis.from_url(url) as server, _instrumentation(budgets=BUDGETS, store=url):
        _measure(10, client)  # script loading and the first window happen once, not per call
        scripts_before = _scripts_run(server)
        AbstractConnection.send_packed_command = counting
        try:
            _measure(calls, client)
        finally:
            AbstractConnection.send_packed_command = original
        scripts = _scripts_run(server) - scripts_before
    return {
        "calls": calls,
        "round_trips_per_call": round(sent / calls, 3),
        "server_scripts_per_call": round(scripts / calls, 3),
        "round_trip_us": _round_trip_us(url, calls, client),
        "bare_socket_round_trip_us": _bare_socket_round_trip_us(url, calls, client),
    }


def _round_trip_us(url: str, pings: int, client: openai.OpenAI) -> float:
    """A loopback round trip's own time, as a call meets it: a PING through redis-py."""
    with redis.Redis.from_url(url) as server:
        return _median_us_after_calls(client, pings, server.ping)


def _bare_socket_round_trip_us(url: str, pings: int, client: openai.OpenAI) -> float:
    """The same PING written and read on a socket by hand: the loopback and the server, no client."""
    options = redis.ConnectionPool.from_url(url).connection_kwargs
    with socket.create_connection((options["host"], options["port"])) as connection:
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as redis-py sets it

        def ping() -> None:
            connection.sendall(b"*1\r\n$4\r\nPING\r\n")
            reply = b""
            while not reply.endswith(b"\r\n"):
                reply += connection.recv(64)
            if reply != b"+PONG\r\n":
                raise SystemExit(f"redis answered PING with {reply!r}")

        return _median_us_after_calls(client, pings, ping)


def _median_us_after_calls(client: openai.OpenAI, times: int, operation: Callable[[], object]) -> float:
    """The median of `times` runs of `operation`, each timed alone right after a bare call. (Timed back
    to back, a round trip is tens of microseconds faster on a VM: the waiting thread's core has not
    gone idle between them, as it does during a call's work.)"""
    operation()  # the first opens the connection, on both sides
    seconds = []
    for _ in range(times):
        _measure(1, client)
        start = time.perf_counter()
        operation()
        seconds.append(time.perf_counter() - start)
    return round(statistics.median(seconds) * 1e6, 1)


def _scripts_run(server: redis.Redis) -> int:
    """Lua scripts the server ran (the commands inside a script are counted apart, so not those)."""
    stats = server.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("evalsha", "eval"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--pairs", type=int, default=200, help="pairs of batches for what budgets add")
    parser.add_argument("--batch", type=int, default=20, help="calls per batch of a pair")
    parser.add_argument("--json", type=Path)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory, running_redis_server() as server:
        stores = {
            "memory": "memory",
            "sqlite": f"sqlite:///{directory}/spend.db",
            "redis": server.url,
        }
        results = run(options.rounds, options.calls, stores, options.pairs, options.batch)
        results["redis"] = redis_round_trips(server.url, options.calls)
    report(results, options.json)


if __name__ == "__main__":
    main()
