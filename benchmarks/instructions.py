"""What budget enforcement, and our instrumentation against the SDK's floor, cost in instructions per
call: figures that load on the machine does not move.

Budgets (the default): the calls of `budgets.py` (the OpenAI SDK against the fake provider,
instrumented with an SDK tracer and meter provider) run under valgrind's callgrind, first without
budgets and then with its two budgets in each store (memory, a SQLite file, a throwaway redis-server
on loopback), in one process. Callgrind instruments nothing until the calls are warmed; then, for
each part, its counters are zeroed, instrumentation is switched on for exactly the measured calls,
and the counts are dumped. The figures are instructions per call (callgrind's `Ir`) of each part and
what each store's budgets add to the calls without budgets. They count this process only: SQLite's
own work (it runs in the process) but not the kernel's writes, and redis-py's side of a round trip
but not the wait for the server, which `budgets.py` times.

    python benchmarks/instructions.py [--calls 200] [--json benchmarks/results/instructions.json]

Floor (`--floor`): the OpenAI chat and Anthropic messages scenarios of `harness.py`, bare, under
`sdk-floor` and under ours (spans through a `SimpleSpanProcessor`, so that all the work of a call is
on its thread), each measured the same way; the figures are each one's instructions per call, what
`sdk-floor` and ours add to the bare call, and ours' added over the floor's added (the issue's
"at most 1.10x the floor", in instructions rather than time).

    python benchmarks/instructions.py --floor [--calls 200] [--json FILE]

Ledger (`--ledger`): the calls of the budgets' measure, without budgets, with `instrument(ledger=...)`
off and on. With the ledger on, the calls are measured first (what the caller's thread does: a
span queued), then the writer's flush of those calls' rows (row made from each span, SQLite
insert), by itself; the writer's own timer is held off meanwhile so that each figure is one thread's.

    python benchmarks/instructions.py --ledger [--calls 200] [--json FILE]

Breakdown (`--breakdown`): where the memory store's budgets spend their instructions. The same calls
with the budgets' parts switched off one after another, each step's difference being that part's
share: the forecast and anomaly signals, the threshold checks, the estimate (a constant instead), and
the store (one that answers without keeping anything). What is left over the calls without budgets is
the guard itself: matching budgets to the call, the reservation's bookkeeping, the output percentiles.
A part switched off also allocates less, so its share includes the garbage collections it caused.

    python benchmarks/instructions.py --breakdown [--calls 200] [--json FILE]

Needs `valgrind` (with `callgrind_control`) on PATH; takes minutes, since every instruction of the
measured calls is simulated. `PYTHONHASHSEED=0` is set so that runs are repeatable. Part of
`./run bench` (`--only instructions`).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
HALVES = ("no budgets", "memory", "sqlite", "redis")
FLAT_FLOOR = "budgets flat floor"
FLOOR_ROWS = ("bare", "sdk-floor", "ours")
FLOOR_SCENARIOS = ("openai chat", "anthropic messages")  # harness.OPENAI_CHAT, harness.ANTHROPIC_MESSAGES


def _control(*arguments: str) -> None:
    """Tells callgrind, which runs this process, to zero, switch on or off, or dump its counters."""
    subprocess.run(["callgrind_control", *arguments, str(os.getpid())], check=True, capture_output=True)


def _counted(call: Callable[[], object], times: int, dump: str) -> None:
    """`times` calls of `call`, and nothing else, counted and dumped under the name `dump`."""
    _control("--zero")
    _control("--instr=on")
    for _ in range(times):
        call()
    _control("--instr=off")
    _control(f"--dump={dump}")


def _budget_calls(
    client: Any,
    calls: int,
    dump: str,
    options: dict[str, Any],
    *,
    prepare: Callable[[Any], None] | None = None,
    frozen: bool = False,
) -> None:
    """The calls of `budgets.py` made with `client`, instrumented with `options`, warmed and then
    counted under `dump`; `prepare` is given the instrumentor first. `frozen`: counted from a full
    collection, with what exists already out of the collector's reach."""
    from budgets import MESSAGES
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from opentelemetry_instrumentation_tokenbudget import TokenBudgetInstrumentor, cost_attributes

    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    instrumentor = TokenBudgetInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider, **options)
    if prepare is not None:
        prepare(instrumentor)

    def call() -> None:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=20)

    with cost_attributes(user="u-42", feature="bench"):
        for _ in range(30):  # price data, the store's first window, the SDK's lazy imports
            call()
        if frozen:
            gc.collect()
            gc.freeze()
        _counted(call, calls, dump)
        if frozen:
            gc.unfreeze()
    spans = exporter.get_finished_spans()
    if len(spans) != calls + 30 or any("gen_ai.usage.cost.amount" not in (s.attributes or {}) for s in spans):
        raise SystemExit(f"{dump}: expected {calls + 30} priced spans, got {len(spans)}")
    instrumentor.uninstrument()
    tracer_provider.shutdown()
    meter_provider.shutdown()


