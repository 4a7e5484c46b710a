"""The instruments every call records to: tokens, duration, cost, and calls that could not be priced."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from opentelemetry.metrics import Counter, Histogram, Meter
from opentelemetry.semconv._incubating.metrics.gen_ai_metrics import (
    GEN_AI_CLIENT_OPERATION_DURATION,
    GEN_AI_CLIENT_TOKEN_USAGE,
)
from opentelemetry.util.types import AttributeValue

from .semconv import (
    GEN_AI_CLIENT_OPERATION_COST,
    GEN_AI_CLIENT_OPERATION_COST_UNIT,
    TOKENBUDGET_CLIENT_UNPRICED_CALLS,
    TOKENBUDGET_CLIENT_UNPRICED_CALLS_UNIT,
)

# Bucket boundaries that the GenAI conventions advise for these two histograms.
TOKEN_USAGE_BUCKETS: Sequence[float] = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip
DURATION_BUCKETS: Sequence[float] = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
# Per-call cost spans from a fraction of a microdollar (a small embedding) to dollars (a long
# reasoning call); roughly three buckets per decade keep percentiles meaningful across that range.
COST_BUCKETS: Sequence[float] = (
    0.000001, 0.000003, 0.00001, 0.00003, 0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 3, 10,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class CallInstruments:
    token_usage: Histogram
    duration: Histogram
    cost: Histogram
    unpriced_calls: Counter


def create_call_instruments(meter: Meter) -> CallInstruments:
    return CallInstruments(
        token_usage=meter.create_histogram(
            GEN_AI_CLIENT_TOKEN_USAGE,
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=TOKEN_USAGE_BUCKETS,
        ),
        duration=meter.create_histogram(
            GEN_AI_CLIENT_OPERATION_DURATION,
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        ),
        cost=meter.create_histogram(
            GEN_AI_CLIENT_OPERATION_COST,
            unit=GEN_AI_CLIENT_OPERATION_COST_UNIT,
            description="Cost of a GenAI operation; the sum over a window is the spend.",
            explicit_bucket_boundaries_advisory=COST_BUCKETS,
        ),
        unpriced_calls=meter.create_counter(
            TOKENBUDGET_CLIENT_UNPRICED_CALLS,
            unit=TOKENBUDGET_CLIENT_UNPRICED_CALLS_UNIT,
            description="Calls whose model has no known price, so their cost is missing from the spend.",
        ),
    )


def add_metric_attribution(
    attributes: dict[str, AttributeValue],
    attribution: Mapping[str, AttributeValue],
    allowed: frozenset[str],
) -> None:
    """Copy into a metric point's `attributes` the attribution entries named in `allowed`: every distinct
    value makes a time series, so the others (user and session ids by default) stay on spans."""
    for name, value in attribution.items():
        if name in allowed:
            attributes[name] = value
