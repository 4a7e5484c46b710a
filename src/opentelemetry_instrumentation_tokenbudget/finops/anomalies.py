"""Intervals whose spend left the expected band, and the groups that drove the excess.

The expected spend of a bucket is the median of the same bucket in the previous weeks (same hour of
the week) when there are at least `MIN_WEEKS` of them, else the median of the same hour on the
previous days: a median, so that past spikes do not raise the baseline, and the same hour, so that
the daily (and weekly) rhythm of spend is not mistaken for anomalies. The residual of a bucket is
relative, (observed - expected) / expected, because spend's noise grows with its level; the band is
the median of the residuals of the trailing `SCALE_BUCKETS` buckets plus `sensitivity` times their
scaled median absolute deviation (MAD x 1.4826 estimates a standard deviation without being moved by
the outliers it is meant to find). Only excess spend is reported: a quiet hour costs nothing.

Consecutive anomalous buckets form one anomaly. Its drivers are found by doing the same for each
value of the driver keys (model, feature, user...): observed minus expected spend in the anomaly's
buckets, the largest excesses first, until they explain the group's excess.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from .series import Series

MIN_WEEKS: Final = 2
MAX_LAGS: Final = 4
DAILY_LAGS: Final = 7
SCALE_BUCKETS: Final = 168
MAD_TO_SIGMA: Final = 1.4826
SENSITIVITY: Final[Mapping[str, float]] = {"low": 7.0, "medium": 5.0, "high": 3.5}
DEFAULT_SENSITIVITY: Final = SENSITIVITY["medium"]
_MIN_RESIDUALS: Final = 24
_EXPLAINED: Final = 0.9
_MAX_DRIVERS: Final = 3


@dataclass(frozen=True, slots=True)
class Band:
    expected: float
    threshold: float
    """Spend above this is anomalous."""
    score: float
    """(residual - median residual) / scale, in robust standard deviations."""


@dataclass(frozen=True, slots=True)
class Driver:
    key: Mapping[str, str]
    excess: float


@dataclass(frozen=True, slots=True)
class Anomaly:
    start: int
    end: int
    key: Mapping[str, str]
    observed: float
    expected: float
    score: float
    """The highest score among the anomaly's buckets."""
    drivers: tuple[Driver, ...] = ()