def child(calls: int, stores: dict[str, str]) -> None:
    """Inside callgrind: warm each part, then measure `calls` calls with instrumentation on; `stores`
    gives the URL of each store's part."""
    from budgets import BUDGETS, _client

    client = _client()
    for half in HALVES:
        options: dict[str, Any] = {"budgets": BUDGETS, "store": stores[half]} if half in stores else {}
        _budget_calls(client, calls, half, options)
    _budget_calls(client, calls, FLAT_FLOOR, {"budgets": BUDGETS, "store": "memory"}, prepare=_flat_floor)


def _flat_floor(instrumentor: Any) -> None:
    """The budgets' guard replaced by `budgets_floor.FlatBudgets`, behind the same calls."""
    from budgets_floor import FlatBudgets

    runtime = instrumentor._runtime
    runtime.guard.budgets = FlatBudgets(runtime.guard.budgets.budgets, runtime.prices)


# Each step switches one more part off (`_switch_off`); its share is the step's difference.
BREAKDOWN_STEPS = (
    ("no budgets", ""),
    ("budgets", ""),
    ("forecast and anomaly signals", "signals"),
    ("threshold checks", "thresholds"),
    ("estimate", "estimate"),
    ("memory store", "store"),
)


class _ForgetfulStore:
    """A store that admits everything and keeps nothing: the store's share, taken out."""

    def reserve(self, keys: Any, amount: int) -> Any:
        from opentelemetry_instrumentation_tokenbudget.budgets.store import Balance, ReserveOutcome

        return ReserveOutcome(balances=tuple(Balance(0, 0) for _ in keys), refused_by=None)

    def settle(self, keys: Any, reserved: int, actual: int) -> Any:
        from opentelemetry_instrumentation_tokenbudget.budgets.store import Balance

        return tuple(Balance(0, 0) for _ in keys)

    def release(self, keys: Any, reserved: int) -> None:
        return None


def _switch_off(guard: Any, part: str) -> None:
    if part == "signals":
        guard.settle_listeners.clear()
    elif part == "thresholds":
        guard._notifier.after_settle = lambda *arguments: None
    elif part == "estimate":
        guard._estimate = lambda request: 1_000_000
    elif part == "store":
        guard.store = _ForgetfulStore()


def child_breakdown(calls: int) -> None:
    """Inside callgrind: the calls without budgets, then with the memory store's budgets and one more
    of their parts switched off at each step."""
    from budgets import BUDGETS, _client

    client = _client()
    switched_off: list[str] = []

    def switch_off(instrumentor: Any) -> None:
        guard = instrumentor._runtime.guard.budgets  # the ScopedGuard's BudgetGuard (None without budgets)
        for part in switched_off:
            _switch_off(guard, part)

    for step, part in BREAKDOWN_STEPS:
        if part:
            switched_off.append(part)
        options: dict[str, Any] = {} if step == "no budgets" else {"budgets": BUDGETS, "store": "memory"}
        # Every step from the same collector state: a full collection, which walks every object of the
        # process, falling in one step and not in another would be that step's share many times over.
        _budget_calls(client, calls, step, options, prepare=switch_off, frozen=True)


LEDGER_DUMPS = ("ledger off", "ledger on: caller", "ledger on: writer")


