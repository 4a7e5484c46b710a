"""Check emitted telemetry against the cost convention's registry, as `weaver registry live-check` would.

Weaver cannot be installed here, so this does the part of its live check that concerns the names
this project proposes, from the registry as data (`tests/semconv_registry.py`, generated from
`semconv/registry/`):

* every attribute in the registry's namespaces (`gen_ai.usage.cost.*`, `tokenbudget.*`) on a span,
  a span event or a metric point is known, has the registry's type (`double` means a float: an int
  would be exported as an OTLP int), and, for an enum, one of its values;
* such an attribute is defined for the signal it is on (a budget attribute on a span, or a group
  on the cost histogram, is not);
* required attributes are present, including those the registry requires "if `x` is set" or
  "if `x` is `v`" (the currency when an amount is set);
* cost is only on inference operations (#443 forbids it on agent, workflow and tool operations);
* every metric the registry names has the registry's instrument, unit and value type, and every
  metric in its namespaces is known.

The registry's enums are treated as closed: their members are the complete set by construction
(received or computed; block or warn; three price sources), so another value is a bug here even
though semantic-convention enums are open in general.

`check_spans` and `check_metrics` return the violations as readable strings, empty when all is well.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

from opentelemetry.sdk.metrics.export import (
    ExponentialHistogram,
    Gauge,
    Histogram,
    Metric,
    MetricsData,
    NumberDataPoint,
    Sum,
)
from opentelemetry.sdk.trace import ReadableSpan

from tests.semconv_registry import REGISTRY, AttributeUse, Registry

# The operations that perform model inference, as #443 lists them for its metric: cost belongs on
# these only. `plan` performs inference of its own while invoking others, and reports only its own.
INFERENCE_OPERATIONS = frozenset({"chat", "generate_content", "text_completion", "embeddings", "plan"})

# Which upstream span type an operation's span is, to pick the refinements that apply to it.
SPAN_TYPE_BY_OPERATION: Mapping[str, str] = {
    "chat": "gen_ai.inference.client",
    "generate_content": "gen_ai.inference.client",
    "text_completion": "gen_ai.inference.client",
    "embeddings": "gen_ai.embeddings.client",
}

# Attributes that say what an operation cost (as opposed to who it is attributed to).
COST_NAMESPACES = ("gen_ai.usage.cost.", "tokenbudget.cost.", "tokenbudget.price.")
COST_METRICS = frozenset({"gen_ai.client.operation.cost"})

OPERATION_NAME = "gen_ai.operation.name"
CURRENCY = "gen_ai.usage.cost.currency"
ISO_4217 = re.compile(r"^[A-Z]{3}$")


def check_spans(spans: Sequence[ReadableSpan], registry: Registry = REGISTRY) -> list[str]:
    """Violations of the registry by these spans and their events, each named with its span."""
    checker = _Checker(registry)
    for span in spans:
        checker.span(span)
    return checker.result()


def check_metrics(metrics_data: MetricsData | None, registry: Registry = REGISTRY) -> list[str]:
    """Violations of the registry by these metrics (e.g. `InMemoryMetricReader().get_metrics_data()`)."""
    checker = _Checker(registry)
    if metrics_data is not None:
        for resource_metrics in metrics_data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    checker.metric(metric)
    return checker.result()


class _Checker:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.violations: list[str] = []
        span_uses: dict[str, AttributeUse] = {}
        for refinement in registry["span_refinements"].values():
            span_uses.update(refinement["attributes"])
        self.span_attributes = frozenset(span_uses)

    def result(self) -> list[str]:
        # The same fault on many points or spans is one fault to fix; keep the first of each.
        return list(dict.fromkeys(self.violations))

    def fail(self, where: str, message: str) -> None:
        self.violations.append(f"{where}: {message}")

    def ours(self, name: str) -> bool:
        return any(name.startswith(space + ".") for space in self.registry["namespaces"])

    # ---- attributes ------------------------------------------------------------------------------

    def attribute(self, where: str, key: str, value: object, defined_for: frozenset[str] | None) -> None:
        """Check one attribute; `defined_for` is the signal's attribute set, None when unknown."""
        spec = self.registry["attributes"].get(key)
        if spec is None:
            if self.ours(key):
                self.fail(where, f"unknown attribute {key!r}")
            return
        if defined_for is not None and key not in defined_for:
            self.fail(where, f"attribute {key!r} is not defined for this signal")
        problem = _type_problem(spec["type"], spec["members"], value)
        if problem is not None:
            self.fail(where, f"attribute {key!r}: {problem}")
        elif isinstance(value, float) and not math.isfinite(value):
            self.fail(where, f"attribute {key!r}: {value!r} is not a finite number")
        elif key == CURRENCY and isinstance(value, str) and not ISO_4217.match(value):
            self.fail(where, f"attribute {key!r}: {value!r} is not an ISO 4217 code (three capitals)")

    def required(
        self, where: str, attributes: Mapping[str, object], uses: Mapping[str, AttributeUse]
    ) -> None:
        for key, use in uses.items():
            if key in attributes:
                continue
            if use["requirement_level"] == "required":
                self.fail(where, f"required attribute {key!r} is missing")
            elif use["requirement_level"] == "conditionally_required" and use["required_when"] is not None:
                other, wanted = use["required_when"]
                if other in attributes and (wanted is None or attributes[other] == wanted):
                    condition = f"{other!r} is set" if wanted is None else f"{other!r} is {wanted!r}"
                    self.fail(where, f"attribute {key!r} is missing, required when {condition}")

    def cost_on_inference_only(self, where: str, attributes: Mapping[str, object]) -> None:
        operation = attributes.get(OPERATION_NAME)
        if operation not in INFERENCE_OPERATIONS:
            self.fail(where, f"cost recorded for a non-inference operation ({OPERATION_NAME}={operation!r})")

    # ---- spans -----------------------------------------------------------------------------------

    def span(self, span: ReadableSpan) -> None:
        where = f"span {span.name!r}"
        attributes = dict(span.attributes or {})
        for key, value in attributes.items():
            self.attribute(where, key, value, self.span_attributes)
        if any(key.startswith(COST_NAMESPACES) for key in attributes):
            self.cost_on_inference_only(where, attributes)
        span_type = SPAN_TYPE_BY_OPERATION.get(str(attributes.get(OPERATION_NAME)))
        for refinement in self.registry["span_refinements"].values():
            if refinement["ref"] == span_type:
                self.required(where, attributes, refinement["attributes"])
        for event in span.events:
            self.event(f"{where} event {event.name!r}", event.name, dict(event.attributes or {}))

    def event(self, where: str, name: str, attributes: Mapping[str, object]) -> None:
        spec = self.registry["events"].get(name)
        if spec is None:
            if self.ours(name):
                self.fail(where, "unknown event")
            for key, value in attributes.items():
                self.attribute(where, key, value, None)
            return
        for key, value in attributes.items():
            self.attribute(where, key, value, frozenset(spec["attributes"]))
        self.required(where, attributes, spec["attributes"])

    # ---- metrics ---------------------------------------------------------------------------------

    def metric(self, metric: Metric) -> None:
        where = f"metric {metric.name!r}"
        spec = self.registry["metrics"].get(metric.name)
        uses: dict[str, AttributeUse] = dict(spec["attributes"]) if spec else {}
        refined = False
        for refinement in self.registry["metric_refinements"].values():
            if refinement["ref"] == metric.name:
                uses.update(refinement["attributes"])
                refined = True
        if spec is None and self.ours(metric.name):
            self.fail(where, "unknown metric")
        if spec is not None:
            instrument = _instrument(metric.data)
            if instrument != spec["instrument"]:
                self.fail(where, f"instrument is {instrument}, the registry says {spec['instrument']}")
            if metric.unit != spec["unit"]:
                self.fail(where, f"unit is {metric.unit!r}, the registry says {spec['unit']!r}")
        # The attribute set of a metric we do not describe at all (e.g. an upstream one we do not
        # refine) is not ours to judge; its attributes in our namespaces still are.
        defined_for = frozenset(uses) if spec is not None or refined else None
        for point in metric.data.data_points:
            attributes = dict(point.attributes or {})
            point_where = f"{where} point {_describe(attributes)}"
            for key, value in attributes.items():
                self.attribute(point_where, key, value, defined_for)
            if defined_for is not None:
                self.required(point_where, attributes, uses)
            if metric.name in COST_METRICS:
                self.cost_on_inference_only(point_where, attributes)
            if spec is not None and isinstance(point, NumberDataPoint):
                value_type = "int" if isinstance(point.value, int) else "double"
                if value_type != spec["value_type"]:
                    self.fail(
                        point_where,
                        f"value {point.value!r} is {value_type}, the registry says {spec['value_type']}",
                    )


