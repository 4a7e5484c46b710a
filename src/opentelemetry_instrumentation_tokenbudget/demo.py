"""The demo: real OpenAI, Anthropic, Gemini, Bedrock, Ollama and LiteLLM calls, instrumented, against the
bundled fake provider.

No API key and no network: `testing.fake_server` answers on 127.0.0.1 the way the APIs do (same
JSON, same streams, same usage blocks), with token counts of its own making. Prices are the real
published ones from genai-prices, so the costs are what these calls would cost.

Run it with ``./run demo`` (or ``python -m opentelemetry_instrumentation_tokenbudget.demo``).
"""

from __future__ import annotations

import argparse
import logging
import os
from collections import defaultdict
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from . import (
    Budget,
    BudgetExceededError,
    SpendLimitExceededError,
    TokenBudgetInstrumentor,
    cost_attributes,
    demo_signals,
    spend_limit,
)
from .instrumentor import INSTRUMENTATION_SCOPE
from .testing.fake_server import FakeProviderServer
from .testing.otlp_json import OtlpJsonFileExporter

_ATTRIBUTION_LABELS = {"tokenbudget.project": "project", "tokenbudget.feature": "feature", "user.id": "user"}
SPANS_FILE = Path("tokenbudget-demo-spans.jsonl")
LEDGER_FILE = Path("tokenbudget-demo.db")
QUESTION = "In two sentences, why do token budgets matter for LLM applications in production?"


def _openai_calls(openai_client: Any, local_client: Any) -> list[tuple[str, Callable[[], Any]]]:
    def chat() -> Any:
        return openai_client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": QUESTION}], max_completion_tokens=200
        )

    def chat_stream() -> Any:
        # No stream_options: the instrumentation asks for usage itself and hides that chunk.
        stream = openai_client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": QUESTION}], stream=True
        )
        return "".join(chunk.choices[0].delta.content or "" for chunk in stream)

    def responses() -> Any:
        return openai_client.responses.create(model="gpt-4.1-nano", input=QUESTION)

    def cached() -> Any:
        long_prompt = "You are a careful assistant. " * 200
        for _ in range(2):
            openai_client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "system", "content": long_prompt}, {"role": "user", "content": QUESTION}],
                prompt_cache_key="demo-cache",
            )

    def embeddings() -> Any:
        return openai_client.embeddings.create(model="text-embedding-3-small", input=[QUESTION, "budgets"])

    def local_model() -> Any:
        return local_client.chat.completions.create(
            model="llama3.1:8b", messages=[{"role": "user", "content": QUESTION}]
        )

    def gateway() -> Any:
        # A base URL that names no provider (a LiteLLM proxy, Helicone, a company gateway): priced by
        # the model's name across the price data, and marked tokenbudget.price.inferred.
        return local_client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": QUESTION}]
        )

    return [
        ("openai chat", chat),
        ("openai chat, streamed", chat_stream),
        ("openai responses", responses),
        ("openai chat, prompt cache (x2)", cached),
        ("openai embeddings", embeddings),
        ("local model (OpenAI SDK, local base_url)", local_model),
        ("gateway (a host no price data names)", gateway),
    ]


def _anthropic_calls(client: Any) -> list[tuple[str, Callable[[], Any]]]:
    def create() -> Any:
        return client.messages.create(
            model="claude-3-5-haiku-latest", max_tokens=300, messages=[{"role": "user", "content": QUESTION}]
        )

    def stream() -> Any:
        with client.messages.stream(
            model="claude-sonnet-4-6", max_tokens=300, messages=[{"role": "user", "content": QUESTION}]
        ) as events:
            return events.get_final_text()

    return [("anthropic messages", create), ("anthropic messages.stream()", stream)]


def _gemini_and_bedrock_calls(gemini_client: Any, bedrock_client: Any) -> list[tuple[str, Callable[[], Any]]]:
    def gemini() -> Any:
        return gemini_client.models.generate_content(model="gemini-2.5-flash", contents=QUESTION)

    def gemini_stream() -> Any:
        stream = gemini_client.models.generate_content_stream(model="gemini-2.5-flash", contents=QUESTION)
        return "".join(chunk.text or "" for chunk in stream)

    def bedrock() -> Any:
        return bedrock_client.converse(
            modelId="us.anthropic.claude-haiku-4-5-20251001-v1:0",
            messages=[{"role": "user", "content": [{"text": QUESTION}]}],
        )

    def bedrock_stream() -> Any:
        response = bedrock_client.converse_stream(
            modelId="amazon.nova-micro-v1:0", messages=[{"role": "user", "content": [{"text": QUESTION}]}]
        )
        return list(response["stream"])

    return [
        ("gemini generate_content", gemini),
        ("gemini generate_content_stream", gemini_stream),
        ("bedrock converse", bedrock),
        ("bedrock converse_stream", bedrock_stream),
    ]