def child_ledger(calls: int) -> None:
    """Inside callgrind: the calls with the ledger off, then on (the calls, then the writer's flush)."""
    from budgets import MESSAGES, _client
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from opentelemetry_instrumentation_tokenbudget import TokenBudgetInstrumentor, cost_attributes
    from opentelemetry_instrumentation_tokenbudget.ledger import writer as ledger_writer

    # The writer thread's timer, held off: its flush is measured apart, called from here.
    ledger_writer.FLUSH_INTERVAL_S = 3600.0  # type: ignore[misc]
    client = _client()
    with tempfile.TemporaryDirectory() as directory:
        for half in ("off", "on"):
            tracer_provider = TracerProvider()
            tracer_provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
            meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
            options: dict[str, Any] = {}
            if half == "on":
                options["ledger"] = f"sqlite:///{Path(directory) / 'spend.db'}"
            instrumentor = TokenBudgetInstrumentor()
            instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider, **options)
            writer = instrumentor._runtime.ledger
            with cost_attributes(user="u-42", feature="bench"):
                for _ in range(30):
                    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=20)
                if writer is not None:
                    writer.flush()
                _counted(
                    lambda: client.chat.completions.create(
                        model="gpt-4o-mini", messages=MESSAGES, max_tokens=20
                    ),
                    calls,
                    f"ledger {half}" + (": caller" if writer is not None else ""),
                )
                if writer is not None:
                    _counted(writer.flush, 1, "ledger on: writer")
                    if writer.written != calls + 30:
                        raise SystemExit(f"ledger: {writer.written} rows written, expected {calls + 30}")
            instrumentor.uninstrument()
            tracer_provider.shutdown()
            meter_provider.shutdown()


def child_floor(calls: int) -> None:
    """Inside callgrind: each scenario bare, under sdk-floor and under ours, `calls` calls each."""
    import harness
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    every = harness.scenarios()
    for scenario in FLOOR_SCENARIOS:
        call = every[scenario]
        for row in FLOOR_ROWS:
            exporter = harness.CountingExporter()
            tracer_provider = TracerProvider()
            tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
            meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
            instrumentor = harness.INSTRUMENTORS[row]() if row != "bare" else None
            if instrumentor is not None:
                instrumentor.instrument(harness.Telemetry(tracer_provider, meter_provider, exporter))
            for _ in range(30):
                call()
            _counted(call, calls, f"{scenario}: {row}")
            spans, _, with_cost = exporter.take()
            expected = 0 if instrumentor is None else calls + 30
            if spans != expected or with_cost != expected:
                raise SystemExit(
                    f"{scenario}, {row}: {spans} spans ({with_cost} priced), expected {expected}"
                )
            if instrumentor is not None:
                instrumentor.uninstrument()
            tracer_provider.shutdown()
            meter_provider.shutdown()


def _callgrind(calls: int, *flags: str) -> dict[str, int]:
    """Instructions in total per dump name, of this script's child run under callgrind."""
    with tempfile.TemporaryDirectory() as directory:
        output = Path(directory) / "callgrind.out"
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--instr-atstart=no",
                f"--callgrind-out-file={output}",
                sys.executable,
                __file__,
                *flags,
                "--calls",
                str(calls),
            ],
            check=True,
            capture_output=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
        totals: dict[str, int] = {}
        for dump in Path(directory).glob("callgrind.out*"):
            text = dump.read_text(errors="replace")
            trigger = re.search(r"^desc: Trigger: dump (.+)$", text, re.MULTILINE)
            total = re.search(r"^totals: (\d+)", text, re.MULTILINE)
            if trigger and total:
                totals[trigger.group(1).strip()] = int(total.group(1))
    return totals


def measure_floor(calls: int) -> dict[str, Any]:
    totals = _callgrind(calls, "--child-floor")
    result: dict[str, Any] = {"calls": calls, "scenarios": {}}
    for scenario in FLOOR_SCENARIOS:
        per_call = {row: round(totals[f"{scenario}: {row}"] / calls) for row in FLOOR_ROWS}
        floor_added = per_call["sdk-floor"] - per_call["bare"]
        ours_added = per_call["ours"] - per_call["bare"]
        result["scenarios"][scenario] = {
            "instructions_per_call": per_call,
            "floor_adds": floor_added,
            "ours_adds": ours_added,
            "ours_added_over_floor_added": round(ours_added / floor_added, 3),
        }
    return result


