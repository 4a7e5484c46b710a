"""The live check catches each kind of violation, on hand-built spans and on real SDK metrics."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pytest
from opentelemetry.metrics import Meter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricsData
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.util.types import AttributeValue

from opentelemetry_instrumentation_tokenbudget import semconv as sc
from tests.semconv_registry import Registry

from .semconv_live_check import check_metrics, check_spans

Attributes = Mapping[str, AttributeValue]

PRICED_CHAT: Attributes = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o-mini",
    sc.GEN_AI_USAGE_COST_AMOUNT: 0.00042,
    sc.GEN_AI_USAGE_COST_CURRENCY: "USD",
    sc.GEN_AI_USAGE_COST_SOURCE: sc.GenAiUsageCostSourceValues.LOCAL.value,
    sc.TOKENBUDGET_COST_INPUT: 0.0001,
    sc.TOKENBUDGET_COST_CACHE_READ: 0.00002,
    sc.TOKENBUDGET_COST_CACHE_WRITE: 0.0,
    sc.TOKENBUDGET_COST_OUTPUT: 0.0003,
    sc.TOKENBUDGET_PRICE_SOURCE: sc.TokenbudgetPriceSourceValues.GENAI_PRICES.value,
    sc.TOKENBUDGET_PRICE_VERSION: "genai-prices 0.2.3",
    sc.TOKENBUDGET_PROJECT: "acme",
    sc.TOKENBUDGET_FEATURE: "search",
    "user.id": "u-42",
}

THRESHOLD_CROSSED: Attributes = {
    sc.TOKENBUDGET_BUDGET_NAME: "daily",
    sc.TOKENBUDGET_BUDGET_ACTION: sc.TokenbudgetBudgetActionValues.WARN.value,
    sc.TOKENBUDGET_BUDGET_THRESHOLD: 0.8,
    sc.TOKENBUDGET_BUDGET_SPENT: 4.1,
    sc.TOKENBUDGET_BUDGET_LIMIT: 5.0,
}

REFUSED: Attributes = {
    sc.TOKENBUDGET_BUDGET_NAME: "per-user",
    sc.TOKENBUDGET_BUDGET_GROUP: "user.id=u-42",
    sc.TOKENBUDGET_BUDGET_SPENT: 0.49,
    sc.TOKENBUDGET_BUDGET_RESERVED: 0.0,
    sc.TOKENBUDGET_BUDGET_ESTIMATE: 0.02,
    sc.TOKENBUDGET_BUDGET_LIMIT: 0.5,
}

COST_POINT: Attributes = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o-mini",
    sc.GEN_AI_USAGE_COST_CURRENCY: "USD",
    sc.GEN_AI_USAGE_COST_SOURCE: "local",
    sc.TOKENBUDGET_PROJECT: "acme",
}


def span(
    attributes: Attributes, *, events: tuple[tuple[str, Attributes], ...] = (), name: str = "chat gpt-4o-mini"
) -> ReadableSpan:
    return ReadableSpan(
        name=name,
        attributes=attributes,
        events=tuple(Event(event_name, event_attributes) for event_name, event_attributes in events),
    )


def without(attributes: Attributes, *keys: str) -> dict[str, AttributeValue]:
    return {key: value for key, value in attributes.items() if key not in keys}


def record(emit: Callable[[Meter], None]) -> MetricsData | None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    try:
        emit(provider.get_meter("test"))
        return reader.get_metrics_data()
    finally:
        provider.shutdown()


def only(violations: list[str]) -> str:
    assert len(violations) == 1, violations
    return violations[0]


# ---- spans ---------------------------------------------------------------------------------------


def test_conforming_spans_and_events_have_no_violation() -> None:
    spans = [
        span(PRICED_CHAT, events=((sc.TOKENBUDGET_BUDGET_THRESHOLD_CROSSED_EVENT, THRESHOLD_CROSSED),)),
        # A provider-reported cost: no breakdown and no price provenance, and that is fine.
        span(
            {
                "gen_ai.operation.name": "chat",
                sc.GEN_AI_USAGE_COST_AMOUNT: 0.01,
                sc.GEN_AI_USAGE_COST_CURRENCY: "EUR",
                sc.GEN_AI_USAGE_COST_SOURCE: "provider",
            }
        ),
        span({**PRICED_CHAT, "gen_ai.operation.name": "embeddings", sc.TOKENBUDGET_COST_ESTIMATED: True}),
        # An unpriced call carries no cost at all.
        span(
            without(PRICED_CHAT, *(k for k in PRICED_CHAT if k.startswith(("gen_ai.usage", "tokenbudget"))))
        ),
        # The user's own span, on which a refusal is recorded.
        span({"http.route": "/ask"}, name="handle", events=((sc.TOKENBUDGET_BUDGET_REFUSED_EVENT, REFUSED),)),
    ]
    assert check_spans(spans) == []


def test_unknown_attribute_in_our_namespaces() -> None:
    violations = check_spans(
        [span({**PRICED_CHAT, "tokenbudget.cost.total": 0.1, "gen_ai.usage.cost.tax": 0.0})]
    )
    assert violations == [
        "span 'chat gpt-4o-mini': unknown attribute 'tokenbudget.cost.total'",
        "span 'chat gpt-4o-mini': unknown attribute 'gen_ai.usage.cost.tax'",
    ]


def test_attributes_of_other_namespaces_are_left_alone() -> None:
    assert (
        check_spans([span({**PRICED_CHAT, "gen_ai.usage.cost_center": 1, "acme.anything": [1, "a"]})]) == []
    )


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        # An int would be exported as an OTLP int, not a double.
        (sc.GEN_AI_USAGE_COST_AMOUNT, 0, "expected double, got int 0"),
        (sc.GEN_AI_USAGE_COST_AMOUNT, "0.1", "expected double, got str '0.1'"),
        (sc.TOKENBUDGET_COST_OUTPUT, True, "expected double, got bool True"),
        (sc.TOKENBUDGET_COST_ESTIMATED, "true", "expected boolean, got str 'true'"),
        (sc.TOKENBUDGET_PRICE_VERSION, 3, "expected string, got int 3"),
        (sc.TOKENBUDGET_PROJECT, ("a", "b"), "expected string, got tuple ('a', 'b')"),
    ],
)
def test_wrong_type(key: str, value: AttributeValue, message: str) -> None:
    assert only(check_spans([span({**PRICED_CHAT, key: value})])) == (
        f"span 'chat gpt-4o-mini': attribute {key!r}: {message}"
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (sc.GEN_AI_USAGE_COST_SOURCE, "estimated"),
        (sc.TOKENBUDGET_PRICE_SOURCE, "litellm"),
        (sc.TOKENBUDGET_PRICE_SOURCE, "genai_prices"),  # the member id, not its value
    ],
)
def test_enum_value_not_allowed(key: str, value: str) -> None:
    violation = only(check_spans([span({**PRICED_CHAT, key: value})]))
    assert violation.startswith(f"span 'chat gpt-4o-mini': attribute {key!r}: {value!r} is not one of ")


def test_non_finite_cost_and_bad_currency() -> None:
    violations = check_spans([span({**PRICED_CHAT, sc.GEN_AI_USAGE_COST_AMOUNT: float("nan")})])
    assert only(violations).endswith("'gen_ai.usage.cost.amount': nan is not a finite number")
    violations = check_spans([span({**PRICED_CHAT, sc.GEN_AI_USAGE_COST_CURRENCY: "usd"})])
    assert only(violations).endswith("'usd' is not an ISO 4217 code (three capitals)")


@pytest.mark.parametrize("missing", [sc.GEN_AI_USAGE_COST_CURRENCY, sc.GEN_AI_USAGE_COST_SOURCE])
def test_currency_and_source_are_required_with_an_amount(missing: str) -> None:
    assert only(check_spans([span(without(PRICED_CHAT, missing))])) == (
        f"span 'chat gpt-4o-mini': attribute {missing!r} is missing, "
        "required when 'gen_ai.usage.cost.amount' is set"
    )


def test_price_source_is_required_for_a_local_cost_only() -> None:
    assert only(check_spans([span(without(PRICED_CHAT, sc.TOKENBUDGET_PRICE_SOURCE))])) == (
        "span 'chat gpt-4o-mini': attribute 'tokenbudget.price.source' is missing, "
        "required when 'gen_ai.usage.cost.source' is 'local'"
    )
    provider_cost = {
        **without(PRICED_CHAT, sc.TOKENBUDGET_PRICE_SOURCE),
        sc.GEN_AI_USAGE_COST_SOURCE: "provider",
    }
    assert check_spans([span(provider_cost)]) == []


@pytest.mark.parametrize("operation", ["invoke_agent", "invoke_workflow", "execute_tool", None])
def test_cost_on_a_non_inference_span(operation: str | None) -> None:
    attributes = without(PRICED_CHAT, "gen_ai.operation.name")
    if operation is not None:
        attributes["gen_ai.operation.name"] = operation
    assert only(check_spans([span(attributes, name="agent")])) == (
        f"span 'agent': cost recorded for a non-inference operation (gen_ai.operation.name={operation!r})"
    )


def test_budget_attribute_directly_on_a_span() -> None:
    assert only(check_spans([span({**PRICED_CHAT, sc.TOKENBUDGET_BUDGET_NAME: "daily"})])) == (
        "span 'chat gpt-4o-mini': attribute 'tokenbudget.budget.name' is not defined for this signal"
    )


def test_event_violations() -> None:
    crossed = sc.TOKENBUDGET_BUDGET_THRESHOLD_CROSSED_EVENT
    bad = {
        **without(THRESHOLD_CROSSED, sc.TOKENBUDGET_BUDGET_THRESHOLD),
        sc.TOKENBUDGET_BUDGET_ACTION: "throttle",
        sc.TOKENBUDGET_BUDGET_ESTIMATE: 0.1,  # a refusal's attribute, not a threshold's
    }
    violations = check_spans(
        [
            span(
                {"gen_ai.operation.name": "chat"},
                events=(
                    (crossed, bad),
                    ("tokenbudget.budget.exhausted", {}),
                    (sc.TOKENBUDGET_BUDGET_REFUSED_EVENT, without(REFUSED, sc.TOKENBUDGET_BUDGET_ESTIMATE)),
                ),
            )
        ]
    )
    where = "span 'chat gpt-4o-mini' event"
    assert violations == [
        f"{where} {crossed!r}: attribute 'tokenbudget.budget.action': "
        "'throttle' is not one of 'block', 'warn'",
        f"{where} {crossed!r}: attribute 'tokenbudget.budget.estimate' is not defined for this signal",
        f"{where} {crossed!r}: required attribute 'tokenbudget.budget.threshold' is missing",
        f"{where} 'tokenbudget.budget.exhausted': unknown event",
        f"{where} 'tokenbudget.budget.refused': required attribute 'tokenbudget.budget.estimate' is missing",
    ]


def test_array_types() -> None:
    # The registry has no array attribute today; the checker must still handle them when it does.
    from tests.semconv_registry import REGISTRY

    registry: Registry = {
        **REGISTRY,
        "attributes": {
            **REGISTRY["attributes"],
            "tokenbudget.budget.names": {"type": "string[]", "members": (), "stability": "development"},
        },
    }
    ok = span({"gen_ai.operation.name": "chat", "tokenbudget.budget.names": ("daily", "per-user")})
    listed = span({"gen_ai.operation.name": "chat", "tokenbudget.budget.names": ["daily"]})
    mixed = span({"gen_ai.operation.name": "chat", "tokenbudget.budget.names": ("daily", 3)})
    scalar = span({"gen_ai.operation.name": "chat", "tokenbudget.budget.names": "daily"})
    violations = [v for v in check_spans([ok, listed, mixed, scalar], registry) if "defined for" not in v]
    assert violations == [
        "span 'chat gpt-4o-mini': attribute 'tokenbudget.budget.names': expected string[], got ('daily', 3)",
        "span 'chat gpt-4o-mini': attribute 'tokenbudget.budget.names': expected string[], got 'daily'",
    ]


# ---- metrics -------------------------------------------------------------------------------------


def emit_conforming(meter: Meter) -> None:
    meter.create_histogram(sc.GEN_AI_CLIENT_OPERATION_COST, unit=sc.GEN_AI_CLIENT_OPERATION_COST_UNIT).record(
        0.00042, COST_POINT
    )
    meter.create_counter(
        sc.TOKENBUDGET_CLIENT_UNPRICED_CALLS, unit=sc.TOKENBUDGET_CLIENT_UNPRICED_CALLS_UNIT
    ).add(1, {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "ollama", sc.TOKENBUDGET_FEATURE: "f"})
    budget = {sc.TOKENBUDGET_BUDGET_NAME: "daily", sc.TOKENBUDGET_BUDGET_ACTION: "block"}
    meter.create_gauge(sc.TOKENBUDGET_BUDGET_SPEND, unit=sc.TOKENBUDGET_BUDGET_SPEND_UNIT).set(4.1, budget)
    meter.create_gauge(sc.TOKENBUDGET_BUDGET_LIMIT_METRIC, unit=sc.TOKENBUDGET_BUDGET_LIMIT_UNIT).set(
        5.0, budget
    )
    meter.create_gauge(sc.TOKENBUDGET_BUDGET_UTILIZATION, unit=sc.TOKENBUDGET_BUDGET_UTILIZATION_UNIT).set(
        0.82, budget
    )
    meter.create_counter(sc.TOKENBUDGET_BUDGET_REFUSALS, unit=sc.TOKENBUDGET_BUDGET_REFUSALS_UNIT).add(
        1, {sc.TOKENBUDGET_BUDGET_NAME: "daily", "gen_ai.request.model": "gpt-4o"}
    )
    meter.create_counter(
        sc.TOKENBUDGET_BUDGET_THRESHOLD_CROSSINGS, unit=sc.TOKENBUDGET_BUDGET_THRESHOLD_CROSSINGS_UNIT
    ).add(1, {sc.TOKENBUDGET_BUDGET_NAME: "daily", sc.TOKENBUDGET_BUDGET_THRESHOLD: 0.8})
    # An upstream metric that we refine: attribution keys are defined for it.
    meter.create_histogram("gen_ai.client.token.usage", unit="{token}").record(
        12, {"gen_ai.token.type": "input", sc.TOKENBUDGET_TENANT: "t-9"}
    )


def test_conforming_metrics_have_no_violation() -> None:
    assert check_metrics(record(emit_conforming)) == []


def test_no_metrics_at_all() -> None:
    assert check_metrics(None) == []
    assert check_metrics(record(lambda meter: None)) == []


def test_wrong_unit_of_the_cost_histogram() -> None:
    # The unit our first draft used, before #443 settled on `{cost}` with the currency as attribute.
    data = record(
        lambda meter: meter.create_histogram(sc.GEN_AI_CLIENT_OPERATION_COST, unit="{USD}").record(
            0.1, COST_POINT
        )
    )
    assert (
        only(check_metrics(data))
        == "metric 'gen_ai.client.operation.cost': unit is '{USD}', the registry says '{cost}'"
    )


@pytest.mark.parametrize(
    ("emit", "message"),
    [
        (
            lambda m: m.create_counter(sc.GEN_AI_CLIENT_OPERATION_COST, unit="{cost}").add(0.1, COST_POINT),
            "instrument is counter, the registry says histogram",
        ),
        (
            lambda m: m.create_up_down_counter(sc.TOKENBUDGET_BUDGET_REFUSALS, unit="{call}").add(
                1, {sc.TOKENBUDGET_BUDGET_NAME: "daily"}
            ),
            "instrument is updowncounter, the registry says counter",
        ),
        (
            lambda m: m.create_histogram(sc.TOKENBUDGET_BUDGET_UTILIZATION, unit="1").record(
                0.5, {sc.TOKENBUDGET_BUDGET_NAME: "daily"}
            ),
            "instrument is histogram, the registry says gauge",
        ),
    ],
)
def test_wrong_instrument(emit: Callable[[Meter], None], message: str) -> None:
    assert only(check_metrics(record(emit))).endswith(message)


def test_wrong_value_type() -> None:
    data = record(
        lambda m: m.create_gauge(sc.TOKENBUDGET_BUDGET_SPEND, unit="{USD}").set(
            4, {sc.TOKENBUDGET_BUDGET_NAME: "d"}
        )
    )
    assert only(check_metrics(data)) == (
        "metric 'tokenbudget.budget.usage' point {tokenbudget.budget.name='d'}: "
        "value 4 is int, the registry says double"
    )


@pytest.mark.parametrize(
    "missing", [sc.GEN_AI_USAGE_COST_CURRENCY, sc.GEN_AI_USAGE_COST_SOURCE, "gen_ai.provider.name"]
)
def test_required_metric_attribute_missing(missing: str) -> None:
    data = record(
        lambda m: m.create_histogram(sc.GEN_AI_CLIENT_OPERATION_COST, unit="{cost}").record(
            0.1, without(COST_POINT, missing)
        )
    )
    assert only(check_metrics(data)).endswith(f": required attribute {missing!r} is missing")


def test_server_port_is_required_with_server_address() -> None:
    data = record(
        lambda m: m.create_histogram(sc.GEN_AI_CLIENT_OPERATION_COST, unit="{cost}").record(
            0.1, {**COST_POINT, "server.address": "api.openai.com"}
        )
    )
    assert only(check_metrics(data)).endswith(
        "attribute 'server.port' is missing, required when 'server.address' is set"
    )


def test_metric_attribute_violations() -> None:
    def emit(m: Meter) -> None:
        m.create_histogram(sc.GEN_AI_CLIENT_OPERATION_COST, unit="{cost}").record(
            0.1,
            {
                **COST_POINT,
                sc.GEN_AI_USAGE_COST_SOURCE: "guess",
                # One time series per budget group on the cost histogram: not defined for it.
                sc.TOKENBUDGET_BUDGET_GROUP: "user.id=u-1",
            },
        )

    violations = check_metrics(record(emit))
    assert len(violations) == 2, violations
    assert violations[0].endswith(
        "attribute 'gen_ai.usage.cost.source': 'guess' is not one of 'provider', 'local'"
    )
    assert violations[1].endswith("attribute 'tokenbudget.budget.group' is not defined for this signal")


def test_cost_metric_for_an_agent_operation() -> None:
    data = record(
        lambda m: m.create_histogram(sc.GEN_AI_CLIENT_OPERATION_COST, unit="{cost}").record(
            0.1, {**COST_POINT, "gen_ai.operation.name": "invoke_agent"}
        )
    )
    assert only(check_metrics(data)).endswith(
        "cost recorded for a non-inference operation (gen_ai.operation.name='invoke_agent')"
    )


def test_unknown_metric_in_our_namespace() -> None:
    data = record(lambda m: m.create_counter("tokenbudget.budget.spend", unit="{USD}").add(1.0))
    assert only(check_metrics(data)) == "metric 'tokenbudget.budget.spend': unknown metric"


def test_our_attributes_on_other_metrics() -> None:
    def emit(m: Meter) -> None:
        # Not a metric we describe: its attribute set is not ours to judge, our attributes on it are.
        m.create_histogram("http.client.request.duration", unit="s").record(
            0.2, {sc.TOKENBUDGET_PROJECT: 7, "http.request.method": "POST"}
        )
        # A metric we refine: our attributes on it must be among those the refinement defines.
        m.create_histogram("gen_ai.client.operation.duration", unit="s").record(
            0.2, {sc.GEN_AI_USAGE_COST_CURRENCY: "USD"}
        )

    violations = check_metrics(record(emit))
    assert violations == [
        "metric 'http.client.request.duration' point {http.request.method='POST', tokenbudget.project=7}: "
        "attribute 'tokenbudget.project': expected string, got int 7",
        "metric 'gen_ai.client.operation.duration' point {gen_ai.usage.cost.currency='USD'}: "
        "attribute 'gen_ai.usage.cost.currency' is not defined for this signal",
    ]


def test_the_same_fault_is_reported_once() -> None:
    def emit(m: Meter) -> None:
        histogram = m.create_histogram(sc.GEN_AI_CLIENT_OPERATION_COST, unit="{USD}")
        for model in ("a", "b", "c"):
            histogram.record(0.1, {**COST_POINT, "gen_ai.request.model": model})

    assert len(check_metrics(record(emit))) == 1
