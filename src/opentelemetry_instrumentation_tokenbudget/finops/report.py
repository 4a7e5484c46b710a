"""`tokenbudget report`: calls, tokens and cost in total and per group, sorted by cost."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Final

from .spend_record import KEY_ALIASES, SpendRecord

TIME_KEYS: Final = {"day": "%Y-%m-%d", "hour": "%Y-%m-%dT%H:00Z"}
KEY_NAMES: Final = (*KEY_ALIASES, *TIME_KEYS)
FIGURES: Final = (
    "calls",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost_usd",
    "unpriced_calls",
    "estimated_calls",
)


def key_reader(key: str) -> Callable[[SpendRecord], str]:
    """How to read `key` (an alias, `day`, `hour` or an attribute name) from a record."""
    time_format = TIME_KEYS.get(key)
    if time_format is not None:
        return lambda record: datetime.fromtimestamp(record.start, timezone.utc).strftime(time_format)
    return lambda record: record.value_of(key)


class _Totals:
    __slots__ = ("cache_read", "cache_write", "calls", "cost", "estimated", "input", "output", "unpriced")

    def __init__(self) -> None:
        self.calls = self.input = self.output = self.cache_read = self.cache_write = 0
        self.unpriced = self.estimated = 0
        self.cost = Decimal(0)

    def add(self, record: SpendRecord) -> None:
        self.calls += 1
        self.input += record.input_tokens
        self.output += record.output_tokens
        self.cache_read += record.cache_read_tokens
        self.cache_write += record.cache_write_tokens
        if record.cost_usd is None:
            self.unpriced += 1
        else:
            self.cost += record.cost_usd
        if record.estimated:
            self.estimated += 1

    def figures(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "input_tokens": self.input,
            "output_tokens": self.output,
            "cache_read_tokens": self.cache_read,
            "cache_write_tokens": self.cache_write,
            "cost_usd": self.cost,
            "unpriced_calls": self.unpriced,
            "estimated_calls": self.estimated,
        }


def report(
    records: Iterable[SpendRecord],
    *,
    by: Sequence[str],
    top: int | None = None,
    since: str | None = None,
    until: str | None = None,
) -> dict[str, Any]:
    readers = [(key, key_reader(key)) for key in by]
    total = _Totals()
    groups: dict[tuple[str, ...], _Totals] = {}
    for record in records:
        total.add(record)
        if readers:
            group_key = tuple(read(record) for _, read in readers)
            group = groups.get(group_key)
            if group is None:
                group = groups[group_key] = _Totals()
            group.add(record)
    return _document(total, groups, by=by, top=top, since=since, until=until)


@dataclass
class Aggregate:
    """Figures already summed over a group of calls (by a source of aggregates)."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: Decimal = field(default_factory=Decimal)
    unpriced_calls: int = 0
    estimated_calls: int = 0


def report_aggregates(
    groups: Mapping[tuple[str, ...], Aggregate],
    *,
    by: Sequence[str],
    top: int | None = None,
    since: str | None = None,
    until: str | None = None,
) -> dict[str, Any]:
    """The same document from figures already summed per group (a source of aggregates, such as
    Prometheus, or the ledger's own SQL)."""
    total = _Totals()
    totals: dict[tuple[str, ...], _Totals] = {}
    for key, figures in groups.items():
        group = totals[key] = _Totals()
        for into in (group, total):
            into.calls += figures.calls
            into.input += figures.input_tokens
            into.output += figures.output_tokens
            into.cache_read += figures.cache_read_tokens
            into.cache_write += figures.cache_write_tokens
            into.cost += figures.cost_usd
            into.unpriced += figures.unpriced_calls
            into.estimated += figures.estimated_calls
    return _document(total, totals if by else {}, by=by, top=top, since=since, until=until)


def _document(
    total: _Totals,
    groups: Mapping[tuple[str, ...], _Totals],
    *,
    by: Sequence[str],
    top: int | None,
    since: str | None,
    until: str | None,
) -> dict[str, Any]:
    ordered = sorted(groups.items(), key=lambda item: (-item[1].cost, item[0]))
    if top is not None:
        ordered = ordered[:top]
    return {
        "since": since,
        "until": until,
        "by": list(by),
        "total": total.figures(),
        "groups": [
            {"key": dict(zip(by, group_key, strict=True)), **group.figures()} for group_key, group in ordered
        ],
    }
