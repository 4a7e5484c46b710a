"""One ledger row per call, made from the call's ended span (every figure the call put on it)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from opentelemetry.attributes import BoundedAttributes

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
_COST_PARTS_LENGTH: Final = len(_COST_PARTS)

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
_PICODOLLAR_EXPONENT: Final = 12
# The C encoder, keys sorted so that equal attribution is equal text (the readers group by it).
_dumps: Final = json.JSONEncoder(sort_keys=True).encode
# The column names are the constants above; values are bound as parameters.
INSERT: Final = f"INSERT INTO calls ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)})"  # noqa: S608
Row = tuple[Any, ...]


# What each attribute name is to the ledger: True for attribution, a part of the cost's name in
# `cost_parts`, False for the rest; remembered for the names seen (a few dozen in practice, bounded all
# the same), so that a row costs a dict lookup per attribute rather than prefix tests.
_KINDS: Final[dict[str, str | bool]] = {}
_MAX_KINDS: Final = 4096


# A call's attribution as the ledger's text, for the attribution sets seen last (most calls repeat one:
# the same feature, tenant, user); emptied when full, so a stream of distinct ids costs no more memory.
_ATTRIBUTION_TEXTS: Final[dict[tuple[tuple[str, str], ...], str]] = {}
_MAX_ATTRIBUTION_TEXTS: Final = 4096


def _attribution_text(pairs: tuple[tuple[str, str], ...]) -> str:
    text = _ATTRIBUTION_TEXTS.get(pairs)
    if text is None:
        text = _dumps(dict(pairs))
        if len(_ATTRIBUTION_TEXTS) >= _MAX_ATTRIBUTION_TEXTS:
            _ATTRIBUTION_TEXTS.clear()
        _ATTRIBUTION_TEXTS[pairs] = text
    return text


def _kind_of(name: str) -> str | bool:
    kind = _KINDS.get(name)
    return _kind(name) if kind is None else kind


def _kind(name: str) -> str | bool:
    kind: str | bool
    if not name.startswith(_NOT_ATTRIBUTION):
        kind = True
    elif name.startswith(_COST_PARTS):
        kind = name[_COST_PARTS_LENGTH:]
    else:
        kind = False
    if len(_KINDS) < _MAX_KINDS:
        _KINDS[name] = kind
    return kind


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
        # scaleb moves the exponent: exact, unlike a multiplication rounded to the context's precision.
        scaled = Decimal(cost_usd).scaleb(_PICODOLLAR_EXPONENT)
        whole = int(scaled)
    except (InvalidOperation, ValueError, OverflowError):
        return None
    if whole != scaled or abs(whole) > _MAX_INTEGER:
        return None
    return whole


def _plain_attributes(span: Any) -> Mapping[str, Any]:
    """The span's attributes as a plain dict. The OpenTelemetry SDK hands out a read-only view of its
    `BoundedAttributes`, a mapping whose every read is a Python-level call; the dict behind it, no
    longer written once the span has ended, is taken as it is when it is there."""
    stored = getattr(span, "_attributes", None)
    if type(stored) is BoundedAttributes and type(stored._dict) is dict:
        return stored._dict
    attributes = getattr(span, "attributes", None)
    return dict(attributes) if attributes else {}


# What a row needs from an ended span: start and end (ns), trace and span id (None without a context),
# and its attributes.
SpanFacts = tuple[Any, Any, Any, Any, Mapping[str, Any]]


def span_facts(span: Any) -> SpanFacts | None:
    """Taken when the span ends, on the caller's thread (a few attribute reads), and queued instead of
    the span: a queued span keeps a dozen objects alive until the writer's next batch, and the garbage
    collections that the caller's own allocations set off meanwhile walk every one of them (and promote
    them, bringing the next full collection closer). None for a span that records nothing (a no-op
    tracer's: no start time)."""
    start = getattr(span, "start_time", None)
    if start is None:
        return None
    context = getattr(span, "context", None)
    trace_id, span_id = (None, None) if context is None else (context.trace_id, context.span_id)
    return (start, getattr(span, "end_time", None), trace_id, span_id, _plain_attributes(span))


def row_from_span(span: Any) -> Row | None:
    """None for a span that is no call of ours (no operation name), or that records nothing (a no-op
    tracer's). Read by duck typing: the OpenTelemetry SDK is the application's choice, not a dependency."""
    facts = span_facts(span)
    return None if facts is None else row_from_facts(facts)


def row_from_facts(facts: SpanFacts) -> Row | None:
    """`row_from_span`, from the facts taken when the span ended."""
    start, end, trace_id, span_id, attributes = facts
    operation = attributes.get("gen_ai.operation.name")
    if operation is None:
        return None
    cost = attributes.get("gen_ai.usage.cost.amount")
    # The span holds a double: its shortest repr is the decimal the instrumentation meant.
    cost_usd = repr(float(cost)) if isinstance(cost, (int, float)) and not isinstance(cost, bool) else None
    cost_parts: dict[str, float] = {}
    attribution: list[tuple[str, str]] = []
    for name, value in attributes.items():
        kind = _KINDS.get(name)
        if kind is None:
            kind = _kind(name)
        if kind is True:
            if value is not None:
                attribution.append((name, str(value)))
        elif kind is not False and type(value) is float:
            cost_parts[kind] = value
    attribution_text = _attribution_text(tuple(attribution))
    end = end or start
    return (
        start,
        (end - start) / 1e9,
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
        _dumps(cost_parts),
        _text(attributes.get("tokenbudget.price.source")),
        _text(attributes.get("tokenbudget.price.version")),
        int(bool(attributes.get("tokenbudget.price.inferred", False))),
        int(bool(attributes.get("tokenbudget.cost.estimated", False))),
        attribution_text,
        "" if trace_id is None else f"{trace_id:032x}",
        "" if span_id is None else f"{span_id:016x}",
        _text(attributes.get("error.type")),
        0,
        picodollars(cost_usd),
    )


def refused_row(
    *,
    provider: str,
    operation: str,
    model: str,
    attribution: Mapping[str, Any],
    error_type: str,
    trace_id: int,
    at_unix_nano: int,
) -> Row:
    """The row of a call that a budget refused before sending it: no span was made and nothing was
    spent (a cost of exactly 0, no tokens); `trace_id` is the caller's trace (0 for none)."""
    pairs = tuple(
        (name, str(value))
        for name, value in attribution.items()
        if value is not None and _kind_of(name) is True
    )
    return (
        at_unix_nano,
        0.0,
        provider,
        operation,
        model,
        None,
        0,
        0,
        0,
        0,
        0,
        "0",
        "{}",
        None,
        None,
        0,
        0,
        _attribution_text(pairs),
        f"{trace_id:032x}" if trace_id else "",
        "",
        error_type,
        1,
        0,
    )