def lags_for(step: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(weekly lags, daily lags) in buckets for a series of `step` seconds."""
    per_day = max(86400 // step, 1)
    return (
        tuple(7 * per_day * k for k in range(1, MAX_LAGS + 1)),
        tuple(per_day * k for k in range(1, DAILY_LAGS + 1)),
    )


def expected_spend(values: Sequence[float], index: int, step: int) -> float | None:
    """The median of the same bucket in past weeks (or days); None without enough past."""
    weekly, daily = lags_for(step)
    past = [values[index - lag] for lag in weekly if index - lag >= 0]
    if len(past) < MIN_WEEKS:
        past = [values[index - lag] for lag in daily if index - lag >= 0]
        if len(past) < 2:
            return None
    return statistics.median(past)


def _residual(observed: float, expected: float, floor: float) -> float:
    return (observed - expected) / max(expected, floor)


def bands(series: Series, first: int, sensitivity: float = DEFAULT_SENSITIVITY) -> dict[int, Band]:
    """The band of each bucket from `first` on that has enough past to have one."""
    values = series.values
    positive = [value for value in values if value > 0]
    # Relative residuals of near-empty buckets would be huge; the floor is a small share of typical spend.
    floor = statistics.median(positive) * 0.05 if positive else 1e-9
    expected: dict[int, float] = {}
    residuals: dict[int, float] = {}
    start = max(0, first - SCALE_BUCKETS)
    for index in range(start, len(values)):
        guess = expected_spend(values, index, series.step)
        if guess is not None:
            expected[index] = guess
            residuals[index] = _residual(values[index], guess, floor)
    result: dict[int, Band] = {}
    for index in range(first, len(values)):
        if index not in expected:
            continue
        trailing = [residuals[i] for i in range(index - SCALE_BUCKETS, index) if i in residuals]
        if len(trailing) < _MIN_RESIDUALS:
            continue
        center = statistics.median(trailing)
        scale = MAD_TO_SIGMA * statistics.median(abs(r - center) for r in trailing)
        scale = max(scale, 0.02)  # a flat history must not turn every cent into an anomaly
        base = max(expected[index], floor)
        score = (residuals[index] - center) / scale
        threshold = expected[index] + (center + sensitivity * scale) * base
        result[index] = Band(expected[index], threshold, score)
    return result


def find_anomalies(
    series: Series,
    key: Mapping[str, str],
    first: int,
    *,
    sensitivity: float = DEFAULT_SENSITIVITY,
    min_excess: float = 0.0,
    drivers: Mapping[tuple[tuple[str, str], ...], Series] | None = None,
) -> list[Anomaly]:
    """The anomalies of one group's `series` from bucket `first` on.

    `drivers` holds the series of the group's parts (same start, step and length), keyed by the
    part's key as (name, value) pairs; `min_excess` (USD) ignores excesses too small to matter.
    """
    found = bands(series, first, sensitivity)
    flagged = [
        index
        for index, band in sorted(found.items())
        if series.values[index] > band.threshold and series.values[index] - band.expected > min_excess
    ]
    anomalies: list[Anomaly] = []
    for run in _runs(flagged):
        observed = sum(series.values[index] for index in run)
        expected = sum(found[index].expected for index in run)
        anomalies.append(
            Anomaly(
                start=series.time_of(run[0]),
                end=series.time_of(run[-1] + 1),
                key=dict(key),
                observed=observed,
                expected=expected,
                score=max(found[index].score for index in run),
                drivers=_drivers(run, observed - expected, drivers or {}, series.step),
            )
        )
    return anomalies


def _runs(indices: Sequence[int]) -> list[list[int]]:
    runs: list[list[int]] = []
    for index in indices:
        if runs and runs[-1][-1] == index - 1:
            runs[-1].append(index)
        else:
            runs.append([index])
    return runs


def _drivers(
    run: Sequence[int],
    excess: float,
    parts: Mapping[tuple[tuple[str, str], ...], Series],
    step: int,
) -> tuple[Driver, ...]:
    excesses: list[tuple[float, tuple[tuple[str, str], ...]]] = []
    for part_key, part in parts.items():
        part_excess = 0.0
        for index in run:
            guess = expected_spend(part.values, index, step)
            part_excess += part.values[index] - (guess or 0.0)
        if part_excess > 0:
            excesses.append((part_excess, part_key))
    excesses.sort(key=lambda item: -item[0])
    chosen: list[Driver] = []
    explained = 0.0
    for part_excess, part_key in excesses[:_MAX_DRIVERS]:
        chosen.append(Driver(dict(part_key), part_excess))
        explained += part_excess
        if explained >= _EXPLAINED * excess:
            break
    return tuple(chosen)


def score_against_truth(
    anomalies: Sequence[Anomaly], events: Sequence[tuple[int, int]]
) -> tuple[float, float]:
    """(precision, recall) of `anomalies` against injected `events`, each (start, end) in epoch seconds:
    an anomaly is right when it overlaps an event, an event is found when an anomaly overlaps it."""

    def overlaps(anomaly: Anomaly, event: tuple[int, int]) -> bool:
        return anomaly.start < event[1] and event[0] < anomaly.end

    right = sum(1 for anomaly in anomalies if any(overlaps(anomaly, event) for event in events))
    found = sum(1 for event in events if any(overlaps(anomaly, event) for anomaly in anomalies))
    precision = right / len(anomalies) if anomalies else 1.0
    recall = found / len(events) if events else 1.0
    return precision, recall
