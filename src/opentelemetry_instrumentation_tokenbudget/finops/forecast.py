"""Where a window's spend is heading: projected end-of-window spend, an interval, and when a limit falls.

Three explainable methods, each a few lines, each judged on the source's own history:

- ``burn-rate``: the window's average spend per bucket so far, continued to the window's end. Needs
  no history; blind to a daily pattern (a morning rush projects as a day of rush).
- ``seasonal-naive``: the rest of the window spends what the same buckets spent one season ago
  (yesterday's hours for a day window, last week's days for a month window).
- ``holt-winters``: additive Holt-Winters exponential smoothing (level, damped trend, season),
  smoothing constants picked from a small grid by one-step-ahead squared error.

`backtest` replays the past: for every complete window in the history and for cutoffs at a quarter,
half and three quarters of it, each method forecasts the window's total from the data before the
cutoff, and the absolute percentage error against the real total is averaged (MAPE). `forecast`
uses the method with the lowest MAPE (burn rate when there is no complete window to judge by), and
takes its interval from the same replay: the spread of (actual rest of window) / (forecast rest) at
the cutoff nearest to now, applied to the forecast rest. Without a past window, the interval comes
from the bucket-to-bucket variation seen so far in this window.

Why no forecasting library: statsforecast or statsmodels would bring numpy, pandas and scipy (or
numba) for three methods that fit in this file; the methods here are the textbook ones, their
output is easy to check by hand, and a backtest on the user's own data says how far to trust them.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Final, Literal, TypeAlias

from ..budgets.windows import CalendarWindow, WindowSpan
from .series import Series

WindowName: TypeAlias = Literal["day", "week", "month"]
WINDOWS: Final[tuple[WindowName, ...]] = ("day", "week", "month")

BURN_RATE: Final = "burn-rate"
SEASONAL_NAIVE: Final = "seasonal-naive"
HOLT_WINTERS: Final = "holt-winters"
METHODS: Final = (BURN_RATE, SEASONAL_NAIVE, HOLT_WINTERS)

CUTOFFS: Final = (0.25, 0.5, 0.75)
"""Where in each past window the backtest stands when it forecasts the window's total."""
INTERVAL: Final = (0.1, 0.9)
"""The interval's quantiles: an 80% interval."""
_MIN_RATIOS: Final = 4
_Z_80: Final = 1.2816


@dataclass(frozen=True, slots=True)
class Cadence:
    """How a window is cut into buckets, and the seasons a bucket repeats with, longest first: hourly
    spend repeats weekly (weekends) and daily; the longest season the history can fit is used."""

    step: int
    seasons: tuple[int, ...]

    def season_for(self, history_length: int, seasons_needed: int = 2) -> int:
        for season in self.seasons:
            if history_length >= seasons_needed * season:
                return season
        return self.seasons[-1]


CADENCES: Final[Mapping[WindowName, Cadence]] = {
    "day": Cadence(step=3600, seasons=(168, 24)),
    "week": Cadence(step=3600, seasons=(168, 24)),
    "month": Cadence(step=86400, seasons=(7,)),
}
MAX_BACKTEST_WINDOWS: Final = 28
"""The most recent past windows replayed; older ones say less about the next."""


def window_at(window: WindowName, instant: float) -> WindowSpan:
    return CalendarWindow(window, timezone.utc).span_at(instant)


# ---- the methods: (history up to now, index of the window's first bucket, horizon) -> buckets ahead


Method: TypeAlias = Callable[[Sequence[float], int, int, int], list[float]]
"""`(history, window_start_index, horizon, season)` -> `horizon` predicted buckets (USD each)."""


class NotEnoughHistory(ValueError):
    """The method needs more past buckets than there are."""


def burn_rate(history: Sequence[float], window_start: int, horizon: int, season: int) -> list[float]:
    within = history[window_start:]
    if within:
        rate = sum(within) / len(within)
    elif history:
        # The window has just begun: the rate of the buckets just before it.
        recent = history[-season:]
        rate = sum(recent) / len(recent)
    else:
        raise NotEnoughHistory("no spend recorded yet")
    return [rate] * horizon


def seasonal_naive(history: Sequence[float], window_start: int, horizon: int, season: int) -> list[float]:
    season = _season_within(history, season, 1)
    if len(history) < season:
        raise NotEnoughHistory(f"needs one season ({season} buckets) of history")
    last = history[-season:]
    return [last[index % season] for index in range(horizon)]


@dataclass(frozen=True, slots=True)
class HoltWintersFit:
    alpha: float
    beta: float
    gamma: float
    phi: float
    level: float
    trend: float
    seasonal: tuple[float, ...]
    """The season's components, the first being that of the bucket after the history's last."""
    sse: float

    def predict(self, horizon: int) -> list[float]:
        season = len(self.seasonal)
        damped = 0.0
        out: list[float] = []
        for h in range(1, horizon + 1):
            damped += self.phi**h
            value = self.level + damped * self.trend + self.seasonal[(h - 1) % season]
            out.append(max(value, 0.0))  # spend is never negative
        return out


