"""The demo's simulated morning: one tenant's calls on a clock that moves ten minutes a call, so that
the live forecast and anomaly signals have a window to look at.

The calls are real SDK calls against the bundled fake provider; only the time is simulated (the
instrumentation's ``clock`` option). The tenant's daily budget is $0.0004: at its morning rate the
tenant will pass it in the evening, which the forecast says hours before the spend does; then a
runaway export on a larger model makes one quarter hour cost ten times its usual, and the anomaly
alert names the model that drove it.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from . import AnomalyEvent, Budget, ForecastEvent, TokenBudgetInstrumentor, cost_attributes

QUESTION = "In two sentences, why do token budgets matter for LLM applications in production?"
CALL_EVERY_SECONDS = 600


class SimulatedClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def run(server: Any, morning: datetime | None = None, spans_file: Any = None) -> None:
    import openai
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    morning = morning or datetime.now(timezone.utc).replace(hour=6, minute=0, second=0, microsecond=0)
    clock = SimulatedClock(morning.timestamp())
    print(f"\na simulated morning for tenant t9, from {morning:%H:%M} UTC, a support call every 10 minutes")
    tracer_provider = TracerProvider()
    if spans_file is not None:
        tracer_provider.add_span_processor(SimpleSpanProcessor(spans_file))
    instrumentor = TokenBudgetInstrumentor()
    instrumentor.instrument(
        # Providers of its own, so that the spend tables above stay those of the real-time calls.
        tracer_provider=tracer_provider,
        meter_provider=MeterProvider(metric_readers=[InMemoryMetricReader()]),
        budgets=[
            Budget(
                "per-tenant", limit_usd="0.0004", window="day", group_by=["tokenbudget.tenant"], action="warn"
            )
        ],
        clock=clock,
        on_forecast=_forecast,
        on_anomaly=_anomaly,
        base_url_providers={server.base_url_openai: "openai"},
    )
    try:
        client = openai.OpenAI(api_key="demo", base_url=server.base_url_openai)
        for _ in range(24):
            with cost_attributes(project="acme", feature="support", tenant="t9"):
                client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": QUESTION}]
                )
            clock.now += CALL_EVERY_SECONDS
        print(f"{datetime.fromtimestamp(clock.now, timezone.utc):%H:%M} UTC: a runaway export starts")
        with cost_attributes(project="acme", feature="export", tenant="t9"):
            for _ in range(3):
                client.chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": QUESTION}]
                )
    finally:
        instrumentor.uninstrument()


def _forecast(event: ForecastEvent) -> None:
    print(
        f"on_forecast: {event.budget} {event.group}: spent ${event.spent_usd}, projected"
        f" ${event.forecast_usd} by midnight ({event.method}), limit ${event.limit_usd}"
        f" reached around {event.exhausted_at:%H:%M} UTC"
    )


def _anomaly(event: AnomalyEvent) -> None:
    print(
        f"on_anomaly: {event.budget} {event.group}: ${event.observed_usd:.6f} from {event.start:%H:%M}"
        f" against ${event.expected_usd:.6f} expected (score {event.score:.1f}), driver {event.driver}"
    )
