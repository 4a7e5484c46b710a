"""Cost per success per group (an A/B test's variants): the calls' cost divided by the outcomes
that `record_outcome` marked in the same attribution."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from .spend_record import KEY_ALIASES, UNSET, SpendRecord, key_of


@dataclass(frozen=True, slots=True)
class OutcomeRecord:
    at: float
    success: bool | None = None
    score: float | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)

    def value_of(self, key: str) -> str:
        return self.attributes.get(KEY_ALIASES.get(key, key), UNSET)


@dataclass(slots=True)
class _Group:
    calls: int = 0
    cost: Decimal = Decimal(0)
    unpriced: int = 0
    outcomes: int = 0
    successes: int = 0
    scores: list[float] = field(default_factory=list)


def cost_per_success(
    records: Iterable[SpendRecord], outcomes: Iterable[OutcomeRecord], by: tuple[str, ...]
) -> list[dict[str, object]]:
    groups: dict[tuple[tuple[str, str], ...], _Group] = {}
    for record in records:
        group = groups.setdefault(tuple(key_of(record, by).items()), _Group())
        group.calls += 1
        if record.cost_usd is None:
            group.unpriced += 1
        else:
            group.cost += record.cost_usd
    for outcome in outcomes:
        group = groups.setdefault(tuple((key, outcome.value_of(key)) for key in by), _Group())
        group.outcomes += 1
        group.successes += 1 if outcome.success else 0
        if outcome.score is not None:
            group.scores.append(outcome.score)
    rows: list[dict[str, object]] = [
        {
            "key": dict(key),
            "calls": group.calls,
            "cost_usd": group.cost,
            "unpriced_calls": group.unpriced,
            "outcomes": group.outcomes,
            "successes": group.successes,
            "success_rate": round(group.successes / group.outcomes, 4) if group.outcomes else None,
            # None rather than a division by zero: no success means no cost per success to show.
            "cost_per_success_usd": group.cost / group.successes if group.successes else None,
            "mean_score": round(statistics.fmean(group.scores), 4) if group.scores else None,
        }
        for key, group in groups.items()
    ]
    rows.sort(key=lambda row: str(row["key"]))
    return rows