def measure_ledger(calls: int) -> dict[str, Any]:
    totals = _callgrind(calls, "--child-ledger")
    if not set(LEDGER_DUMPS) <= set(totals):
        raise SystemExit(f"callgrind dumps found for {sorted(totals)}, expected {list(LEDGER_DUMPS)}")
    per_call = {dump: round(totals[dump] / calls) for dump in LEDGER_DUMPS}
    return {
        "calls": calls,
        "instructions_per_call": per_call,
        "caller_adds_per_call": per_call["ledger on: caller"] - per_call["ledger off"],
        "writer_per_call": per_call["ledger on: writer"],
    }


def measure_breakdown(calls: int) -> dict[str, Any]:
    totals = _callgrind(calls, "--child-breakdown")
    steps = [step for step, _ in BREAKDOWN_STEPS]
    if not set(steps) <= set(totals):
        raise SystemExit(f"callgrind dumps found for {sorted(totals)}, expected {steps}")
    per_call = {step: round(totals[step] / calls) for step in steps}
    shares = {step: per_call[before] - per_call[step] for before, step in itertools.pairwise(steps[1:])}
    shares["the guard itself (what is left)"] = per_call[steps[-1]] - per_call["no budgets"]
    return {
        "calls": calls,
        "instructions_per_call": per_call,
        "budgets_add_per_call": per_call["budgets"] - per_call["no budgets"],
        "share_per_call": shares,
    }


def measure(calls: int) -> dict[str, Any]:
    sys.path.insert(0, str(HERE.parent))
    from tests.redis_server import running_redis_server

    with tempfile.TemporaryDirectory() as directory, running_redis_server() as server:
        sqlite_url = f"sqlite:///{Path(directory) / 'spend.db'}"
        totals = _callgrind(calls, "--child", "--sqlite", sqlite_url, "--redis", server.url)
    if not {*HALVES, FLAT_FLOOR} <= set(totals):
        raise SystemExit(f"callgrind dumps found for {sorted(totals)}, expected {[*HALVES, FLAT_FLOOR]}")
    per_call = {half: round(totals[half] / calls) for half in (*HALVES, FLAT_FLOOR)}
    adds = {half: per_call[half] - per_call["no budgets"] for half in HALVES[1:]}
    floor = per_call[FLAT_FLOOR] - per_call["no budgets"]
    return {
        "calls": calls,
        "instructions_per_call": per_call,
        "budgets_add_per_call": adds["memory"],
        "budgets_add_per_call_by_store": adds,
        # The same work without what makes it a library (budgets_floor.py): what Python cannot go under.
        "budgets_flat_floor_add_per_call": floor,
        "budgets_memory_over_flat_floor": round(adds["memory"] / floor, 3) if floor > 0 else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--floor", action="store_true", help="ours and sdk-floor against the bare SDK")
    parser.add_argument("--ledger", action="store_true", help="the spend ledger off and on")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--sqlite", default="", help=argparse.SUPPRESS)
    parser.add_argument("--redis", default="", help=argparse.SUPPRESS)
    parser.add_argument("--child-ledger", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--breakdown", action="store_true", help="where the budgets' instructions go")
    parser.add_argument("--child-floor", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child-breakdown", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    # budgets.py, harness.py and report.py, which every mode imports (each child runs main too).
    sys.path.insert(0, str(HERE))
    if options.child:
        child(options.calls, {"memory": "memory", "sqlite": options.sqlite, "redis": options.redis})
        return
    if options.child_floor:
        child_floor(options.calls)
        return
    if options.child_ledger:
        child_ledger(options.calls)
        return
    if options.child_breakdown:
        child_breakdown(options.calls)
        return
    from report import report

    if options.floor:
        result = measure_floor(options.calls)
    elif options.ledger:
        result = measure_ledger(options.calls)
    elif options.breakdown:
        result = measure_breakdown(options.calls)
    else:
        result = measure(options.calls)
    report(result, options.json)


if __name__ == "__main__":
    main()
