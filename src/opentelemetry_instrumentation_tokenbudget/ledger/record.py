"""One ledger row per call, made from the call's ended span (every figure the call put on it)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from ..budgets.store import picodollars_to_usd, usd_to_picodollars

# Attributes that describe the call rather than who it is charged to.
_NOT_ATTRIBUTION: Final = (
    "gen_ai.",
    "server.",
    "error.",
    "cloud.",
    "tokenbudget.cost",
    "tokenbudget.price.",
    "tokenbudget.prompt.",
    "tokenbudget.usage.",
)
_COST_PARTS: Final = "tokenbudget.cost."

COLUMNS: Final = (
    "start_unix_nano",
    "duration_s",
    "provider",
    "operation",
    "request_model",
    "response_model",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_usd",
    "cost_parts",
    "price_source",
    "price_version",
    "price_inferred",
    "estimated",
    "attribution",
    "trace_id",
    "span_id",
    "error_type",
    "refused",
    "cost_picodollars",
)
SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS calls (
    start_unix_nano INTEGER NOT NULL,
    duration_s REAL NOT NULL,
    provider TEXT NOT NULL,
    operation TEXT NOT NULL,
    request_model TEXT NOT NULL,
    response_model TEXT,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cache_read_tokens INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    reasoning_tokens INTEGER NOT NULL,
    cost_usd TEXT,
    cost_parts TEXT NOT NULL,
    price_source TEXT,
    price_version TEXT,
    price_inferred INTEGER NOT NULL,
    estimated INTEGER NOT NULL,
    attribution TEXT NOT NULL,
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    error_type TEXT,
    refused INTEGER NOT NULL,
    cost_picodollars INTEGER
);
CREATE INDEX IF NOT EXISTS calls_start ON calls (start_unix_nano);
CREATE TABLE IF NOT EXISTS tokenbudget_ledger (version INTEGER NOT NULL);
"""
SCHEMA_VERSION: Final = 2
"""1: no `cost_picodollars` (a writer of version 2 adds it on open and fills it in)."""
# SQLite's INTEGER (and its SUM) is signed 64-bit.
_MAX_INTEGER: Final = 2**63 - 1
# The column names are the constants above; values are bound as parameters.
INSERT: Final = f"INSERT INTO calls ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)})"  # noqa: S608
Row = tuple[Any, ...]


def _int(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def picodollars(cost_usd: str | None) -> int | None:
    """The ledger's text cost as whole picodollars (the budgets' unit), so that SQLite can sum it
    exactly; None when it is not a whole number of them (the readers then sum the text exactly) or
    there is no cost."""
    if cost_usd is None:
        return None
    try:
        amount = Decimal(cost_usd)
        whole = usd_to_picodollars(amount)
    except (InvalidOperation, ValueError, OverflowError):
        return None
    if abs(whole) > _MAX_INTEGER or picodollars_to_usd(whole) != amount:
        return None
    return whole


def row_from_span(span: Any) -> Row | None:
    """None for a span that is no call of ours (no operation name), or that records nothing (a no-op
    tracer's). Read by duck typing: the OpenTelemetry SDK is the application's choice, not a dependency."""
    attributes: Mapping[str, Any] = getattr(span, "attributes", None) or {}
    operation = attributes.get("gen_ai.operation.name")
    if operation is None or getattr(span, "start_time", None) is None:
        return None
    cost = attributes.get("gen_ai.usage.cost.amount")
    # The span holds a double: its shortest repr is the decimal the instrumentation meant.
    cost_usd = repr(float(cost)) if isinstance(cost, (int, float)) and not isinstance(cost, bool) else None
    end = span.end_time or span.start_time
    context = span.context
    return (
        span.start_time,
        (end - span.start_time) / 1e9,
        str(attributes.get("gen_ai.provider.name", "")),
        str(operation),
        str(attributes.get("gen_ai.request.model", "")),
        _text(attributes.get("gen_ai.response.model")),
        _int(attributes.get("gen_ai.usage.input_tokens")),
        _int(attributes.get("gen_ai.usage.output_tokens")),
        _int(attributes.get("gen_ai.usage.cache_read.input_tokens")),
        _int(attributes.get("gen_ai.usage.cache_creation.input_tokens")),
        _int(attributes.get("gen_ai.usage.reasoning.output_tokens")),
        cost_usd,
        json.dumps(
            {
                name[len(_COST_PARTS) :]: value
                for name, value in attributes.items()
                if name.startswith(_COST_PARTS) and isinstance(value, float)
            },
            sort_keys=True,
        ),
        _text(attributes.get("tokenbudget.price.source")),
        _text(attributes.get("tokenbudget.price.version")),
        int(bool(attributes.get("tokenbudget.price.inferred", False))),
        int(bool(attributes.get("tokenbudget.cost.estimated", False))),
        json.dumps(
            {
                name: str(value)
                for name, value in attributes.items()
                if not name.startswith(_NOT_ATTRIBUTION) and value is not None
            },
            sort_keys=True,
        ),
        f"{context.trace_id:032x}" if context is not None else "",
        f"{context.span_id:016x}" if context is not None else "",
        _text(attributes.get("error.type")),
        0,
        picodollars(cost_usd),
    )