def _instrument(data: object) -> str:
    if isinstance(data, Sum):
        return "counter" if data.is_monotonic else "updowncounter"
    if isinstance(data, Gauge):
        return "gauge"
    if isinstance(data, (Histogram, ExponentialHistogram)):
        return "histogram"
    return type(data).__name__


def _fits(scalar_type: str, value: object) -> bool:
    if scalar_type == "boolean":
        return isinstance(value, bool)
    if scalar_type == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if scalar_type == "double":
        return isinstance(value, float)
    return isinstance(value, str)


def _type_problem(type_name: str, members: Sequence[str], value: object) -> str | None:
    if type_name == "enum":
        if not isinstance(value, str):
            return f"expected a string enum value, got {type(value).__name__} {value!r}"
        if value not in members:
            return f"{value!r} is not one of {', '.join(repr(m) for m in members)}"
    elif type_name.endswith("[]"):
        # The SDK stores sequences as tuples; a hand-built span may hold a list.
        if not isinstance(value, (tuple, list)) or not all(_fits(type_name[:-2], item) for item in value):
            return f"expected {type_name}, got {value!r}"
    elif not _fits(type_name, value):
        return f"expected {type_name}, got {type(value).__name__} {value!r}"
    return None


def _describe(attributes: Mapping[str, object]) -> str:
    return "{" + ", ".join(f"{key}={value!r}" for key, value in sorted(attributes.items())) + "}"
