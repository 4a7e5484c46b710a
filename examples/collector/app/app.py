"""The example application of the collector stack: a few teams' LLM traffic, instrumented, priced and
budgeted, against the package's fake OpenAI and Anthropic provider (no API key, no network).

Each round makes the same calls in the same order, so the spend it produces is known to the
microdollar (the fake provider's token counts are deterministic and the prices are the published
ones). The stack in ``compose.yaml`` runs rounds forever and sends traces and metrics over OTLP to the
collector; ``tests/test_collector_example.py`` runs two rounds in-process and has a real Prometheus
scrape the same metrics.

    python app.py --provider-url http://127.0.0.1:8765 --interval 2

Besides the package's own metrics, the app records two of its own from the finished spans, because
the package puts cache reads on spans only: ``example.llm.cache_read.tokens`` (input tokens served
from a provider's prompt cache) and ``example.llm.cache.savings`` (USD that those tokens did not cost,
against the model's uncached input price from genai-prices).
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.context import Context
from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider

from opentelemetry_instrumentation_tokenbudget import (
    Budget,
    BudgetExceededError,
    TokenBudgetInstrumentor,
    cost_attributes,
)

SERVICE_NAME = "tokenbudget-example"
INSTRUMENTATION_SCOPE = "opentelemetry_instrumentation_tokenbudget"
EXAMPLE_SCOPE = "tokenbudget-example"

QUESTION = "Summarise the open support tickets of this week in three bullet points."
# Long enough for both providers to cache it (OpenAI caches prompts from 1024 tokens on).
HANDBOOK = "Support handbook: answer politely, cite the ticket id, never promise refunds. " * 60

# Budgets of the example. The free tier's limit admits exactly three of its calls a day: each costs
# 9.15 microdollars (21 input and 10 output tokens of gpt-4o-mini) and is estimated at 8.7 before it is
# sent, so the fourth (27.45 spent + 8.7 > 30) is refused, and the budget stands at 91.5 %.
BUDGETS = (
    Budget("app-daily", limit_usd=5, window="day", action="warn"),
    Budget("acme-daily", limit_usd=1, window="day", match={"tokenbudget.project": "acme"}),
    Budget("free-tier", limit_usd="0.00003", window="day", match={"tokenbudget.tenant": "free"}),
    Budget("per-user", limit_usd="0.5", window="day", group_by=["user.id"], action="warn"),
)
METRIC_ATTRIBUTION_KEYS = ("tokenbudget.project", "tokenbudget.feature", "tokenbudget.tenant", "user.id")

CACHE_READ_TOKENS = "example.llm.cache_read.tokens"
CACHE_SAVINGS = "example.llm.cache.savings"
_CACHE_METRIC_KEYS = (
    "gen_ai.operation.name",
    "gen_ai.provider.name",
    "gen_ai.request.model",
    "tokenbudget.project",
    "tokenbudget.feature",
    "tokenbudget.tenant",
)


class CacheMetrics(SpanProcessor):
    """Counts cache-read input tokens and what they saved, from the instrumentation's finished spans.

    Every priced inference span records (0 when nothing was cached), so that each series exists from
    the first call on and a ratio over a range never misses its start.
    """

    def __init__(self, meter_provider: MeterProvider) -> None:
        meter = meter_provider.get_meter(EXAMPLE_SCOPE)
        self._read_tokens = meter.create_counter(
            CACHE_READ_TOKENS, unit="{token}", description="Input tokens served from a provider cache."
        )
        self._savings = meter.create_counter(
            CACHE_SAVINGS,
            unit="{USD}",
            description="What the cache-read input tokens did not cost, at the model's uncached input price.",
        )

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        return

    def on_end(self, span: ReadableSpan) -> None:
        scope = span.instrumentation_scope
        attributes = span.attributes or {}
        if scope is None or scope.name != INSTRUMENTATION_SCOPE:
            return
        if "gen_ai.usage.cost.amount" not in attributes:
            return
        labels = {key: attributes[key] for key in _CACHE_METRIC_KEYS if key in attributes}
        read = int(attributes.get("gen_ai.usage.cache_read.input_tokens", 0))  # type: ignore[arg-type]
        self._read_tokens.add(read, labels)
        self._savings.add(_savings(attributes, read) if read else 0.0, labels)


def _savings(attributes: Any, read: int) -> float:
    """Uncached input price minus the price paid, for the same input, with genai-prices' data."""
    from genai_prices import Usage, calc_price

    provider = str(attributes.get("gen_ai.provider.name"))
    model = str(attributes.get("gen_ai.response.model") or attributes.get("gen_ai.request.model"))
    total_input = int(attributes.get("gen_ai.usage.input_tokens", 0))
    written = int(attributes.get("gen_ai.usage.cache_creation.input_tokens", 0))
    try:
        uncached = calc_price(
            Usage(input_tokens=total_input, cache_write_tokens=written), model, provider_id=provider
        )
        paid = calc_price(
            Usage(input_tokens=total_input, cache_read_tokens=read, cache_write_tokens=written),
            model,
            provider_id=provider,
        )
    except LookupError:
        return 0.0
    return float(uncached.input_price - paid.input_price)


def instrument(
    *,
    tracer_provider: TracerProvider,
    meter_provider: MeterProvider,
    openai_base_url: str,
    budgets: Sequence[Budget] = BUDGETS,
) -> TokenBudgetInstrumentor:
    """Instrument the SDKs with the example's budgets and attribution, and count cache savings."""
    tracer_provider.add_span_processor(CacheMetrics(meter_provider))
    instrumentor = TokenBudgetInstrumentor()
    instrumentor.instrument(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        budgets=list(budgets),
        # Per-user spend on metrics is opt-in; the example has a handful of users, so it opts in.
        metric_attribution_keys=list(METRIC_ATTRIBUTION_KEYS),
        # The fake provider stands in for api.openai.com; pointed at the real API, drop this line.
        base_url_providers={openai_base_url: "openai"},
    )
    return instrumentor


