"""Spend as a time series: USD per fixed-length bucket, the shape forecasts and anomaly checks read.

Everything in `finops/` that looks at time works on `Series`, so that the readers (ledger, OTLP
files, Prometheus) and the statistics never meet: a reader yields records, `bucket_spend` turns them
into series, and the methods never see a record.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True, slots=True)
class Series:
    """`values[i]` is the spend (USD) in [start + i*step, start + (i+1)*step), epoch seconds."""

    start: int
    step: int
    values: tuple[float, ...]

    @property
    def end(self) -> int:
        return self.start + self.step * len(self.values)

    def index_of(self, instant: float) -> int:
        """The bucket holding `instant` (may lie outside the series)."""
        return math.floor((instant - self.start) / self.step)

    def time_of(self, index: int) -> int:
        return self.start + index * self.step


@dataclass(frozen=True, slots=True)
class Point(Generic[K]):
    """One priced call as the time-series code sees it: when, how much, and which group it is in."""

    at: float
    cost: Decimal
    group: K


def aligned(instant: float, step: int) -> int:
    return math.floor(instant / step) * step


def bucket_spend(points: Iterable[Point[K]], step: int, start: float, end: float) -> dict[K, Series]:
    """One series per group over [start, end) (aligned down to `step`), zero where nothing was spent.

    Points outside [start, end) are left out: the last bucket may be in part in the future.
    Costs are summed as Decimals and turned to floats once.
    """
    first = aligned(start, step)
    count = max(0, math.ceil((end - first) / step))
    sums: dict[K, list[Decimal]] = {}
    for point in points:
        if not start <= point.at < end:
            continue
        index = math.floor((point.at - first) / step)
        if 0 <= index < count:
            row = sums.get(point.group)
            if row is None:
                row = sums[point.group] = [Decimal(0)] * count
            row[index] += point.cost
    return {group: Series(first, step, tuple(float(value) for value in row)) for group, row in sums.items()}


def zeros(step: int, start: float, end: float) -> Series:
    first = aligned(start, step)
    return Series(first, step, (0.0,) * max(0, math.ceil((end - first) / step)))


def total(series: Iterable[Series], like: Series) -> Series:
    """The bucket-by-bucket sum of series sharing `like`'s start, step and length."""
    values = [0.0] * len(like.values)
    for one in series:
        for index, value in enumerate(one.values):
            values[index] += value
    return Series(like.start, like.step, tuple(values))


def group_points(
    records: Iterable[object],
    at: Callable[[object], float],
    cost: Callable[[object], Decimal | None],
    group: Callable[[object], K],
) -> list[Point[K]]:
    """Points of the priced records (an unpriced call has no cost to forecast; reports count it)."""
    points: list[Point[K]] = []
    for record in records:
        amount = cost(record)
        if amount is not None:
            points.append(Point(at(record), amount, group(record)))
    return points
