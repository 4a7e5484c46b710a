"""Where each budget's group is heading: the projected end-of-window spend, as a gauge, and a warning
once per window and group when the projection passes the limit, before the spend does.

The projection is the window's burn rate: spend so far divided by the share of the window elapsed.
When this process saw the group's previous window through, the projection follows that window's
shape instead (a group that spends mostly in office hours has spent, by 10:00, a known share of its
day): spend so far divided by the share of the previous window's spend that had been reached at the
same point. The shapes are this process's own memory, bounded, and start over with the process.

No projection is made in the first `MIN_ELAPSED` of a window (one call in its first second would
project a fortune), nor for a window without an end. The warning goes through the channels of
thresholds: a WARNING log, a span event on the call that settled, a counter and a callback,
``on_forecast``. It fires once per budget, window and group in this process (processes sharing a
store each warn once), and not once the spend itself has passed the limit: the 100% threshold says so.
"""

from __future__ import annotations

import bisect
import logging
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Final

from opentelemetry.metrics import CallbackOptions, Counter, Meter, Observation
from opentelemetry.trace import Span
from opentelemetry.util.types import AttributeValue

from ..errors import format_usd
from ..forksafe import renew_locks_after_fork
from ..pricing import PICODOLLARS_PER_USD, picodollars_to_usd
from ..semconv import (
    TOKENBUDGET_BUDGET_ACTION,
    TOKENBUDGET_BUDGET_EXHAUSTED_AT,
    TOKENBUDGET_BUDGET_FORECAST,
    TOKENBUDGET_BUDGET_FORECAST_EXCEEDED_EVENT,
    TOKENBUDGET_BUDGET_FORECAST_METRIC,
    TOKENBUDGET_BUDGET_FORECAST_UNIT,
    TOKENBUDGET_BUDGET_FORECAST_WARNINGS,
    TOKENBUDGET_BUDGET_FORECAST_WARNINGS_UNIT,
    TOKENBUDGET_BUDGET_GROUP,
    TOKENBUDGET_BUDGET_LIMIT,
    TOKENBUDGET_BUDGET_NAME,
    TOKENBUDGET_BUDGET_SPENT,
)
from .budget_metrics import GroupTracker
from .charges import Charge, ledger_key
from .spec import Budget
from .store import Balance, SpendStore
from .store_health import StoreHealth
from .windows import WindowSpan

_logger = logging.getLogger(__name__)

MIN_ELAPSED: Final = 0.05
"""No projection before 5% of the window has elapsed."""
_MAX_GROWTH: Final = math.ceil(1 / MIN_ELAPSED)
"""A projection divides the spend by a share of the window (or of its previous shape) of at least
MIN_ELAPSED, so it is at most this many times the spend; a spend of at most 1/_MAX_GROWTH of the
limit cannot be projected past it, and is not projected on settlement."""
SHAPE_POINTS: Final = 48
"""A window's shape is kept as its cumulative spend at this many evenly spaced points."""
MAX_SHAPES: Final = 10_000


@dataclass(frozen=True, slots=True)
class ForecastEvent:
    """What `on_forecast` receives: a group's projected spend will pass the limit in this window."""

    budget: str
    group: str
    action: str
    spent_usd: Decimal
    forecast_usd: Decimal
    limit_usd: Decimal
    exhausted_at: datetime
    """When the projection reaches the limit."""
    window_start: datetime
    resets_at: datetime
    method: str
    """"burn-rate", or "previous-window-shape" when the group's last window was seen through."""


ForecastCallback = Callable[[ForecastEvent], object]


# Not frozen: one is made per budget on every settlement (see `usage.TokenUsage`).
@dataclass(slots=True)
class Projection:
    forecast: float
    exhausted_at: float | None
    method: str


