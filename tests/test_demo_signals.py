"""The demo's simulated morning prints the predictive warning and the anomaly alert it promises."""

from __future__ import annotations

from datetime import datetime, timezone

from opentelemetry_instrumentation_tokenbudget import demo_signals
from opentelemetry_instrumentation_tokenbudget.testing.fake_server import FakeProviderServer


def test_the_simulated_morning_warns_before_the_spend_and_names_the_runaway_model(capsys) -> None:
    with FakeProviderServer() as server:
        demo_signals.run(server, datetime(2026, 12, 2, 6, tzinfo=timezone.utc))
    printed = capsys.readouterr().out.splitlines()
    assert printed == [
        "",
        "a simulated morning for tenant t9, from 06:00 UTC, a support call every 10 minutes",
        # 13 calls at $0.0000108 (24 tokens in, 12 out on gpt-4o-mini), a third of the day gone
        "on_forecast: per-tenant tokenbudget.tenant=t9: spent $0.0001404, projected $0.0004212 by"
        " midnight (burn-rate), limit $0.0004 reached around 22:47 UTC",
        "10:00 UTC: a runaway export starts",
        "on_anomaly: per-tenant tokenbudget.tenant=t9: $0.000180 from 10:00 against $0.000016 expected"
        " (score 20.5), driver gen_ai.request.model=gpt-4o",
    ]
