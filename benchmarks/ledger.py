"""The spend ledger and the commands that read it.

- caller: what `instrument(ledger=...)` adds on the caller's thread, per call: OpenAI chat calls
  through the real SDK's `create` and our wrapper (the SDK's `_post` stubbed, as in `memory.py`),
  in interleaved rounds with the ledger on and off, the median round of each; the difference is the
  added time. The caller's thread is the target; the wall time also holds the writer's Python work,
  which needs the GIL, because this loop never waits (a call over a network would leave the GIL to
  the writer while it waits for the response).
- report / export: `tokenbudget report --ledger` (by model, by feature) and `export --format focus`
  and `--format csv` over a ledger of `--rows` synthetic calls (8 models, 20 features, 1,000 users,
  30 days, token counts and costs varying per call), in-process, wall time of `main()`.
- burst: the writer's queued spans and Python's traced memory while `--burst` spans are added at
  once, faster than it writes: both bounded by its queue (the oldest dropped and counted).

    python benchmarks/ledger.py [--rows 1000000] [--calls 20000] [--burst 1000000] [--json FILE]
"""

from __future__ import annotations

import argparse
import io
import json
import random
import sqlite3
import statistics
import tempfile
import time
import tracemalloc
from contextlib import redirect_stdout
from decimal import Decimal
from pathlib import Path
from typing import Any

import harness
from openai.types.chat import ChatCompletion
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from report import quartiles, report

from opentelemetry_instrumentation_tokenbudget import TokenBudgetInstrumentor, cost_attributes
from opentelemetry_instrumentation_tokenbudget.cli.main import main as tokenbudget
from opentelemetry_instrumentation_tokenbudget.ledger.record import INSERT, picodollars
from opentelemetry_instrumentation_tokenbudget.ledger.writer import LedgerWriter, connect

MODELS = [
    ("openai", "gpt-4o-mini", Decimal("0.15"), Decimal("0.60")),
    ("openai", "gpt-4o", Decimal("2.5"), Decimal("10")),
    ("openai", "gpt-4.1-nano", Decimal("0.1"), Decimal("0.4")),
    ("anthropic", "claude-haiku-4-5", Decimal("1"), Decimal("5")),
    ("anthropic", "claude-sonnet-4-6", Decimal("3"), Decimal("15")),
    ("gcp.gemini", "gemini-2.5-flash", Decimal("0.3"), Decimal("2.5")),
    ("aws.bedrock", "amazon.nova-micro-v1:0", Decimal("0.035"), Decimal("0.14")),
    ("openai", "text-embedding-3-small", Decimal("0.02"), Decimal("0")),
]


class _Dropping(SpanProcessor):
    def on_end(self, span: ReadableSpan) -> None:
        pass


def caller(calls: int, rounds: int = 9) -> dict[str, Any]:
    """Per call, with the ledger on and off, in interleaved rounds (the median round of each): the wall
    time, the CPU time of the caller's thread, and the CPU time of the whole process (the caller's
    thread and the writer's)."""
    completion = ChatCompletion.model_validate(json.loads(harness.chat_body()))
    clocks = {"wall": time.perf_counter, "caller_cpu": time.thread_time, "process_cpu": time.process_time}
    medians: dict[str, dict[str, list[float]]] = {
        mode: {clock: [] for clock in clocks} for mode in ("off", "on")
    }
    with tempfile.TemporaryDirectory() as directory:
        for _ in range(rounds):
            for mode in ("off", "on"):
                tracer_provider = TracerProvider()
                tracer_provider.add_span_processor(_Dropping())
                instrumentor = TokenBudgetInstrumentor()
                options: dict[str, Any] = {}
                if mode == "on":
                    options["ledger"] = f"sqlite:///{Path(directory) / 'spend.db'}"
                instrumentor.instrument(
                    tracer_provider=tracer_provider,
                    meter_provider=MeterProvider(metric_readers=[InMemoryMetricReader()]),
                    **options,
                )
                client = harness.openai_client()
                client.chat.completions._post = lambda *args, **kwargs: completion  # type: ignore[method-assign]
                try:
                    with cost_attributes(feature="bench", user="u-1"):
                        for _ in range(200):
                            client.chat.completions.create(
                                model=harness.OPENAI_MODEL, messages=harness.MESSAGES
                            )
                        started = {clock: read() for clock, read in clocks.items()}
                        for _ in range(calls):
                            client.chat.completions.create(
                                model=harness.OPENAI_MODEL, messages=harness.MESSAGES
                            )
                        for clock, read in clocks.items():
                            medians[mode][clock].append((read() - started[clock]) / calls * 1e6)
                finally:
                    # Includes the writer's last batch in neither figure: it is written at uninstrument().
                    instrumentor.uninstrument()
    result: dict[str, Any] = {"calls_per_round": calls, "rounds": rounds}
    for clock in clocks:
        off, on = statistics.median(medians["off"][clock]), statistics.median(medians["on"][clock])
        result[f"{clock}_us_per_call_off"] = round(off, 2)
        result[f"{clock}_us_per_call_on"] = round(on, 2)
        result[f"{clock}_added_us_per_call"] = round(on - off, 2)
    result["rounds_wall_us_off"] = [round(v, 1) for v in medians["off"]["wall"]]
    result["rounds_wall_us_on"] = [round(v, 1) for v in medians["on"]["wall"]]
    # Each round's own difference of the caller's CPU (on minus off, run one after the other): the
    # middle half of them says how far the median difference above can be trusted on this machine.
    added = [
        on - off for off, on in zip(medians["off"]["caller_cpu"], medians["on"]["caller_cpu"], strict=True)
    ]
    low, _, high = quartiles(added)
    result["caller_cpu_added_us_p25_p75"] = [round(low, 2), round(high, 2)]
    return result


