"""A/B outcomes: `record_outcome` inside `cost_attributes(variant=...)`, real OpenAI SDK calls
against the fake provider, spans written as OTLP JSON, and `tokenbudget outcomes --by variant`."""

from __future__ import annotations

import json
from typing import Any

import openai
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from opentelemetry_instrumentation_tokenbudget import cost_attributes, record_outcome
from opentelemetry_instrumentation_tokenbudget.cli.main import main
from opentelemetry_instrumentation_tokenbudget.testing import FakeProvider
from opentelemetry_instrumentation_tokenbudget.testing.otlp_json import OtlpJsonFileExporter
from tests.budget_support import MAX_TOKENS, PROMPT, client_for
from tests.conftest import Telemetry


def test_cost_per_success_per_variant(*, instrument: Any, telemetry: Telemetry, tmp_path, capsys) -> None:
    path = tmp_path / "spans.jsonl"
    telemetry.tracer_provider.add_span_processor(SimpleSpanProcessor(OtlpJsonFileExporter(path)))
    instrument()
    client: openai.OpenAI = client_for(FakeProvider())
    tracer = telemetry.tracer_provider.get_tracer("app")
    # Variant A (gpt-4o, $0.0003275 a call) succeeds 3 times in 4; B (gpt-4o-mini, $0.00001965) 2 in 4.
    for variant, model, results in (("A", "gpt-4o", (1, 1, 1, 0)), ("B", "gpt-4o-mini", (1, 0, 1, 0))):
        for number, success in enumerate(results):
            with tracer.start_as_current_span("task"), cost_attributes(feature="triage", variant=variant):
                client.chat.completions.create(
                    model=model, messages=[{"role": "user", "content": PROMPT}], max_tokens=MAX_TOKENS
                )
                assert record_outcome(success=bool(success), score=0.5 + 0.1 * number) is True
    assert record_outcome(success=True) is False  # no recording span: nothing to carry it

    assert main(["outcomes", "--otlp", str(path), "--format", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["groups"] == [
        {
            "key": {"variant": "A"},
            "calls": 4,
            "cost_usd": 0.00131,
            "unpriced_calls": 0,
            "outcomes": 4,
            "successes": 3,
            "success_rate": 0.75,
            "cost_per_success_usd": 0.0004366666666666667,  # Decimal 0.00131 / 3
            "mean_score": 0.65,
        },
        {
            "key": {"variant": "B"},
            "calls": 4,
            "cost_usd": 0.0000786,
            "unpriced_calls": 0,
            "outcomes": 4,
            "successes": 2,
            "success_rate": 0.5,
            "cost_per_success_usd": 0.0000393,
            "mean_score": 0.65,
        },
    ]
    [event] = [e for s in telemetry.spans() if s.name == "task" for e in s.events][:1]
    assert dict(event.attributes or {}) == {
        "tokenbudget.feature": "triage",
        "variant": "A",
        "tokenbudget.outcome.success": True,
        "tokenbudget.outcome.score": 0.5,
    }
