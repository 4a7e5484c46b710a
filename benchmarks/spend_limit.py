"""What a `spend_limit` block adds to a call: reserve on each limit in force before the request,
settle after it.

The real OpenAI SDK talks to the in-process fake provider (`httpx2.MockTransport`), instrumented with
an SDK TracerProvider and MeterProvider, no budget declared; times are wall-clock, one thread. Each
round measures the same calls outside any block, inside one `spend_limit`, and inside three nested
ones; rounds alternate and the figures are medians over rounds, so drift of the machine cancels out.
The caps are high enough that no call is refused.

    python benchmarks/spend_limit.py [--rounds 15] [--calls 300]
"""

from __future__ import annotations

import argparse
import statistics
import time
from contextlib import ExitStack

import httpx2
import openai
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from opentelemetry_instrumentation_tokenbudget import TokenBudgetInstrumentor, spend_limit
from opentelemetry_instrumentation_tokenbudget.testing import FakeProvider

MESSAGES = [{"role": "user", "content": "Say this is a test"}]


def _measure(client: openai.OpenAI, calls: int, depth: int) -> float:
    with ExitStack() as stack:
        for _ in range(depth):
            stack.enter_context(spend_limit(usd=1_000_000))
        start = time.perf_counter()
        for _ in range(calls):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=20)
        return (time.perf_counter() - start) / calls


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    TokenBudgetInstrumentor().instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    client = openai.OpenAI(
        api_key="k",
        base_url="https://api.openai.com/v1",
        http_client=httpx2.Client(transport=FakeProvider().transport()),
        max_retries=0,
    )
    depths = (0, 1, 3)
    for depth in depths:
        _measure(client, 20, depth)  # warm
    times: dict[int, list[float]] = {depth: [] for depth in depths}
    for _ in range(args.rounds):
        for depth in depths:
            times[depth].append(_measure(client, args.calls, depth))
    base = statistics.median(times[0])
    for depth in depths:
        median = statistics.median(times[depth])
        print(f"limits in force {depth}: {median * 1e6:8.1f} us/call  added {(median - base) * 1e6:+6.1f} us")


if __name__ == "__main__":
    main()