class _Shape:
    """Cumulative spend of one group's window at `SHAPE_POINTS` points, as settlements reveal it.

    While the window runs, each point holds the largest spend seen within its own slice only (one
    store per settlement, whatever the number of points); `completed` carries each point's maximum
    forward once, when the window becomes the one its successor is projected by.
    """

    __slots__ = ("first_seen", "points", "warned", "window_start")

    def __init__(self, window_start: int) -> None:
        self.window_start = window_start
        self.points = [0.0] * (SHAPE_POINTS + 1)
        self.first_seen = 1.0
        self.warned = False
        """The window's warning was given: its projections need not be made."""

    def saw(self, fraction: float, spent: float) -> None:
        # Comparisons rather than min() and max(): this runs for every budget of every settlement.
        if fraction < self.first_seen:  # noqa: PLR1730
            self.first_seen = fraction
        index = int(fraction * SHAPE_POINTS) + 1
        if index > SHAPE_POINTS:
            index = SHAPE_POINTS
        elif index < 0:
            index = 0
        points = self.points
        if spent > points[index]:  # noqa: PLR1730
            points[index] = spent

    def completed(self) -> _Shape:
        """The shape with the spend at each point: the largest seen at or before it."""
        running = 0.0
        for position, spent in enumerate(self.points):
            running = max(running, spent)
            self.points[position] = running
        return self

    def share_at(self, fraction: float) -> float | None:
        """The share of the window's total spent by `fraction` of it (linear between points)."""
        total = self.points[-1]
        if total <= 0:
            return None
        position = fraction * SHAPE_POINTS
        below = min(int(position), SHAPE_POINTS - 1)
        share = self.points[below] + (self.points[below + 1] - self.points[below]) * (position - below)
        return share / total

    def fraction_reaching(self, share: float) -> float:
        total = self.points[-1]
        target = share * total
        index = bisect.bisect_left(self.points, target)
        if index == 0:
            return 0.0
        low, high = self.points[index - 1], self.points[min(index, SHAPE_POINTS)]
        within = (target - low) / (high - low) if high > low else 0.0
        return (index - 1 + within) / SHAPE_POINTS


def project(
    spent: float, window: WindowSpan, now: float, previous: _Shape | None, limit: float | None = None
) -> Projection | None:
    """The end-of-window spend at the current rate (or in the previous window's shape); None too early
    in the window, or for a window without an end. With a `limit`, also when the spend reaches it, and
    None unless the projection passes it (the question every settlement asks, mostly answered no)."""
    if window.end is None:
        return None
    length = window.end - window.start
    elapsed = (now - window.start) / length
    if elapsed < MIN_ELAPSED or elapsed > 1:
        return None
    share = previous.share_at(elapsed) if previous is not None else None
    shaped = previous is not None and share is not None and share >= MIN_ELAPSED
    forecast = spent / share if shaped and share is not None else spent / elapsed
    method = "previous-window-shape" if shaped else "burn-rate"
    if limit is None:
        return Projection(forecast, None, method)
    if forecast <= limit:
        return None
    share_of_forecast = limit / forecast
    reach = previous.fraction_reaching(share_of_forecast) if shaped and previous else share_of_forecast
    return Projection(forecast, max(window.start + reach * length, now), method)