@dataclass(frozen=True)
class Caller:
    """Who makes a call: the attribution that lands on its span and metrics."""

    project: str
    feature: str
    tenant: str
    user: str


@dataclass
class RoundResult:
    calls: int = 0
    refused: int = 0


class Traffic:
    """The example's traffic: one round is the same sequence of calls every time."""

    def __init__(self, openai_client: Any, anthropic_client: Any) -> None:
        self.openai = openai_client
        self.anthropic = anthropic_client

    def plan(self) -> list[tuple[Caller, Callable[[], object]]]:
        alice = Caller("acme", "search", "globex", "u-alice")
        bob = Caller("acme", "summarize", "initech", "u-bob")
        carol = Caller("support", "chat", "initech", "u-carol")
        dan = Caller("support", "search", "globex", "u-dan")
        erin = Caller("research", "eval", "globex", "u-erin")
        frank = Caller("playground", "chat", "free", "u-frank")
        return [
            (alice, lambda: self._chat("gpt-4o-mini", QUESTION, max_tokens=100)),
            (alice, lambda: self._chat("gpt-4o-mini", QUESTION, max_tokens=100)),
            (alice, lambda: self._messages("claude-3-5-haiku-latest", QUESTION)),
            # The same system prompt twice: the first call of the process writes Anthropic's cache.
            (bob, lambda: self._messages("claude-sonnet-4-6", QUESTION, system=HANDBOOK)),
            (bob, lambda: self._messages("claude-sonnet-4-6", QUESTION, system=HANDBOOK)),
            (carol, lambda: self.openai.responses.create(model="gpt-4.1-nano", input=QUESTION)),
            (carol, lambda: self._chat("gpt-4o-mini", QUESTION, system=HANDBOOK, cache_key="handbook")),
            (carol, lambda: self._chat("gpt-4o-mini", QUESTION, system=HANDBOOK, cache_key="handbook")),
            (dan, lambda: self.openai.embeddings.create(model="text-embedding-3-small", input=[QUESTION])),
            # A fine-tuned model nobody priced: counted as unpriced, never as a cost of 0.
            (erin, lambda: self._chat("ft:gpt-4o-mini:acme:eval:v2", QUESTION, max_tokens=50)),
            *[(frank, lambda: self._chat("gpt-4o-mini", QUESTION, max_tokens=10))] * 4,
        ]

    def run_round(self) -> RoundResult:
        result = RoundResult()
        for caller, call in self.plan():
            with cost_attributes(
                project=caller.project, feature=caller.feature, tenant=caller.tenant, user=caller.user
            ):
                try:
                    call()
                except BudgetExceededError:
                    result.refused += 1
                else:
                    result.calls += 1
        return result

    def _chat(
        self,
        model: str,
        text: str,
        *,
        max_tokens: int | None = None,
        system: str | None = None,
        cache_key: str | None = None,
    ) -> object:
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": text})
        extra: dict[str, Any] = {}
        if max_tokens is not None:
            extra["max_completion_tokens"] = max_tokens
        if cache_key is not None:
            extra["prompt_cache_key"] = cache_key
        return self.openai.chat.completions.create(model=model, messages=messages, **extra)

    def _messages(self, model: str, text: str, *, system: str | None = None) -> object:
        extra: dict[str, Any] = {}
        if system is not None:
            extra["system"] = [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}]
        return self.anthropic.messages.create(
            model=model, max_tokens=200, messages=[{"role": "user", "content": text}], **extra
        )


def clients(provider_url: str) -> tuple[Any, Any, str]:
    """OpenAI and Anthropic clients for the fake provider at `provider_url`, and the OpenAI base URL."""
    import anthropic
    import openai

    base = provider_url.rstrip("/")
    openai_base_url = base + "/v1"
    return (
        openai.OpenAI(api_key="example", base_url=openai_base_url),
        anthropic.Anthropic(api_key="example", base_url=base),
        openai_base_url,
    )


def _otlp_providers() -> tuple[TracerProvider, Any]:
    """Providers that export over OTLP/HTTP to OTEL_EXPORTER_OTLP_ENDPOINT (the collector)."""
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", SERVICE_NAME)})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(), export_interval_millis=5000)
    return tracer_provider, SdkMeterProvider(resource=resource, metric_readers=[reader])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--provider-url", default=os.environ.get("FAKE_PROVIDER_URL", "http://127.0.0.1:8765")
    )
    parser.add_argument("--interval", type=float, default=float(os.environ.get("ROUND_INTERVAL_S", "2")))
    parser.add_argument("--rounds", type=int, default=0, help="0: until interrupted")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    tracer_provider, meter_provider = _otlp_providers()
    openai_client, anthropic_client, openai_base_url = clients(args.provider_url)
    instrument(
        tracer_provider=tracer_provider, meter_provider=meter_provider, openai_base_url=openai_base_url
    )
    traffic = Traffic(openai_client, anthropic_client)
    done = 0
    try:
        while args.rounds == 0 or done < args.rounds:
            result = traffic.run_round()
            done += 1
            logging.info("round %d: %d calls, %d refused by a budget", done, result.calls, result.refused)
            time.sleep(args.interval)
    except KeyboardInterrupt:
        pass
    finally:
        tracer_provider.shutdown()
        meter_provider.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
