"""What `BudgetSpanProcessor` costs per finished span of another instrumentation.

10,000 GenAI inference spans with distinct attribute sets (a user each, 50 features, two providers,
four models, token counts that vary) are made once by a tracer of "another instrumentation" and kept
as finished `ReadableSpan`s. The processor is the one `instrument(budgets=..., store="memory")`
installs, with a global daily budget and a per-user budget (so 10,000 groups in the ledger). Each pass
hands it every span as the SDK would (`on_start`, then `on_end`) and measures:

- `caller_us_per_span`: the time on the thread that ends the span, while the background thread
  prices and settles the spans already handed over (it competes for the GIL, as it would in an
  application);
- `total_us_per_span`: until the background thread has settled every span (`force_flush`);
- `caller_alone_us_per_span` and `settle_alone_us_per_span`: the two halves apart, on one thread, with
  the queue replaced by a list (private names of the processor: this part is a profile, not a test
  of the public behaviour).

The figures are the medians over passes. Every pass checks that no span was dropped and that the
daily ledger grew by exactly the cost of the spans.

    python benchmarks/processor.py [--passes 7] [--spans 10000] [--json benchmarks/results/processor.json]
"""

from __future__ import annotations

import argparse
import statistics
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from report import report

from opentelemetry_instrumentation_tokenbudget import Budget, TokenBudgetInstrumentor
from opentelemetry_instrumentation_tokenbudget.budgets.charges import charges_for
from opentelemetry_instrumentation_tokenbudget.pricing import PriceBook, price_usage
from opentelemetry_instrumentation_tokenbudget.usage import TokenUsage

MODELS = (
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-4o"),
    ("anthropic", "claude-3-5-haiku-20241022"),
    ("anthropic", "claude-sonnet-4-20250514"),
)
BUDGETS = [
    Budget("daily", 1_000_000, "day"),
    Budget("per-user", 1_000_000, "day", group_by=["user.id"], action="warn"),
]


def foreign_spans(count: int) -> list[ReadableSpan]:
    """Finished spans as another GenAI instrumentation makes them: tokens, no cost."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("another.genai.instrumentation", "1.0")
    for index in range(count):
        system, model = MODELS[index % len(MODELS)]
        attributes = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": system,
            "gen_ai.request.model": model,
            "gen_ai.response.model": model,
            "gen_ai.usage.input_tokens": 100 + index % 997,
            "gen_ai.usage.output_tokens": 10 + index % 331,
            "user.id": f"user-{index}",
            "tokenbudget.feature": f"feature-{index % 50}",
        }
        tracer.start_span(f"chat {model}", kind=SpanKind.CLIENT, attributes=attributes).end()
    spans = list(exporter.get_finished_spans())
    provider.shutdown()
    return spans


def expected_picodollars(spans: list[ReadableSpan]) -> int:
    prices = PriceBook({})
    total = Decimal(0)
    for span in spans:
        attributes = span.attributes or {}
        price = prices.lookup(
            str(attributes["gen_ai.provider.name"]), str(attributes["gen_ai.response.model"])
        )
        assert price is not None, attributes["gen_ai.response.model"]
        usage = TokenUsage(
            input_tokens=int(attributes["gen_ai.usage.input_tokens"]),
            output_tokens=int(attributes["gen_ai.usage.output_tokens"]),
        )
        total += price_usage(price, usage).total
    return int(total * 10**12)


def run(passes: int, count: int) -> dict[str, Any]:
    spans = foreign_spans(count)
    tracer_provider = TracerProvider()
    instrumentor = TokenBudgetInstrumentor()
    instrumentor.instrument(
        tracer_provider=tracer_provider,
        meter_provider=MeterProvider(metric_readers=[InMemoryMetricReader()]),
        budgets=BUDGETS,
        store="memory",
    )
    try:
        # There is no public handle on the processor that instrument() added to the provider.
        installed = instrumentor._budgets
        processor, guard = installed.processor, installed.guard
        daily = charges_for(guard.budgets, {"user.id": "any"}, guard.now())[0].key
        expected = expected_picodollars(spans)
        caller, total = [], []
        for _ in range(passes):
            before = guard.store.balances([daily])[0].spent
            start = time.perf_counter()
            for span in spans:
                processor.on_start(span, None)
                processor.on_end(span)
            handed = time.perf_counter()
            assert processor.force_flush(60_000), "the processor did not drain"
            done = time.perf_counter()
            assert processor._dropped == 0, f"{processor._dropped} spans dropped"
            grew = guard.store.balances([daily])[0].spent - before
            # The ledger rounds each settlement to the picodollar; allow one per span.
            assert abs(grew - expected) <= count, (grew, expected)
            caller.append((handed - start) / count)
            total.append((done - start) / count)
        caller_alone, settle_alone = _halves(processor, spans, passes)
    finally:
        instrumentor.uninstrument()
    return {
        "caller_alone_us_per_span": round(caller_alone * 1e6, 2),
        "settle_alone_us_per_span": round(settle_alone * 1e6, 2),
        "spans_per_pass": count,
        "distinct_attribute_sets": len({frozenset((s.attributes or {}).items()) for s in spans}),
        "passes": passes,
        "caller_us_per_span": round(statistics.median(caller) * 1e6, 2),
        "caller_us_per_span_min_max": [round(min(caller) * 1e6, 2), round(max(caller) * 1e6, 2)],
        "total_us_per_span": round(statistics.median(total) * 1e6, 2),
        "total_us_per_span_min_max": [round(min(total) * 1e6, 2), round(max(total) * 1e6, 2)],
    }


def _halves(processor: Any, spans: list[ReadableSpan], passes: int) -> tuple[float, float]:
    handed: list[Any] = []
    enqueue = processor._enqueue
    processor._enqueue = handed.append
    try:
        caller = []
        for _ in range(passes):
            handed.clear()
            start = time.perf_counter()
            for span in spans:
                processor.on_start(span, None)
                processor.on_end(span)
            caller.append((time.perf_counter() - start) / len(spans))
        start = time.perf_counter()
        for finished in handed:
            processor._settle(finished)
        settle = (time.perf_counter() - start) / len(handed)
    finally:
        processor._enqueue = enqueue
    return statistics.median(caller), settle


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--passes", type=int, default=7)
    parser.add_argument("--spans", type=int, default=10_000)
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "processor.json")
    options = parser.parse_args()
    results = run(options.passes, options.spans)
    report(results, options.json)


if __name__ == "__main__":
    main()
