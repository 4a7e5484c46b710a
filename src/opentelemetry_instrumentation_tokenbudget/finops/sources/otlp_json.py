"""The OpenTelemetry Collector's `file` exporter output: OTLP JSON lines, one
`ExportTraceServiceRequest` per line. Each span that carries GenAI token usage is one call.

A GenAI span inside another GenAI span with usage is the same call seen twice (the Anthropic SDK's
own span inside ours): only the outer one counts. A line that is not such a request is an error
naming the file and line, or, with `skip_bad`, skipped and counted.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from ...semconv import TOKENBUDGET_OUTCOME_EVENT, TOKENBUDGET_OUTCOME_SCORE, TOKENBUDGET_OUTCOME_SUCCESS
from ..outcomes import OutcomeRecord
from ..spend_record import SpendRecord

_OUTCOME: Final = TOKENBUDGET_OUTCOME_EVENT

_TOKENS: Final = (
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
)
_CACHE_WRITE: Final = ("gen_ai.usage.cache_creation.input_tokens", "gen_ai.usage.cache_write.input_tokens")
# Attributes that describe the call rather than who it is charged to.
_NOT_ATTRIBUTION: Final = (
    "gen_ai.",
    "server.",
    "error.",
    "cloud.",
    "tokenbudget.cost.",
    "tokenbudget.price.",
    "tokenbudget.prompt.",
)


class SourceError(ValueError):
    """A source that cannot be read; the message names it."""


@dataclass
class ReadStats:
    spans: int = 0
    calls: int = 0
    skipped_lines: int = 0


def _value(value: Mapping[str, Any]) -> Any:
    for kind in ("stringValue", "boolValue", "doubleValue"):
        if kind in value:
            return value[kind]
    if "intValue" in value:
        return int(value["intValue"])
    return None


def _attributes(items: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    return {item["key"]: _value(item.get("value", {})) for item in items}


def _spans(request: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for resource_spans in request["resourceSpans"]:
        for scope_spans in resource_spans.get("scopeSpans", ()):
            yield from scope_spans.get("spans", ())


def read(
    paths: Iterable[Path],
    *,
    skip_bad: bool = False,
    stats: ReadStats | None = None,
    outcomes: list[OutcomeRecord] | None = None,
) -> list[SpendRecord]:
    """The calls in the files, oldest first; the `tokenbudget.outcome` events go to `outcomes`."""
    stats = stats if stats is not None else ReadStats()
    usage_spans: dict[str, tuple[str | None, dict[str, Any], float]] = {}
    for path in paths:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as error:
            raise SourceError(f"{path}: cannot read it ({error})") from None
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                spans = list(_spans(json.loads(line)))
                for span in spans:
                    stats.spans += 1
                    if outcomes is not None:
                        outcomes.extend(_outcomes(span))
                    attributes = _attributes(span.get("attributes", ()))
                    if not any(name in attributes for name in _TOKENS):
                        continue
                    start = int(span["startTimeUnixNano"]) / 1e9
                    usage_spans[span["spanId"]] = (span.get("parentSpanId") or None, attributes, start)
            except (ValueError, KeyError, TypeError, AttributeError):
                if not skip_bad:
                    raise SourceError(
                        f"{path}:{number}: not an OTLP JSON trace request (ExportTraceServiceRequest);"
                        " --skip-bad skips such lines"
                    ) from None
                stats.skipped_lines += 1
    records = [
        _record(attributes, start)
        for parent, attributes, start in usage_spans.values()
        if parent is None or parent not in usage_spans
    ]
    stats.calls = len(records)
    records.sort(key=lambda record: record.start)
    return records


def _outcomes(span: Mapping[str, Any]) -> Iterator[OutcomeRecord]:
    for event in span.get("events", ()):
        if event.get("name") != _OUTCOME:
            continue
        attributes = _attributes(event.get("attributes", ()))
        success = attributes.pop(TOKENBUDGET_OUTCOME_SUCCESS, None)
        score = attributes.pop(TOKENBUDGET_OUTCOME_SCORE, None)
        yield OutcomeRecord(
            at=int(event["timeUnixNano"]) / 1e9,
            success=success if isinstance(success, bool) else None,
            score=float(score) if isinstance(score, (int, float)) and not isinstance(score, bool) else None,
            attributes={name: str(value) for name, value in attributes.items() if value is not None},
        )


def _int(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def _record(attributes: Mapping[str, Any], start: float) -> SpendRecord:
    cost = attributes.get("gen_ai.usage.cost.amount")
    max_tokens = attributes.get("gen_ai.request.max_tokens")
    return SpendRecord(
        start=start,
        provider=str(attributes.get("gen_ai.provider.name") or attributes.get("gen_ai.system") or ""),
        request_model=str(attributes.get("gen_ai.request.model", "")),
        operation=str(attributes.get("gen_ai.operation.name", "chat")),
        response_model=attributes.get("gen_ai.response.model"),
        input_tokens=_int(attributes.get("gen_ai.usage.input_tokens")),
        output_tokens=_int(attributes.get("gen_ai.usage.output_tokens")),
        cache_read_tokens=_int(attributes.get("gen_ai.usage.cache_read.input_tokens")),
        cache_write_tokens=max(_int(attributes.get(name)) for name in _CACHE_WRITE),
        # The span holds a double: its shortest repr is the decimal the instrumentation meant.
        cost_usd=Decimal(repr(float(cost))) if isinstance(cost, (int, float)) else None,
        estimated=bool(attributes.get("tokenbudget.cost.estimated", False)),
        max_tokens=max_tokens if isinstance(max_tokens, int) else None,
        prompt_prefix_hash=attributes.get("tokenbudget.prompt.prefix_hash"),
        attributes={
            name: str(value)
            for name, value in attributes.items()
            if not name.startswith(_NOT_ATTRIBUTION) and value is not None
        },
    )