_GRID: Final = tuple(
    (alpha, beta, gamma) for alpha in (0.05, 0.2, 0.5) for beta in (0.0, 0.05) for gamma in (0.1, 0.4)
)
_PHI: Final = 0.98
_FIT_BUCKETS: Final = 4 * 168


def fit_holt_winters(history: Sequence[float], season: int) -> HoltWintersFit:
    """Additive Holt-Winters on the last weeks of `history` (at least two seasons), best of a small grid."""
    if len(history) < 2 * season:
        raise NotEnoughHistory(f"needs two seasons ({2 * season} buckets) of history")
    values = list(history[-max(_FIT_BUCKETS, 2 * season) :])
    best: HoltWintersFit | None = None
    for constants in _GRID:
        fit = _smooth(values, season, constants)
        if best is None or fit.sse < best.sse:
            best = fit
    assert best is not None  # the grid is not empty
    return best


def _smooth(values: Sequence[float], season: int, constants: tuple[float, float, float]) -> HoltWintersFit:
    alpha, beta, gamma = constants
    phi = _PHI
    first = sum(values[:season]) / season
    second = sum(values[season : 2 * season]) / season
    level = first
    trend = (second - first) / season
    seasonal = [value - first for value in values[:season]]
    sse = 0.0
    for t in range(season, len(values)):
        value = values[t]
        component = seasonal[t % season]
        predicted = level + phi * trend + component
        sse += (value - predicted) ** 2
        previous = level
        level = alpha * (value - component) + (1 - alpha) * (previous + phi * trend)
        trend = beta * (level - previous) + (1 - beta) * phi * trend
        seasonal[t % season] = gamma * (value - level) + (1 - gamma) * component
    after = len(values)
    ordered = tuple(seasonal[(after + offset) % season] for offset in range(season))
    return HoltWintersFit(alpha, beta, gamma, phi, level, trend, ordered, sse)


def holt_winters(history: Sequence[float], window_start: int, horizon: int, season: int) -> list[float]:
    return fit_holt_winters(history, _season_within(history, season, 2)).predict(horizon)


def _season_within(history: Sequence[float], season: int, needed: int) -> int:
    """`season`, or its daily sub-season (168 -> 24) when the history is too short for it."""
    if len(history) < needed * season and season % 7 == 0 and season > 7:
        return season // 7
    return season


METHOD_FUNCTIONS: Final[Mapping[str, Method]] = {
    BURN_RATE: burn_rate,
    SEASONAL_NAIVE: seasonal_naive,
    HOLT_WINTERS: holt_winters,
}


# ---- the backtest -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BacktestSample:
    window_start: int
    cutoff: float
    actual: float
    spent: float
    """Spend before the cutoff."""
    predicted: float

    @property
    def ape(self) -> float:
        return abs(self.predicted - self.actual) / self.actual

    @property
    def rest_ratio(self) -> float | None:
        """(actual rest of window) / (forecast rest), None when the forecast rest is 0."""
        rest = self.predicted - self.spent
        return (self.actual - self.spent) / rest if rest > 0 else None


@dataclass(frozen=True, slots=True)
class Backtest:
    window: WindowName
    windows: int
    """Complete past windows replayed."""
    samples: Mapping[str, tuple[BacktestSample, ...]]
    """Per method; a method missing here lacked the history it needs."""

    def mape(self, method: str, cutoff: float | None = None) -> float | None:
        chosen = [s for s in self.samples.get(method, ()) if cutoff is None or s.cutoff == cutoff]
        return statistics.fmean(s.ape for s in chosen) if chosen else None

    def best(self) -> str:
        scored = [(mape, method) for method in METHODS if (mape := self.mape(method)) is not None]
        return min(scored)[1] if scored else BURN_RATE

    def as_dict(self) -> dict[str, object]:
        return {
            "windows": self.windows,
            "cutoffs": list(CUTOFFS),
            "mape": {
                method: {
                    "all": _rounded(self.mape(method)),
                    **{f"{cutoff:g}": _rounded(self.mape(method, cutoff)) for cutoff in CUTOFFS},
                }
                for method in METHODS
                if method in self.samples
            },
        }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def complete_windows(series: Series, window: WindowName, now: float) -> list[WindowSpan]:
    """The calendar windows wholly inside the series and ended by `now`."""
    spans: list[WindowSpan] = []
    instant = float(series.start)
    while instant < min(series.end, now):
        span = window_at(window, instant)
        if span.start >= series.start and span.end is not None and span.end <= min(series.end, now):
            spans.append(span)
        instant = float(span.end if span.end is not None else series.end)
    return spans