def make_ledger(path: Path, rows: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    start = int((time.time() - 30 * 86400) * 1e9)
    step = 30 * 86400 * 10**9 // rows
    connection = connect(path)
    features = [f"feature-{index}" for index in range(20)]
    million = Decimal(1_000_000)
    batch = []
    for index in range(rows):
        provider, model, input_price, output_price = MODELS[index % len(MODELS)]
        input_tokens = rng.randint(20, 4000)
        output_tokens = 0 if output_price == 0 else rng.randint(5, 800)
        cost = (input_tokens * input_price + output_tokens * output_price) / million
        attribution = {
            "tokenbudget.project": "acme",
            "tokenbudget.feature": features[rng.randrange(20)],
            "user.id": f"u-{rng.randrange(1000)}",
        }
        batch.append(
            (
                start + index * step,
                0.5,
                provider,
                "chat",
                model,
                model,
                input_tokens,
                output_tokens,
                0,
                0,
                0,
                str(cost),
                "{}",
                "genai-prices",
                "0.0.40",
                0,
                0,
                json.dumps(attribution, sort_keys=True),
                f"{index:032x}",
                f"{index:016x}",
                None,
                0,
                picodollars(str(cost)),
            )
        )
        if len(batch) == 50_000:
            with connection:
                connection.executemany(INSERT, batch)
            batch.clear()
    with connection:
        connection.executemany(INSERT, batch)
    connection.close()


def _timed(*argv: str) -> float:
    sink = io.StringIO()
    started = time.perf_counter()
    with redirect_stdout(sink):
        code = tokenbudget(list(argv))
    elapsed = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"tokenbudget {' '.join(argv)}: exit {code}")
    return round(elapsed, 2)


def commands(rows: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "spend.db"
        started = time.perf_counter()
        make_ledger(path, rows)
        made = round(time.perf_counter() - started, 1)
        count = sqlite3.connect(path).execute("SELECT COUNT(*) FROM calls").fetchone()[0]
        out = str(Path(directory) / "out.csv")
        return {
            "rows": count,
            "ledger_made_s": made,
            "report_by_model_s": _timed("report", "--ledger", str(path), "--by", "model"),
            "report_by_feature_s": _timed("report", "--ledger", str(path), "--by", "feature"),
            "report_by_day_model_s": _timed("report", "--ledger", str(path), "--by", "day,model"),
            "export_focus_s": _timed("export", "--ledger", str(path), "--format", "focus", "-o", out),
            "export_csv_s": _timed("export", "--ledger", str(path), "--format", "csv", "-o", out),
        }


def burst(spans: int) -> dict[str, Any]:
    tracer = TracerProvider().get_tracer("bench")
    attributes = {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 1}
    with tempfile.TemporaryDirectory() as directory:
        writer = LedgerWriter(f"sqlite:///{Path(directory) / 'spend.db'}")
        tracemalloc.start()
        peak_queue = 0
        started = time.perf_counter()
        for index in range(spans):
            # A span of its own for each call, made by the SDK as a call's is.
            span = tracer.start_span("chat", attributes=attributes)
            span.end()
            writer.add(span)
            if index % 1000 == 0:
                peak_queue = max(peak_queue, len(writer._queue))
        added_s = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        writer.close()
        return {
            "spans_added": spans,
            "added_in_s": round(added_s, 2),
            "max_queued": writer._max_queued,
            "peak_queued": peak_queue,
            "written": writer.written,
            "dropped": writer.dropped,
            "peak_traced_mib": round(peak / 2**20, 1),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--burst", type=int, default=1_000_000)
    parser.add_argument("--only", default="caller,commands,burst")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    parts = set(args.only.split(","))
    document: dict[str, Any] = {}
    if "caller" in parts:
        document["caller"] = caller(args.calls)
        print(document["caller"], flush=True)
    if "commands" in parts:
        document["commands"] = commands(args.rows)
        print(document["commands"], flush=True)
    if "burst" in parts:
        document["burst"] = burst(args.burst)
        print(document["burst"], flush=True)
    report(document, args.json)


if __name__ == "__main__":
    main()