class ForecastSignal:
    """The forecast gauge and the predictive warning; fed by the guard after each settlement."""

    def __init__(
        self,
        meter: Meter,
        *,
        budgets: Sequence[Budget],
        store: SpendStore,
        tracker: GroupTracker,
        health: StoreHealth,
        clock: Callable[[], float],
        callback: ForecastCallback | None = None,
    ) -> None:
        self._budgets = tuple(budget for budget in budgets if budget.limit > 0)
        self._store = store
        self._tracker = tracker
        self._health = health
        self._clock = clock
        self._callback = callback
        self._lock = threading.Lock()
        renew_locks_after_fork(self, "_lock")
        self._current: OrderedDict[tuple[str, str], _Shape] = OrderedDict()
        self._previous: OrderedDict[tuple[str, str], _Shape] = OrderedDict()
        self._warned: OrderedDict[tuple[str, str, int], None] = OrderedDict()
        self._limits: dict[Budget, float] = {}
        self._active = True
        self._warnings: Counter = meter.create_counter(
            TOKENBUDGET_BUDGET_FORECAST_WARNINGS,
            unit=TOKENBUDGET_BUDGET_FORECAST_WARNINGS_UNIT,
            description="Times a budget group's projected end-of-window spend passed its limit.",
        )
        meter.create_observable_gauge(
            TOKENBUDGET_BUDGET_FORECAST_METRIC,
            callbacks=[self._observe],
            unit=TOKENBUDGET_BUDGET_FORECAST_UNIT,
            description="Projected spend at the end of the budget's current window, per group.",
        )

    def close(self) -> None:
        self._active = False

    # ---- after each settlement ------------------------------------------------------------------

    def after_settle(
        self,
        charges: Sequence[Charge],
        balances: Sequence[Balance],
        amount: int,
        span: Span | None,
        attributes: Mapping[str, AttributeValue],
    ) -> None:
        if amount <= 0 or not self._active:
            return
        now = self._clock()
        unwarned: list[tuple[Charge, int, float, _Shape, _Shape | None]] = []
        # By hand rather than `with`, on every call's path: see `MemoryStore.reserve`.
        lock = self._lock
        lock.acquire()
        try:
            # Indexed, not zip(strict=True), whose keyword costs more than this loop: one balance
            # per charge.
            for index, charge in enumerate(charges):
                budget = charge.budget
                window = charge.window
                if budget.limit <= 0 or window.end is None:
                    continue
                spent = balances[index].spent
                # int / int is the correctly rounded quotient, as float(Decimal) of it would be.
                usd = spent / PICODOLLARS_PER_USD
                shape, previous = self._remember(budget.name, charge.group, window, now, usd)
                # Once warned, a window is not projected again; once spent, the 100% threshold says so.
                if not shape.warned and spent < budget.limit and spent * _MAX_GROWTH > budget.limit:
                    unwarned.append((charge, spent, usd, shape, previous))
        finally:
            lock.release()
        for charge, spent, usd, shape, previous in unwarned:
            budget = charge.budget
            limit = self._limits.get(budget)
            if limit is None:
                # Made once per budget: a limit past 2**53 picodollars ($9,007) takes int / int's
                # long division.
                limit = self._limits[budget] = budget.limit / PICODOLLARS_PER_USD
            projection = project(usd, charge.window, now, previous, limit)
            if projection is None or projection.exhausted_at is None or charge.window.end is None:
                continue
            if self._first_warning(shape, budget.name, charge.group):
                self._warn(
                    charge,
                    spent=picodollars_to_usd(spent),
                    projection=projection,
                    exhausted_at=projection.exhausted_at,
                    window_end=charge.window.end,
                    span=span,
                )

    def _remember(
        self, budget: str, group: str, window: WindowSpan, now: float, spent: float
    ) -> tuple[_Shape, _Shape | None]:
        """The group's shape of this window, told the spend, and its shape of the window before (if
        this process saw that one through); called with the lock held."""
        key = (budget, group)
        start = window.start
        current = self._current
        shape = current.get(key)
        if shape is None or shape.window_start != start:
            shape = self._start_shape(key, start, shape)
        else:
            current.move_to_end(key)
        shape.saw((now - start) / ((window.end or now) - start), spent)
        return shape, self._previous.get(key)

    def _start_shape(self, key: tuple[str, str], start: int, shape: _Shape | None) -> _Shape:
        # A window seen from its first quarter on gives the shape for the next one.
        if shape is not None and shape.window_start < start and shape.first_seen <= 0.25:
            self._previous[key] = shape.completed()
            if len(self._previous) > MAX_SHAPES:
                self._previous.popitem(last=False)
        shape = _Shape(start)
        self._current[key] = shape
        self._current.move_to_end(key)
        if len(self._current) > MAX_SHAPES:
            self._current.popitem(last=False)
        return shape

    def _first_warning(self, shape: _Shape, budget: str, group: str) -> bool:
        """True once per budget, group and window, `shape` being the window's: it is not projected
        again; the warnings are also kept apart, for a window whose shape was dropped and made anew."""
        with self._lock:
            shape.warned = True
            key = (budget, group, shape.window_start)
            if key in self._warned:
                return False
            self._warned[key] = None
            if len(self._warned) > MAX_SHAPES:
                self._warned.popitem(last=False)
            return True

    def _warn(
        self,
        charge: Charge,
        *,
        spent: Decimal,
        projection: Projection,
        exhausted_at: float,
        window_end: int,
        span: Span | None,
    ) -> None:
        budget = charge.budget
        event = ForecastEvent(
            budget=budget.name,
            group=charge.group,
            action=budget.action,
            spent_usd=spent,
            forecast_usd=_usd(projection.forecast),
            limit_usd=budget.limit_usd,
            exhausted_at=datetime.fromtimestamp(exhausted_at, timezone.utc),
            window_start=charge.window.starts_at,
            resets_at=datetime.fromtimestamp(window_end, timezone.utc),
            method=projection.method,
        )
        _logger.warning(
            "tokenbudget: budget %r%s will pass its %s limit around %s at the current rate"
            " (spent %s, projected %s by %s)",
            budget.name,
            f" for {charge.group}" if charge.group else "",
            format_usd(budget.limit_usd),
            _clock_time(event.exhausted_at, event.window_start, event.resets_at),
            format_usd(event.spent_usd),
            format_usd(event.forecast_usd),
            event.resets_at.isoformat(),
        )
        attributes: dict[str, AttributeValue] = {
            TOKENBUDGET_BUDGET_NAME: budget.name,
            TOKENBUDGET_BUDGET_ACTION: budget.action,
        }
        self._warnings.add(1, attributes)
        if span is not None and span.is_recording():
            event_attributes = {
                **attributes,
                TOKENBUDGET_BUDGET_SPENT: float(event.spent_usd),
                TOKENBUDGET_BUDGET_FORECAST: float(event.forecast_usd),
                TOKENBUDGET_BUDGET_LIMIT: float(event.limit_usd),
                TOKENBUDGET_BUDGET_EXHAUSTED_AT: event.exhausted_at.isoformat(),
            }
            if budget.group_by:
                event_attributes[TOKENBUDGET_BUDGET_GROUP] = charge.group
            span.add_event(TOKENBUDGET_BUDGET_FORECAST_EXCEEDED_EVENT, event_attributes)
        if self._callback is not None:
            try:
                self._callback(event)
            except Exception:
                _logger.warning("tokenbudget: the on_forecast callback raised", exc_info=True)

    # ---- the gauge ------------------------------------------------------------------------------

    def _observe(self, options: CallbackOptions) -> Iterable[Observation]:
        if not self._active:
            return []
        try:
            return self._read()
        except Exception as error:
            self._health.failed("a metrics read", error)
            return []

    def _read(self) -> list[Observation]:
        now = self._clock()
        wanted: list[tuple[Budget, str, WindowSpan]] = []
        for budget in self._budgets:
            window = budget.window.span_at(now)
            if window.end is None:
                continue
            if budget.group_by:
                groups = self._tracker.groups(budget, window.start)
                if len(groups) > self._tracker.max_metric_groups:
                    continue  # per-group series would swamp the backend, as for the other gauges
                wanted.extend((budget, group, window) for group in groups)
            else:
                wanted.append((budget, "", window))
        if not wanted:
            return []
        balances = self._store.balances([ledger_key(b, group, window) for b, group, window in wanted])
        self._health.succeeded()
        observations: list[Observation] = []
        for (budget, group, window), balance in zip(wanted, balances, strict=True):
            with self._lock:
                previous = self._previous.get((budget.name, group))
            projection = project(balance.spent / PICODOLLARS_PER_USD, window, now, previous, None)
            if projection is None:
                continue
            attributes: dict[str, AttributeValue] = {
                TOKENBUDGET_BUDGET_NAME: budget.name,
                TOKENBUDGET_BUDGET_ACTION: budget.action,
            }
            if budget.group_by:
                attributes[TOKENBUDGET_BUDGET_GROUP] = group
            observations.append(Observation(projection.forecast, attributes))
        return observations


def _usd(amount: float) -> Decimal:
    """A projection, to four significant digits: more would be false precision."""
    return Decimal(f"{amount:.4g}")


def _clock_time(at: datetime, window_start: datetime, resets_at: datetime) -> str:
    """ "14:20 UTC" within a window of a day or less, with the date for longer windows."""
    if (resets_at - window_start).total_seconds() <= 86_400:
        return at.strftime("%H:%M UTC")
    return at.strftime("%a %d %b %H:%M UTC")
