"""Memory after 1,000,000 calls through the wrappers and the budget processor: it must stay flat.

The SDK's HTTP layer over the in-process transport costs about 0.5 ms a call more than the rest,
which would double the run (about 10 minutes here for a million calls), so by default the SDK's
`_post` (the method that sends a request and parses the answer) is replaced on the client by one that
returns a prepared `ChatCompletion` or `Message`. Everything above it is real: the SDK's `create`,
our wrapper around it, the span, the metrics, pricing, and the budgets (a daily budget and a per-user
budget in the memory store).

Calls alternate OpenAI and Anthropic, each within `cost_attributes(user=...)` of one of 10,000 users.
With each call, one GenAI span of "another instrumentation" (tokens, no cost, one of 10,000 users)
ends, so that the `BudgetSpanProcessor` prices and settles as many spans as there are calls. The
tracer provider's only other processor counts spans and drops them; the meter provider keeps its
aggregates in memory, as every SDK reader does.

Recorded at checkpoints: resident set size, Python's allocated blocks (`sys.getallocatedblocks`),
and objects tracked by the garbage collector, after a full collection.

    python benchmarks/memory.py [--calls 1000000] [--transport] [--json benchmarks/results/memory.json]

`--transport` keeps the SDK whole, over the in-process transport of `harness.py`.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path
from typing import Any

import harness
from anthropic.types import Message
from openai.types.chat import ChatCompletion
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.trace import SpanKind
from report import report

from opentelemetry_instrumentation_tokenbudget import Budget, TokenBudgetInstrumentor, cost_attributes

USERS = 10_000
BUDGETS = [
    Budget("daily", 1_000_000, "day"),
    Budget("per-user", 1_000_000, "day", group_by=["user.id"], action="warn"),
]


class DroppingProcessor(SpanProcessor):
    def __init__(self) -> None:
        self.ended = 0

    def on_end(self, span: ReadableSpan) -> None:
        self.ended += 1


def _rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _checkpoint(calls: int, started: float) -> dict[str, Any]:
    gc.collect()
    return {
        "calls": calls,
        "rss_mib": round(_rss_mib(), 1),
        "allocated_blocks": sys.getallocatedblocks(),
        "gc_objects": len(gc.get_objects()),
        "elapsed_s": round(time.perf_counter() - started, 1),
    }


def run(total: int, checkpoints: list[int], through_transport: bool = False) -> dict[str, Any]:
    counter = DroppingProcessor()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(counter)
    instrumentor = TokenBudgetInstrumentor()
    instrumentor.instrument(
        tracer_provider=tracer_provider,
        meter_provider=MeterProvider(metric_readers=[InMemoryMetricReader()]),
        budgets=BUDGETS,
        store="memory",
    )
    processor = instrumentor._budgets.processor
    other = tracer_provider.get_tracer("another.genai.instrumentation", "1.0")

    openai_client = harness.openai_client()
    anthropic_client = harness.anthropic_client()
    completion = ChatCompletion.model_validate(json.loads(harness.chat_body()))
    message = Message.model_validate(json.loads(harness.message_body()))
    if not through_transport:
        openai_client.chat.completions._post = lambda *args, **kwargs: completion
        anthropic_client.messages._post = lambda *args, **kwargs: message
    users = [f"user-{index}" for index in range(USERS)]
    foreign = [
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.usage.input_tokens": 100 + index % 97,
            "gen_ai.usage.output_tokens": 10 + index % 31,
            "user.id": user,
        }
        for index, user in enumerate(users)
    ]

    def one(index: int) -> None:
        user = users[index % USERS]
        with cost_attributes(user=user, feature="bench"):
            if index % 2:
                anthropic_client.messages.create(
                    model=harness.ANTHROPIC_MODEL, max_tokens=100, messages=harness.MESSAGES
                )
            else:
                openai_client.chat.completions.create(model=harness.OPENAI_MODEL, messages=harness.MESSAGES)
        other.start_span("chat gpt-4o-mini", kind=SpanKind.CLIENT, attributes=foreign[index % USERS]).end()

    warm = 10_000
    for index in range(warm):
        one(index)
    started = time.perf_counter()
    samples = [_checkpoint(0, started)]
    index = 0
    for target in checkpoints:
        while index < target:
            one(warm + index)
            index += 1
        processor.force_flush(60_000)
        samples.append(_checkpoint(index, started))
        print(samples[-1], flush=True)
    spans = counter.ended
    dropped = processor._dropped
    instrumentor.uninstrument()
    first, last = samples[0], samples[-1]
    return {
        "calls": total,
        "sdk_post": "in-process transport" if through_transport else "stubbed",
        "warm_up_calls": warm,
        "spans_ended": spans,
        "foreign_spans_dropped_by_full_queue": dropped,
        "checkpoints": samples,
        "rss_growth_mib": round(last["rss_mib"] - first["rss_mib"], 1),
        "allocated_blocks_growth": last["allocated_blocks"] - first["allocated_blocks"],
        "gc_objects_growth": last["gc_objects"] - first["gc_objects"],
        "us_per_call": round((last["elapsed_s"] / total) * 1e6, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "memory.json")
    parser.add_argument(
        "--transport",
        action="store_true",
        help="keep the SDK's _post: the whole SDK over the in-process transport",
    )
    options = parser.parse_args()
    total = options.calls
    checkpoints = sorted({total // 10, total // 4, total // 2, (3 * total) // 4, total})
    results = run(total, checkpoints, options.transport)
    report(results, options.json)


if __name__ == "__main__":
    main()