def _ollama_calls(server: FakeProviderServer) -> list[tuple[str, Callable[[], Any]]]:
    """Ollama's own SDK (not its OpenAI-compatible endpoint): a local model, free."""
    import ollama

    # localhost: the demo names 127.0.0.1 on this port Anthropic's (base_url_providers, a prefix).
    client = ollama.Client(host=server.base_url.replace("127.0.0.1", "localhost"))

    def chat_stream() -> Any:
        stream = client.chat(
            model="llama3.1:8b", messages=[{"role": "user", "content": QUESTION}], stream=True
        )
        return "".join(part.message.content or "" for part in stream)

    return [("ollama chat (native SDK), streamed", chat_stream)]


def _litellm_calls(server: FakeProviderServer) -> list[tuple[str, Callable[[], Any]]]:
    """LiteLLM's own functions, when it is installed (the `demo` extra has it)."""
    try:
        # LiteLLM fetches its price table from the network at import unless told to use its own copy.
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        import litellm
    except ImportError:
        return []
    messages = [{"role": "user", "content": QUESTION}]

    def completion() -> Any:
        return litellm.completion(
            model="anthropic/claude-haiku-4-5",
            messages=messages,
            api_base=server.base_url_anthropic,
            api_key="demo",
        )

    def stream() -> Any:
        chunks = litellm.completion(
            model="openai/gpt-4o-mini",
            messages=messages,
            stream=True,
            api_base=server.base_url_openai,
            api_key="demo",
        )
        return "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)

    return [("litellm completion", completion), ("litellm completion stream", stream)]


def _gemini_client(server: FakeProviderServer) -> Any:
    from google import genai
    from google.genai import types

    return genai.Client(api_key="demo", http_options=types.HttpOptions(base_url=server.base_url))


def _bedrock_client(server: FakeProviderServer) -> Any:
    import boto3

    return boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=server.base_url,
        aws_access_key_id="demo",
        aws_secret_access_key="demo",  # noqa: S106  # the fake provider takes any key
    )


def _print_spans(spans: Sequence[ReadableSpan]) -> None:
    print(f"\n{'span':34} {'provider':18} {'in':>6} {'out':>5} {'cache':>6} {'cost USD':>12}  attribution")
    for span in spans:
        attributes = span.attributes or {}
        cost = attributes.get("gen_ai.usage.cost.amount")
        cache = attributes.get("gen_ai.usage.cache_read.input_tokens", 0)
        who = ",".join(
            f"{label}={attributes[key]!s}" for key, label in _ATTRIBUTION_LABELS.items() if key in attributes
        )
        library = attributes.get("tokenbudget.cost.library")
        if library is not None:
            who = f"LiteLLM's own cost {Decimal(str(library)):.8f} {who}"
        if attributes.get("tokenbudget.price.inferred"):
            who = f"price inferred (gateway {attributes.get('server.address')}) {who}"
        print(
            f"{span.name[:34]:34} {attributes.get('gen_ai.provider.name', '')!s:18}"
            f" {attributes.get('gen_ai.usage.input_tokens', '-')!s:>6}"
            f" {attributes.get('gen_ai.usage.output_tokens', '-')!s:>5} {cache!s:>6}"
            f" {'unpriced' if cost is None else f'{Decimal(str(cost)):.8f}':>12}  {who}"
        )


def _print_spend(spans: Sequence[ReadableSpan], key: str, title: str) -> None:
    spend: dict[str, Decimal] = defaultdict(Decimal)
    calls: dict[str, int] = defaultdict(int)
    for span in spans:
        attributes = span.attributes or {}
        cost = attributes.get("gen_ai.usage.cost.amount")
        if cost is None:
            continue
        group = str(attributes.get(key, "(none)"))
        spend[group] += Decimal(str(cost))
        calls[group] += 1
    print(f"\nspend by {title}")
    for group, amount in sorted(spend.items(), key=lambda item: -item[1]):
        print(f"  {group:34} {calls[group]:>3} calls  ${amount:.8f}")
    print(f"  {'total':34} {sum(calls.values()):>3} calls  ${sum(spend.values(), Decimal(0)):.8f}")


def _runaway_loop(client: Any, budget: Budget) -> None:
    """An agent stuck in a loop, the case budgets exist for: the budget refuses the call that would pass
    the limit, before it is sent, while another user of the same feature is still served."""
    admitted = 0
    with cost_attributes(project="acme", feature="agent", user="u-loop"):
        for _ in range(1000):
            try:
                client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": QUESTION}],
                    max_completion_tokens=200,
                )
            except BudgetExceededError as refused:
                print(f"\nrunaway loop of u-loop: {admitted} calls admitted, then refused:\n  {refused}")
                break
            admitted += 1
    with cost_attributes(project="acme", feature="agent", user="u-other"):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": QUESTION}])
    print(f"u-other, same feature, own group of budget {budget.name!r}: still served")


