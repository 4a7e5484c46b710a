"""`tokenbudget report --prometheus URL`: a real Prometheus scrapes the metrics of real instrumented SDK
calls (through the Python Prometheus reader, whose names are the Collector exporter's); the report
from it equals the report from the spend ledger the same calls wrote, except for what only spans
carry (cache tokens, estimates). An unreachable server is one line and exit code 2."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import prometheus_client
import pytest
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from opentelemetry_instrumentation_tokenbudget import TokenBudgetInstrumentor, cost_attributes
from opentelemetry_instrumentation_tokenbudget.cli.main import main
from opentelemetry_instrumentation_tokenbudget.testing import FakeProvider

from .prometheus_server import Prometheus, free_port, running_prometheus
from .test_ledger import MESSAGES, anthropic_client, openai_client

JOB = "tokenbudget-report-test"


@dataclass
class Sources:
    prometheus: Prometheus
    ledger: Path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _scraped_after(prometheus: Prometheus, moment: float) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        result = prometheus.query(f'up{{job="{JOB}"}}[1m]', time.time())
        if result and any(float(t) > moment + 0.001 for t, _ in result[0]["values"]):
            return
        time.sleep(0.1)
    raise AssertionError(f"no scrape after {moment}:\n{prometheus.log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sources]:
    tmp = tmp_path_factory.mktemp("report-prometheus")
    registry = prometheus_client.CollectorRegistry()
    meter_provider = MeterProvider(
        resource=Resource.create({"service.name": JOB}),
        metric_readers=[PrometheusMetricReader(registry=registry)],
    )
    tracer_provider = TracerProvider()
    port = free_port()
    http_server, http_thread = prometheus_client.start_http_server(port, addr="127.0.0.1", registry=registry)
    ledger = tmp / "spend.db"
    try:
        with running_prometheus(tmp, f"127.0.0.1:{port}", JOB, []) as prometheus:
            instrumentor = TokenBudgetInstrumentor()
            instrumentor.instrument(
                tracer_provider=tracer_provider, meter_provider=meter_provider, ledger=f"sqlite:///{ledger}"
            )
            try:
                provider = FakeProvider()
                with cost_attributes(project="acme", feature="search"):
                    for _ in range(3):
                        openai_client(provider).chat.completions.create(
                            model="gpt-4o-mini", messages=MESSAGES
                        )
                with cost_attributes(project="acme", feature="summary"):
                    anthropic_client(provider).messages.create(
                        model="claude-haiku-4-5", max_tokens=64, messages=MESSAGES
                    )
            finally:
                instrumentor.uninstrument()
            _scraped_after(prometheus, time.time())
            yield Sources(prometheus, ledger)
    finally:
        http_server.shutdown()
        http_thread.join()
        meter_provider.shutdown()
        tracer_provider.shutdown()


@pytest.mark.parametrize("by", ["model", "feature", "provider,model", "day"])
def test_the_same_report_from_prometheus_as_from_the_ledger(capsys, sources, by):
    code, out, err = run(
        capsys, "report", "--prometheus", sources.prometheus.url, "--by", by, "--format", "json"
    )
    assert (code, err) == (0, "")
    from_prometheus = json.loads(out)
    code, out, _ = run(capsys, "report", "--ledger", str(sources.ledger), "--by", by, "--format", "json")
    from_ledger = json.loads(out)
    assert from_prometheus["by"] == from_ledger["by"] == by.split(",")
    assert from_prometheus["groups"] == from_ledger["groups"]
    assert from_prometheus["total"] == from_ledger["total"]
    assert from_ledger["total"]["calls"] == 4
    # 3 x (8 x 0.15 + 11 x 0.60) + (8 x 1 + 11 x 5) USD per million
    assert from_prometheus["total"]["cost_usd"] == 0.0000864


def test_where_and_top_become_label_matchers(capsys, sources):
    code, out, _ = run(
        capsys, "report", "--prometheus", sources.prometheus.url, "--by", "model",
        "--where", "feature=search", "--format", "csv",
    )  # fmt: skip
    assert code == 0
    assert out.splitlines()[1:] == ["model=gpt-4o-mini,3,24,33,0,0,0.00002340,0,0"]
    code, out, _ = run(
        capsys, "report", "--prometheus", sources.prometheus.url, "--by", "model", "--top", "1"
    )
    assert code == 0
    assert "claude-haiku-4-5" in out
    assert "gpt-4o-mini" not in out


def test_an_unreachable_prometheus_is_one_line_exit_2(capsys):
    url = f"http://127.0.0.1:{free_port()}"
    code, out, err = run(capsys, "report", "--prometheus", url, "--by", "model")
    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert err.startswith(f"tokenbudget report: --prometheus {url}: cannot query it (")


def test_a_server_that_is_not_prometheus_is_one_line_exit_2(capsys, sources):
    url = f"{sources.prometheus.url}/graph"  # an HTML page, not the API
    code, out, err = run(capsys, "report", "--prometheus", url)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert f"--prometheus {url}: " in err
