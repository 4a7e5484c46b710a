from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from opentelemetry_instrumentation_tokenbudget import TokenBudgetInstrumentor
from tests.semconv_live_check import check_metrics, check_spans


def _missing(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is None
    except ImportError:
        return True


# The SDKs added since a worktree's .venv was made: `./run tests` installs them (the `test` extra);
# a stale .venv skips their tests rather than failing to collect them.
collect_ignore = [
    test
    for module, test in (("google.genai", "test_google_genai.py"), ("boto3", "test_bedrock.py"))
    if _missing(module)
]


@dataclass
class Telemetry:
    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    violations: list[str] = field(default_factory=list)
    """What the collections made during the test broke of the registry; the budget gauges are only
    there while instrumented, so they are checked when a test reads them, not only at its end."""

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def our_spans(self) -> list[ReadableSpan]:
        return [
            s
            for s in self.spans()
            if s.instrumentation_scope
            and s.instrumentation_scope.name.startswith("opentelemetry_instrumentation_tokenbudget")
        ]

    def only_span(self) -> ReadableSpan:
        spans = self.our_spans()
        assert len(spans) == 1, [s.name for s in spans]
        return spans[0]

    def metric_points(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        self.violations += check_metrics(data)
        points: list[Any] = []
        if data is None:
            return points
        for resource_metrics in data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    if metric.name == name:
                        points.extend(metric.data.data_points)
        return points


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    # Every test is also a live check: all it made us emit must match the registry in semconv/.
    collected = Telemetry(exporter, reader, tracer_provider, meter_provider)
    yield collected
    violations = (
        collected.violations
        + check_spans(exporter.get_finished_spans())
        + check_metrics(reader.get_metrics_data())
    )
    assert violations == [], violations
    tracer_provider.shutdown()
    meter_provider.shutdown()


@pytest.fixture
def instrument(telemetry: Telemetry) -> Iterator[Any]:
    """Instrument with the test's providers; call it with extra `instrument()` keyword arguments."""
    instrumentor = TokenBudgetInstrumentor()

    def start(**kwargs: Any) -> TokenBudgetInstrumentor:
        instrumentor.instrument(
            tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider, **kwargs
        )
        return instrumentor

    yield start
    instrumentor.uninstrument()


@pytest.fixture
def instrumented(instrument: Any) -> TokenBudgetInstrumentor:
    return instrument()  # type: ignore[no-any-return]
