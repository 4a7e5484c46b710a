"""examples/collector: its dashboard's and alerts' PromQL against a real Prometheus that scrapes metrics
made by real instrumented OpenAI and Anthropic SDK calls; promtool on its config and rules; the
collector and compose files checked for structure.

The metrics reach Prometheus through the Python `opentelemetry-exporter-prometheus` reader serving
/metrics (scraped every second, job name = the app's service.name). Its name translation is the
collector `prometheus` exporter's (README of the example: dots to underscores, unit suffixes, curly
annotations dropped, `_total` on counters), except for gauges of unit "1", which only the collector
suffixes `_ratio`: the example uses no such name, and `test_no_query_uses_a_translation_dependent_name`
holds it to that.

Two rounds of the example's traffic: round 0 creates every series, round 1 is measured. Queries are
evaluated at the first scrape after round 1, with `$__range` and `$__rate_interval` set to exactly the
time since the first scrape after round 0, so that increase() and rate() see one sample at each end of
their range and do not extrapolate: their values are round 1's exact deltas, which the test takes from
round 1's spans. Fixed windows ([1h], [15m]) are checked against Prometheus's definitions computed
from the raw samples.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import prometheus_client
import pytest
import yaml
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from opentelemetry_instrumentation_tokenbudget.testing import FakeProviderServer
from tests.prometheus_server import (
    Prometheus,
    binary,
    extrapolated_increase,
    free_port,
    least_squares_slope,
    running_prometheus,
)

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "collector"
DASHBOARD = EXAMPLE / "grafana" / "dashboards" / "tokenbudget.json"
ALERTS = EXAMPLE / "prometheus" / "alerts.yml"
ALL = ".*"


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


app = _load("tokenbudget_collector_example_app", EXAMPLE / "app" / "app.py")
renderer = _load("tokenbudget_collector_example_render", EXAMPLE / "render_dashboard.py")


@dataclass
class Call:
    provider: str
    model: str
    project: str
    feature: str
    tenant: str
    user: str
    cost: float | None
    input_tokens: int
    output_tokens: int
    cache_read: int
    savings: float


def _calls(spans: list[ReadableSpan]) -> list[Call]:
    calls = []
    for span in spans:
        if span.instrumentation_scope is None or span.instrumentation_scope.name != app.INSTRUMENTATION_SCOPE:
            continue
        attributes = dict(span.attributes or {})
        cost = attributes.get("gen_ai.usage.cost.amount")
        read = int(attributes.get("gen_ai.usage.cache_read.input_tokens", 0))
        calls.append(
            Call(
                provider=str(attributes["gen_ai.provider.name"]),
                model=str(attributes["gen_ai.request.model"]),
                project=str(attributes["tokenbudget.project"]),
                feature=str(attributes["tokenbudget.feature"]),
                tenant=str(attributes["tokenbudget.tenant"]),
                user=str(attributes["user.id"]),
                cost=None if cost is None else float(cost),  # type: ignore[arg-type]
                input_tokens=int(attributes["gen_ai.usage.input_tokens"]),
                output_tokens=int(attributes["gen_ai.usage.output_tokens"]),
                cache_read=read,
                savings=app._savings(attributes, read) if read and cost is not None else 0.0,
            )
        )
    return calls


@dataclass
class Run:
    prometheus: Prometheus
    rounds: list[list[Call]]
    refused: list[int]
    at: float  # evaluation time: the first scrape after round 1 (seconds, ms precision)
    range_ms: int  # from the first scrape after round 0 to `at`
    exposition: str
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def range_s(self) -> float:
        return self.range_ms / 1000

    def expr(self, template: str) -> str:
        expr = template.replace("$__range", f"{self.range_ms}ms").replace(
            "$__rate_interval", f"{self.range_ms}ms"
        )
        for name in ("service", "provider", "model", "project"):
            expr = expr.replace(f"${name}", ALL)
        assert "$" not in expr, expr
        return expr

    def query(self, template: str) -> list[dict[str, Any]]:
        return self.prometheus.query(self.expr(template), self.at)


def _scrapes(prometheus: Prometheus, job: str) -> list[float]:
    try:
        result = prometheus.query(f'up{{job="{job}"}}[5m]', time.time())
    except OSError:
        return []
    return [float(t) for t, _ in result[0]["values"]] if result else []


def _first_scrape_after(prometheus: Prometheus, job: str, moment: float) -> float:
    """Wait until Prometheus has stored a scrape that started after `moment`, and return its time."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        later = [t for t in _scrapes(prometheus, job) if t > moment]
        if later:
            return later[0]
        time.sleep(0.1)
    raise AssertionError(f"no scrape after {moment}:\n{prometheus.log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    tmp = tmp_path_factory.mktemp("collector-example")
    registry = prometheus_client.CollectorRegistry()
    resource = Resource.create({"service.name": app.SERVICE_NAME})
    reader = PrometheusMetricReader(registry=registry)
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    exporter_port = free_port()
    http_server, http_thread = prometheus_client.start_http_server(
        exporter_port, addr="127.0.0.1", registry=registry
    )
    instrumentor = None
    try:
        with (
            FakeProviderServer() as provider,
            running_prometheus(tmp, f"127.0.0.1:{exporter_port}", app.SERVICE_NAME, [ALERTS]) as prometheus,
        ):
            openai_client, anthropic_client, openai_base_url = app.clients(provider.base_url)
            instrumentor = app.instrument(
                tracer_provider=tracer_provider,
                meter_provider=meter_provider,
                openai_base_url=openai_base_url,
            )
            traffic = app.Traffic(openai_client, anthropic_client)
            rounds: list[list[Call]] = []
            refused: list[int] = []
            scrapes: list[float] = []
            for _ in range(2):
                result = traffic.run_round()
                ended = time.time()
                rounds.append(_calls(list(spans.get_finished_spans())))
                refused.append(result.refused)
                spans.clear()
                scrapes.append(_first_scrape_after(prometheus, app.SERVICE_NAME, ended))
            exposition = prometheus_client.generate_latest(registry).decode()
            yield Run(
                prometheus=prometheus,
                rounds=rounds,
                refused=refused,
                at=scrapes[1],
                range_ms=round(scrapes[1] * 1000) - round(scrapes[0] * 1000),
                exposition=exposition,
            )
    finally:
        if instrumentor is not None:
            instrumentor.uninstrument()
        http_server.shutdown()
        http_thread.join()
        meter_provider.shutdown()
        tracer_provider.shutdown()


def _by(calls: list[Call], key: str, value: str = "cost") -> dict[str, float]:
    totals: dict[str, float] = defaultdict(float)
    for call in calls:
        if call.cost is not None or value != "cost":
            totals[getattr(call, key)] += getattr(call, value) or 0.0
    return dict(totals)


def _values(result: list[dict[str, Any]], *labels: str) -> dict[Any, float]:
    values: dict[Any, float] = {}
    for series in result:
        key = tuple(series["metric"].get(label, "") for label in labels)
        values[key[0] if len(key) == 1 else key] = float(series["value"][1])
    return values


def _approx(expected: dict[Any, float]) -> Any:
    return pytest.approx(expected, rel=1e-9, abs=1e-15)


def _spend(run: Run, key: str) -> dict[str, float]:
    """Round 1's spend per `key`, over the groups whose cost series exist (round 0 created them all)."""
    measured = _by(run.rounds[1], key)
    return {group: measured.get(group, 0.0) for group in _by(run.rounds[0] + run.rounds[1], key)}


def _budget_spent(run: Run) -> dict[tuple[str, str], float]:
    calls = [call for call in run.rounds[0] + run.rounds[1] if call.cost is not None]
    spent: dict[tuple[str, str], float] = defaultdict(float)
    for call in calls:
        spent["app-daily", ""] += call.cost or 0.0
        if call.project == "acme":
            spent["acme-daily", ""] += call.cost or 0.0
        if call.tenant == "free":
            spent["free-tier", ""] += call.cost or 0.0
    for call in run.rounds[0] + run.rounds[1]:
        spent["per-user", f"user.id={call.user}"] += call.cost or 0.0
    return dict(spent)


LIMITS = {"app-daily": 5.0, "acme-daily": 1.0, "free-tier": 0.00003, "per-user": 0.5}


def _projection(run: Run) -> dict[tuple[str, str], float]:
    """Spend so far plus the [1h] least-squares trend times the seconds left in the UTC day."""
    left = 86400 - (run.at % 86400)
    projected = {}
    for name, group in _budget_spent(run):
        matchers = f'tokenbudget_budget_name="{name}", tokenbudget_budget_group="{group}"'
        selector = f"tokenbudget_budget_usage{{{matchers}}}"
        samples = run.prometheus.samples(selector, 3600, run.at)
        projected[name, group] = samples[-1][1] + max(least_squares_slope(samples), 0.0) * left
    return projected


def _forecast(run: Run) -> dict[tuple[str, str], float]:
    """The forecast gauge: the usage scraped with it over the share of the UTC day gone at that scrape
    (the burn rate; the example's process never saw a previous day). None in the first 5% of a day."""
    forecast = {}
    for name, group in _budget_spent(run):
        matchers = f'tokenbudget_budget_name="{name}", tokenbudget_budget_group="{group}"'
        at_ms, usage = run.prometheus.samples(f"tokenbudget_budget_usage{{{matchers}}}", 5, run.at)[-1]
        elapsed = (at_ms / 1000) % 86400
        if elapsed >= 0.05 * 86400:
            forecast[name, group] = usage * 86400 / elapsed
    return forecast


def _forecast_warnings(run: Run) -> dict[str, float]:
    """The free tier is the only budget whose burn rate can pass its limit in the example: by its third
    call (27.45 of its 30 microdollars) the projection passes the limit if less than 91.5 % of the
    UTC day is gone, and none is made in the day's first 5 %. Counted once per window; the series
    exists only once it is."""
    elapsed = (run.at % 86400) / 86400
    return {"free-tier": 1.0} if 0.05 <= elapsed < 0.915 else {}


def _expected_panels(run: Run) -> dict[str, list[tuple[Any, ...]]]:
    """Per panel title, per query: (labels to key the result by, the expected values or a check)."""
    measured = run.rounds[1]
    per_hour = 3600 / run.range_s
    priced = [call for call in measured if call.cost is not None]
    spent = _budget_spent(run)
    users = {call.user for call in run.rounds[0] + run.rounds[1] if call.cost is not None}
    return {
        "Spend rate by provider": [
            (("gen_ai_provider_name",), {k: v * per_hour for k, v in _spend(run, "provider").items()})
        ],
        "Spend rate by model": [
            (("gen_ai_request_model",), {k: v * per_hour for k, v in _spend(run, "model").items()})
        ],
        "Spend in range": [((), {"": sum(call.cost or 0.0 for call in priced)})],
        "Spend by project": [(("tokenbudget_project",), _spend(run, "project"))],
        "Spend by feature": [(("tokenbudget_feature",), _spend(run, "feature"))],
        "Spend by tenant": [(("tokenbudget_tenant",), _spend(run, "tenant"))],
        "Top users by spend": [(("user_id",), {u: _spend(run, "user").get(u, 0.0) for u in users})],
        "Tokens in and out": [
            (
                ("gen_ai_token_type",),
                {
                    "input": sum(call.input_tokens for call in measured) * 60 / run.range_s,
                    "output": sum(call.output_tokens for call in measured) * 60 / run.range_s,
                },
            )
        ],
        "Prompt cache hit ratio": [
            ((), {"": sum(c.cache_read for c in priced) / sum(c.input_tokens for c in measured)})
        ],
        "What the prompt cache saved": [((), {"": sum(call.savings for call in priced)})],
        "Budget utilisation": [
            (
                ("tokenbudget_budget_name", "tokenbudget_budget_group"),
                {key: value / LIMITS[key[0]] for key, value in spent.items()},
            )
        ],
        "Projected end-of-window spend (daily budgets)": [
            (("tokenbudget_budget_name", "tokenbudget_budget_group"), _projection(run)),
            (("tokenbudget_budget_name", "tokenbudget_budget_group"), {key: LIMITS[key[0]] for key in spent}),
            (("tokenbudget_budget_name", "tokenbudget_budget_group"), _forecast(run)),
        ],
        "Refusals by budget": [(("tokenbudget_budget_name",), {"free-tier": float(run.refused[1])})],
        "Threshold crossings": [
            (
                ("tokenbudget_budget_name", "tokenbudget_budget_threshold"),
                {("free-tier", "0.5"): 1.0, ("free-tier", "0.8"): 1.0},
            )
        ],
        "Unpriced calls": [
            (
                ("gen_ai_provider_name", "gen_ai_request_model"),
                {("openai", "ft:gpt-4o-mini:acme:eval:v2"): 1.0},
            )
        ],
        "p95 call duration": [
            (
                ("gen_ai_provider_name", "gen_ai_request_model"),
                {(call.provider, call.model): "duration" for call in measured},
            )
        ],
        "Forecast warnings": [(("tokenbudget_budget_name",), _forecast_warnings(run))],
        # An anomaly needs a baseline of 15-minute intervals; seconds of traffic have none: no series.
        "Spend anomalies by budget": [(("tokenbudget_budget_name",), {})],
    }


def test_rounds_are_the_deterministic_traffic_of_the_example(run: Run) -> None:
    # Round 0: the free tier admits three calls (27.45 of its 30 microdollars) and refuses the
    # fourth; round 1 refuses all four. Anthropic's and OpenAI's prompt caches are warm in round 1.
    assert run.refused == [1, 4]
    assert [len(calls) for calls in run.rounds] == [13, 10]
    free = [call.cost for call in run.rounds[0] if call.tenant == "free"]
    assert free == pytest.approx([9.15e-6] * 3, rel=1e-12)
    assert [call.cache_read for call in run.rounds[1] if call.cache_read] == [1173, 1173, 1024, 1024]
    assert sum(call.cost or 0 for call in run.rounds[1]) == pytest.approx(0.00150156, rel=1e-9)


def test_scraped_names_follow_the_documented_translation(run: Run) -> None:
    names = set(re.findall(r"^# TYPE (\S+) (\S+)$", run.exposition, re.MULTILINE))
    assert {
        ("gen_ai_client_operation_cost", "histogram"),  # {cost}: annotation dropped, no suffix
        ("gen_ai_client_token_usage", "histogram"),  # {token}
        ("gen_ai_client_operation_duration_seconds", "histogram"),  # s -> _seconds
        ("tokenbudget_client_unpriced_calls_total", "counter"),  # {call}, and _total
        ("tokenbudget_budget_refusals_total", "counter"),
        ("tokenbudget_budget_threshold_crossings_total", "counter"),
        ("tokenbudget_budget_usage", "gauge"),  # {USD}
        ("tokenbudget_budget_limit", "gauge"),
        ("tokenbudget_budget_utilization", "gauge"),  # unit "1": the collector would add _ratio
        ("example_llm_cache_read_tokens_total", "counter"),
        ("example_llm_cache_savings_total", "counter"),
    } <= names
    scraped = {
        series["metric"]["__name__"]
        for series in run.prometheus.query(
            '{job="tokenbudget-example", __name__=~"(gen_ai|tokenbudget|example)_.*"}', run.at
        )
    }
    assert {"tokenbudget_client_unpriced_calls_total", "gen_ai_client_operation_cost_sum"} <= scraped


def _dashboard_targets() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [(panel, target) for panel in dashboard["panels"] for target in panel["targets"]]


def _alert_rules() -> list[dict[str, Any]]:
    rules = yaml.safe_load(ALERTS.read_text())
    return [rule for group in rules["groups"] for rule in group["rules"]]


def test_no_query_uses_a_translation_dependent_name() -> None:
    texts = [target["expr"] for _, target in _dashboard_targets()] + [rule["expr"] for rule in _alert_rules()]
    for text in texts:
        assert "utilization" not in text, text


def test_every_dashboard_query_returns_the_expected_series_and_values(run: Run, tmp_path: Path) -> None:
    expected = _expected_panels(run)
    panels = json.loads(DASHBOARD.read_text())["panels"]
    assert [panel["title"] for panel in panels] == list(expected)
    rendered = []
    for panel in panels:
        targets = panel["targets"]
        assert len(targets) == len(expected[panel["title"]]), panel["title"]
        series_for_picture: list[tuple[str, float]] = []
        for target, (labels, want) in zip(targets, expected[panel["title"]], strict=True):
            result = run.query(target["expr"])
            run.counts[f"panel {panel['title']} / {target['refId']}"] = len(result)
            got = _values(result, *labels) if labels else {"": float(result[0]["value"][1])}
            assert set(got) == set(want), (panel["title"], got, want)
            if all(check == "duration" for check in want.values()):
                for value in got.values():
                    assert 0 < value <= 1.28, (panel["title"], got)  # loopback calls: in the first buckets
            elif target["expr"].startswith("tokenbudget_budget_forecast"):
                # Computed when the scrape collects it, a few ms after the sample's timestamp.
                assert got == pytest.approx(want, rel=1e-6), panel["title"]
            else:
                assert got == _approx(want), panel["title"]
            for key, value in sorted(got.items(), key=lambda item: -item[1]):
                name = "/".join(key) if isinstance(key, tuple) else key
                legend = f"{target['refId']} {name}" if len(targets) > 1 else name
                series_for_picture.append((legend or target["legendFormat"], value))
        rendered.append(
            renderer.PanelResult(panel["title"], panel["fieldConfig"]["defaults"]["unit"], series_for_picture)
        )
    subtitle = (
        "Rendered with matplotlib from the panels' PromQL results in a real Prometheus "
        f"(tests/test_collector_example.py); range = {run.range_s:.3f} s, all variables = All"
    )
    picture = tmp_path / "dashboard.png"
    renderer.render(rendered, picture, subtitle=subtitle)
    assert picture.stat().st_size > 20_000
    if os.environ.get("TOKENBUDGET_UPDATE_SCREENSHOT") == "1":
        renderer.render(rendered, EXAMPLE / "dashboard.png", subtitle=subtitle)
    print("\n".join(f"{name}: {count} series" for name, count in run.counts.items()))


def test_dashboard_variables_list_the_label_values(run: Run) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    want = {
        "service": {"tokenbudget-example"},
        "provider": {"openai", "anthropic"},
        "model": {call.model for call in run.rounds[0]},
        "project": {"acme", "support", "research", "playground"},
    }
    for variable in dashboard["templating"]["list"]:
        match = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"]["query"])
        assert match, variable
        selector, label = match.groups()
        result = run.query(f"count by ({label}) ({selector})")
        run.counts[f"variable {variable['name']}"] = len(result)
        assert {series["metric"][label] for series in result} == want[variable["name"]]


def test_every_alert_expression_returns_the_expected_series(run: Run) -> None:
    rules = {rule["alert"]: rule for rule in _alert_rules()}
    at_ms = round(run.at * 1000)
    unpriced = run.prometheus.samples(
        'tokenbudget_client_unpriced_calls_total{gen_ai_request_model="ft:gpt-4o-mini:acme:eval:v2"}',
        900,
        run.at,
    )
    spent = _budget_spent(run)
    projection = _projection(run)
    expected: dict[str, tuple[tuple[str, ...], dict[Any, float]]] = {
        "TokenBudgetUtilizationHigh": (
            ("tokenbudget_budget_name", "tokenbudget_budget_group"),
            {("free-tier", ""): 0.915},
        ),
        "TokenBudgetBurnRate": (
            ("tokenbudget_budget_name", "tokenbudget_budget_group"),
            {
                key: value
                for key, value in projection.items()
                if value > LIMITS[key[0]] and spent[key] < LIMITS[key[0]]
            },
        ),
        # No spend an hour ago: no baseline, no spike.
        "TokenBudgetSpendSpike": (("job",), {}),
        # The example's few seconds of traffic give the anomaly detector no baseline.
        "TokenBudgetSpendAnomaly": (("tokenbudget_budget_name",), {}),
        "TokenBudgetUnpricedCalls": (
            ("gen_ai_provider_name", "gen_ai_request_model"),
            {
                ("openai", "ft:gpt-4o-mini:acme:eval:v2"): extrapolated_increase(
                    unpriced, at_ms - 900_000, at_ms
                )
                or 0.0
            },
        ),
    }
    assert set(rules) == set(expected)
    for name, (labels, want) in expected.items():
        result = run.query(rules[name]["expr"])
        run.counts[f"alert {name}"] = len(result)
        assert _values(result, *labels) == _approx(want), name
    # The free tier is at 91.5 % of its limit, and the app's traffic (a few seconds of it) would spend
    # the app-daily budget many times over by the end of the day: the burn-rate alert has something.
    assert expected["TokenBudgetBurnRate"][1]
    print(
        "\n".join(f"{name}: {count} series" for name, count in run.counts.items() if name.startswith("alert"))
    )


def test_prometheus_evaluates_the_alert_rules_itself(run: Run) -> None:
    deadline = time.monotonic() + 15
    states: dict[str, set[str]] = {}
    while time.monotonic() < deadline:
        alerts = run.prometheus.api("alerts")["alerts"]
        states = defaultdict(set)
        for alert in alerts:
            states[alert["labels"]["alertname"]].add(alert["state"])
        if "TokenBudgetUtilizationHigh" in states and "TokenBudgetUnpricedCalls" in states:
            break
        time.sleep(0.2)
    assert states.get("TokenBudgetUtilizationHigh") == {"pending"}  # for: 5m
    assert states.get("TokenBudgetUnpricedCalls") == {"firing"}
    assert "TokenBudgetSpendSpike" not in states
    assert "TokenBudgetSpendAnomaly" not in states


def _promtool(*args: str) -> str:
    completed = subprocess.run(
        [binary("promtool"), *args], cwd=EXAMPLE / "prometheus", capture_output=True, text=True, check=False
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    print(f"$ promtool {' '.join(args)}\n{output}")
    return output


def test_promtool_checks_the_config_and_rules_and_runs_the_rule_unit_tests() -> None:
    assert "SUCCESS" in _promtool("check", "config", "prometheus.yml")
    assert "SUCCESS: 5 rules found" in _promtool("check", "rules", "alerts.yml")
    assert "SUCCESS" in _promtool("test", "rules", "promtool_tests.yml")
    tests = yaml.safe_load((EXAMPLE / "prometheus" / "promtool_tests.yml").read_text())["tests"]
    fired: dict[str, set[bool]] = defaultdict(set)
    for case in tests:
        for check in case["alert_rule_test"]:
            fired[check["alertname"]].add(bool(check["exp_alerts"]))
    assert fired == {rule["alert"]: {True, False} for rule in _alert_rules()}


DEPRECATED_COMPONENTS = {"logging", "jaeger", "otlp", "otlphttp", "batch"}


def test_collector_pipelines_use_defined_current_components() -> None:
    config = yaml.safe_load((EXAMPLE / "otel-collector.yaml").read_text())
    service = config["service"]
    assert set(service["pipelines"]) == {"traces", "metrics"}
    for pipeline in service["pipelines"].values():
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline.get(kind, []):
                assert component in config[kind] or component in config.get("connectors", {}), component
    # The OTLP receiver keeps its name; the OTLP exporters are otlp_grpc / otlp_http now.
    for kind in ("processors", "exporters", "connectors", "extensions"):
        for component in config.get(kind, {}):
            assert component.split("/")[0] not in DEPRECATED_COMPONENTS, component
    assert set(service["extensions"]) <= set(config["extensions"])
    assert service["pipelines"]["traces"]["exporters"] == ["otlp_grpc/jaeger"]
    assert service["pipelines"]["metrics"]["exporters"] == ["prometheus"]


def _port(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1].split("/", maxsplit=1)[0])


def test_compose_ports_agree_with_the_collector_prometheus_and_grafana() -> None:
    compose = yaml.safe_load((EXAMPLE / "compose.yaml").read_text())
    collector = yaml.safe_load((EXAMPLE / "otel-collector.yaml").read_text())
    prometheus = yaml.safe_load((EXAMPLE / "prometheus" / "prometheus.yml").read_text())
    datasources = yaml.safe_load(
        (EXAMPLE / "grafana" / "provisioning" / "datasources" / "datasources.yaml").read_text()
    )
    services = compose["services"]
    assert set(services) == {"fake-provider", "app", "otel-collector", "jaeger", "prometheus", "grafana"}
    for name, service in services.items():
        assert set(service.get("depends_on", [])) <= set(services), name
        if "image" in service:
            assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+\.\d+", service["image"]), service["image"]

    # app -> collector: the OTLP endpoint's host is the collector's service, its port a receiver's.
    env = services["app"]["environment"]
    endpoint = env["OTEL_EXPORTER_OTLP_ENDPOINT"]
    assert endpoint.startswith("http://otel-collector:")
    protocols = collector["receivers"]["otlp"]["protocols"]
    wanted = "http" if env["OTEL_EXPORTER_OTLP_PROTOCOL"].startswith("http") else "grpc"
    assert _port(endpoint) == _port(protocols[wanted]["endpoint"])
    assert env["FAKE_PROVIDER_URL"] == "http://fake-provider:8765"
    assert "8765" in services["fake-provider"]["command"]
    published = {int(port.split(":")[0]) for port in services["otel-collector"]["ports"]}
    assert {_port(protocols["grpc"]["endpoint"]), _port(protocols["http"]["endpoint"])} <= published

    # collector -> jaeger (OTLP gRPC) and prometheus -> collector's exporter.
    jaeger = collector["exporters"]["otlp_grpc/jaeger"]["endpoint"]
    assert jaeger == "jaeger:4317"
    assert "4317" in services["jaeger"]["expose"]
    exporter_port = _port(collector["exporters"]["prometheus"]["endpoint"])
    targets = prometheus["scrape_configs"][0]["static_configs"][0]["targets"]
    assert targets == [f"otel-collector:{exporter_port}"]
    assert prometheus["scrape_configs"][0]["honor_labels"] is True
    assert prometheus["rule_files"] == ["alerts.yml"]
    volume = next(v for v in services["prometheus"]["volumes"] if v.startswith("./prometheus:"))
    assert volume.split(":")[1] == "/etc/prometheus"

    # grafana -> prometheus and jaeger; the dashboard's datasource uid is provisioned.
    urls = {source["uid"]: source["url"] for source in datasources["datasources"]}
    assert urls == {"prometheus": "http://prometheus:9090", "jaeger": "http://jaeger:16686"}
    assert "9090:9090" in services["prometheus"]["ports"]
    assert "16686:16686" in services["jaeger"]["ports"]
    uids = {target_panel["datasource"]["uid"] for target_panel, _ in _dashboard_targets()}
    assert uids == {"prometheus"}
    provider = yaml.safe_load(
        (EXAMPLE / "grafana" / "provisioning" / "dashboards" / "dashboards.yaml").read_text()
    )
    mounted = {v.split(":")[1] for v in services["grafana"]["volumes"]}
    assert provider["providers"][0]["options"]["path"] in mounted


def test_screenshot_is_committed() -> None:
    assert (EXAMPLE / "dashboard.png").stat().st_size > 20_000


def test_values_are_finite(run: Run) -> None:
    for series in run.query('{job="tokenbudget-example", __name__=~"tokenbudget_budget_.*"}'):
        assert math.isfinite(float(series["value"][1])), series