def backtest(series: Series, window: WindowName, now: float, methods: Sequence[str] = METHODS) -> Backtest:
    season = CADENCES[window].seasons[0]
    spans = complete_windows(series, window, now)[-MAX_BACKTEST_WINDOWS:]
    samples: dict[str, list[BacktestSample]] = {}
    for span in spans:
        first = series.index_of(span.start)
        last = series.index_of(span.end or span.start)  # exclusive
        actual = sum(series.values[first:last])
        if actual <= 0:
            continue
        for cutoff in CUTOFFS:
            at = first + round((last - first) * cutoff)
            history = series.values[:at]
            spent = sum(series.values[first:at])
            for method in methods:
                try:
                    ahead = METHOD_FUNCTIONS[method](history, first, last - at, season)
                except NotEnoughHistory:
                    continue
                samples.setdefault(method, []).append(
                    BacktestSample(span.start, cutoff, actual, spent, spent + sum(ahead))
                )
    return Backtest(window, len(spans), {method: tuple(rows) for method, rows in samples.items()})


# ---- the forecast -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Forecast:
    window: WindowSpan
    method: str
    spent: float
    forecast: float
    low: float
    high: float
    limit: float | None = None
    exhausted_at: datetime | None = None
    path: tuple[float, ...] = field(default=())
    """The predicted spend of each bucket from now to the window's end (for plots)."""


def forecast(
    series: Series,
    window: WindowName,
    now: float,
    *,
    method: str | None = None,
    limit: float | None = None,
    judged_by: Backtest | None = None,
) -> Forecast:
    """The current window's end-of-window spend from `series` (which must reach `now`).

    `method` None picks the backtest's best; `judged_by` lends a backtest already made. The bucket that
    holds `now` is in part seen: its observed spend counts, and the method's figure for it is
    prorated to the part still to come.
    """
    season = CADENCES[window].seasons[0]
    span = window_at(window, now)
    first = max(series.index_of(span.start), 0)
    current = min(series.index_of(now), len(series.values))
    last = series.index_of(span.end or span.start)
    history = series.values[:current]
    partial = series.values[current] if current < len(series.values) else 0.0
    done = (now - series.time_of(current)) / series.step
    spent = sum(series.values[first:current]) + partial
    trial = judged_by or backtest(series, window, now)
    chosen = method or trial.best()
    horizon = max(last - current, 0)
    try:
        path = METHOD_FUNCTIONS[chosen](history, first, horizon, season)
    except NotEnoughHistory:
        chosen = BURN_RATE
    if chosen == BURN_RATE:
        # The window's spend over the time it has run, the bucket in progress included: the buckets
        # seen whole would leave out the spend of this very moment.
        ran = (now - max(span.start, series.start)) / series.step
        path = [spent / ran if ran > 0 else 0.0] * horizon
    if path:
        path[0] *= 1 - done
    rest = sum(path)
    elapsed = (now - span.start) / max((span.end or now) - span.start, 1)
    low, high = _interval(
        trial.samples.get(chosen, ()),
        elapsed,
        spent,
        rest,
        _spread(series.values[first : current + 1], horizon),
    )
    segments: list[tuple[float, float, float]] = [
        (series.time_of(i), series.time_of(i + 1), series.values[i]) for i in range(first, current)
    ]
    segments.append((series.time_of(current), now, partial))
    if path:
        segments.append((now, series.time_of(current + 1), path[0]))
        segments.extend(
            (series.time_of(current + k), series.time_of(current + k + 1), v) for k, v in enumerate(path) if k
        )
    exhausted = _exhausted_at(segments, limit)
    return Forecast(span, chosen, spent, spent + rest, low, high, limit, exhausted, tuple(path))


def _spread(seen: Sequence[float], horizon: int) -> float | None:
    """80% half-width of the rest of the window from this window's buckets, as if independent."""
    return statistics.stdev(seen) * math.sqrt(horizon) * _Z_80 if len(seen) >= 2 else None


def _interval(
    samples: Sequence[BacktestSample], elapsed: float, spent: float, rest: float, spread: float | None
) -> tuple[float, float]:
    nearest = min(CUTOFFS, key=lambda cutoff: abs(cutoff - elapsed))
    ratios = [r for s in samples if s.cutoff == nearest and (r := s.rest_ratio) is not None]
    if len(ratios) < _MIN_RATIOS:
        ratios = [r for s in samples if (r := s.rest_ratio) is not None]
    if len(ratios) >= _MIN_RATIOS:
        return spent + rest * _quantile(ratios, INTERVAL[0]), spent + rest * _quantile(ratios, INTERVAL[1])
    # No past window to learn the error from: the spread of this window's buckets.
    if spread is not None:
        return max(spent, spent + rest - spread), spent + rest + spread
    return spent, spent + 2 * rest


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


def _exhausted_at(segments: Sequence[tuple[float, float, float]], limit: float | None) -> datetime | None:
    """When cumulative spend reaches `limit`, walking (start, end, amount) segments, the seen ones and
    then the forecast ones, spend spread evenly within each."""
    if limit is None:
        return None
    cumulative = 0.0
    for start, end, amount in segments:
        if amount > 0 and cumulative + amount >= limit:
            at = start + (end - start) * (limit - cumulative) / amount
            return datetime.fromtimestamp(at, timezone.utc)
        cumulative += amount
    return None