def _capped_task(client: Any) -> None:
    """A task with its own cap and no budget declared: `spend_limit` refuses, before it is sent, the
    call that would take the block past it."""
    admitted = 0
    with spend_limit(usd=0.0002, name="fill-form") as limit, cost_attributes(project="acme", feature="form"):
        try:
            for _ in range(100):
                client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": QUESTION}],
                    max_completion_tokens=200,
                )
                admitted += 1
        except SpendLimitExceededError as refused:
            spent = limit.spent_usd
            print(f"\nspend_limit 'fill-form': {admitted} calls, ${spent}, then refused:\n  {refused}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.parse_args(argv)
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")

    import anthropic
    import openai

    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    # The calls are also kept as the Collector's file exporter would keep them, for `tokenbudget`.
    SPANS_FILE.unlink(missing_ok=True)
    spans_file = OtlpJsonFileExporter(SPANS_FILE)
    # A fresh spend ledger each run (the SQLite file and its write-ahead log).
    for path in (LEDGER_FILE, Path(f"{LEDGER_FILE}-wal"), Path(f"{LEDGER_FILE}-shm")):
        path.unlink(missing_ok=True)
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans_file))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    agent_budget = Budget(
        "agent-per-user",
        limit_usd=0.0005,
        window="day",
        match={"tokenbudget.feature": "agent"},
        group_by=["user.id"],
    )

    with FakeProviderServer() as server:
        print(f"fake provider (bundled, no network, no key) on {server.base_url_openai}")
        instrumentor = TokenBudgetInstrumentor()
        instrumentor.instrument(
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            budgets=[agent_budget],
            ledger=f"sqlite:///{LEDGER_FILE}",
            # The fake stands in for api.openai.com; a real deployment needs no such line.
            base_url_providers={server.base_url_openai: "openai", server.base_url_anthropic: "anthropic"},
        )
        try:
            openai_client = openai.OpenAI(api_key="demo", base_url=server.base_url_openai)
            local_base_url = server.base_url_openai.replace("127.0.0.1", "localhost")
            local_client = openai.OpenAI(api_key="demo", base_url=local_base_url)
            anthropic_client = anthropic.Anthropic(api_key="demo", base_url=server.base_url_anthropic)
            calls = (
                _openai_calls(openai_client, local_client)
                + _anthropic_calls(anthropic_client)
                + _gemini_and_bedrock_calls(_gemini_client(server), _bedrock_client(server))
                + _ollama_calls(server)
                + _litellm_calls(server)
            )
            for index, (_, call) in enumerate(calls):
                user = f"u-{index % 3}"
                feature = "search" if index % 2 else "summarise"
                with cost_attributes(project="acme", feature=feature, user=user):
                    call()
            spans = _our_spans(exporter.get_finished_spans())
            _print_spans(spans)
            _runaway_loop(openai_client, agent_budget)
            _capped_task(openai_client)
        finally:
            instrumentor.uninstrument()
        demo_signals.run(server, spans_file=spans_file)

    spans = _our_spans(exporter.get_finished_spans())
    _print_spend(spans, "gen_ai.request.model", "model")
    _print_spend(spans, "tokenbudget.feature", "feature")
    _print_spend(spans, "user.id", "user")
    _print_commands()
    return 0


def _print_commands() -> None:
    print(f"\nthe calls are also in the spend ledger {LEDGER_FILE} (SQLite):")
    for command in (
        "report --by model",
        "report --by feature --format json",
        "export --format focus -o tokenbudget-demo-focus.csv",
    ):
        print(f"  .venv/bin/tokenbudget {command} --ledger {LEDGER_FILE}")
    print(
        f"\nthe calls are kept in {SPANS_FILE}"
        " (OTLP JSON lines, as the Collector's file exporter writes them):"
    )
    for command in (
        "advise",
        "whatif --model gpt-4o=gpt-4o-mini --by feature",
        "forecast --window day --by tenant",
        "anomalies --since 1d",
    ):
        print(f"  .venv/bin/tokenbudget {command} --otlp {SPANS_FILE}")


def _our_spans(spans: Sequence[ReadableSpan]) -> list[ReadableSpan]:
    return [
        span
        for span in spans
        if span.instrumentation_scope is not None and span.instrumentation_scope.name == INSTRUMENTATION_SCOPE
    ]


if __name__ == "__main__":
    raise SystemExit(main())
