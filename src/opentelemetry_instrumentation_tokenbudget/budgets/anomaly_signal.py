"""A budget group's spend against its own recent baseline, live: an alert when an interval's spend
leaves the band, naming the model, feature or user that drove the excess.

Spend is counted per group in intervals of `BUCKET_SECONDS`. The expected spend of an interval is
the median of the same interval on the previous days (up to a week) once two days are known, else
the median of the last `RECENT_BUCKETS` intervals: a median, so that a past burst does not raise the
baseline, and the same time of day when there is history, so that the morning rush is not an
anomaly. The band's width is `sensitivity` robust standard deviations (1.4826 x the median absolute
deviation) of the past intervals' residuals, at least a tenth of the expected spend. The interval in
progress is compared as it fills, so a burst is reported while it happens, once per run of anomalous
intervals. The driver is the attribute value (`DRIVER_KEYS`) whose spend in the interval most
exceeds its usual share of the expected spend.

This is the process's own memory, bounded (`MAX_GROUPS` groups, eight days of intervals each), and
it starts over with the process; the offline ``tokenbudget anomalies`` reads the whole history.
"""

from __future__ import annotations

import logging
import statistics
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Final

from opentelemetry.metrics import Counter, Meter
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import GEN_AI_REQUEST_MODEL
from opentelemetry.semconv._incubating.attributes.user_attributes import USER_ID
from opentelemetry.trace import Span
from opentelemetry.util.types import AttributeValue

from ..errors import format_usd
from ..forksafe import renew_locks_after_fork
from ..pricing import PICODOLLARS_PER_USD
from ..semconv import (
    TOKENBUDGET_ANOMALY_DRIVER,
    TOKENBUDGET_ANOMALY_DRIVER_EXCESS,
    TOKENBUDGET_ANOMALY_EXPECTED,
    TOKENBUDGET_ANOMALY_OBSERVED,
    TOKENBUDGET_ANOMALY_SCORE,
    TOKENBUDGET_BUDGET_ANOMALIES,
    TOKENBUDGET_BUDGET_ANOMALIES_UNIT,
    TOKENBUDGET_BUDGET_ANOMALY_EVENT,
    TOKENBUDGET_BUDGET_GROUP,
    TOKENBUDGET_BUDGET_NAME,
    TOKENBUDGET_FEATURE,
)
from .charges import Charge
from .spec import Budget
from .store import Balance

_logger = logging.getLogger(__name__)

BUCKET_SECONDS: Final = 900
_PER_DAY: Final = 86_400 // BUCKET_SECONDS
HISTORY_BUCKETS: Final = 8 * _PER_DAY
RECENT_BUCKETS: Final = 12
SENSITIVITY: Final = 5.0
MAD_TO_SIGMA: Final = 1.4826
MIN_WIDTH: Final = 0.1
"""The band is at least this share of the expected spend wide."""
MAX_GROUPS: Final = 1000
DRIVER_KEYS: Final = (GEN_AI_REQUEST_MODEL, TOKENBUDGET_FEATURE, USER_ID)
_MAX_DRIVER_VALUES: Final = 50
_SHARE_WEIGHT: Final = 0.1


@dataclass(frozen=True, slots=True)
class AnomalyEvent:
    """What `on_anomaly` receives."""

    budget: str
    group: str
    start: datetime
    end: datetime
    observed_usd: float
    expected_usd: float
    score: float
    driver: str | None
    """"gen_ai.request.model=gpt-4o": the value whose spend most exceeds its usual share."""
    driver_excess_usd: float


AnomalyCallback = Callable[[AnomalyEvent], object]


@dataclass(frozen=True, slots=True)
class _Band:
    expected: float
    scale: float
    threshold: float


class _Group:
    __slots__ = ("band", "bucket", "by_value", "fired", "fired_before", "history", "shares", "spent")

    def __init__(self, bucket: int) -> None:
        self.bucket = bucket
        self.spent = 0.0
        self.by_value: dict[tuple[str, str], float] = {}
        """Spend in the interval per (driver key, value): named "key=value" only when reported."""
        self.band: _Band | None = None
        self.fired = False
        self.fired_before = False
        self.history: deque[tuple[float, float | None]] = deque(maxlen=HISTORY_BUCKETS)
        """(spent, expected) of each closed interval, oldest first, without gaps."""
        self.shares: dict[tuple[str, str], float] = {}

    def roll(self, bucket: int) -> None:
        """Close the interval in progress (and the empty ones since) and open `bucket`'s."""
        closed = self.band.expected if self.band is not None else None
        self.history.append((self.spent, closed))
        if self.spent > 0:
            for value in set(self.shares) | set(self.by_value):
                share = self.by_value.get(value, 0.0) / self.spent
                self.shares[value] = (
                    self.shares.get(value, share) * (1 - _SHARE_WEIGHT) + share * _SHARE_WEIGHT
                )
        empty = min((bucket - self.bucket) // BUCKET_SECONDS - 1, HISTORY_BUCKETS)
        self.history.extend((0.0, None) for _ in range(max(empty, 0)))
        self.bucket = bucket
        self.spent = 0.0
        self.by_value = {}
        self.fired_before = self.fired
        self.fired = False
        self.band = band(self.history)

    def add(self, amount: float, drivers: Sequence[tuple[str, str]]) -> None:
        self.spent += amount
        by_value = self.by_value
        for name in drivers:
            spent = by_value.get(name)
            if spent is not None:
                by_value[name] = spent + amount
            elif len(by_value) < _MAX_DRIVER_VALUES:
                by_value[name] = amount

    def driver(self, expected: float) -> tuple[str | None, float]:
        best: tuple[tuple[str, str] | None, float] = (None, 0.0)
        for name, spent in self.by_value.items():
            excess = spent - self.shares.get(name, 0.0) * expected
            if excess > best[1]:
                best = (name, excess)
        found, excess = best
        return (None if found is None else f"{found[0]}={found[1]}"), excess


def driver_names(attributes: Mapping[str, AttributeValue]) -> list[tuple[str, str]]:
    """The (key, value) pairs of a call that can drive an anomaly: made once per settlement, whatever
    the number of its budgets."""
    names = []
    for key in DRIVER_KEYS:
        value = attributes.get(key)
        if value is not None:
            # A list value (AttributeValue allows one) cannot be a key; its text can.
            names.append((key, value if type(value) is str else str(value)))
    return names


def band(history: Sequence[tuple[float, float | None]], sensitivity: float = SENSITIVITY) -> _Band | None:
    """The band of the interval after `history`'s last; None without enough past."""
    values = [spent for spent, _ in history]
    same_time = [values[-lag] for lag in range(_PER_DAY, 8 * _PER_DAY, _PER_DAY) if lag <= len(values)]
    if len(same_time) >= 2:
        expected = statistics.median(same_time)
    elif len(values) >= RECENT_BUCKETS:
        expected = statistics.median(values[-RECENT_BUCKETS:])
    else:
        return None
    residuals = [spent - guess for spent, guess in list(history)[-_PER_DAY:] if guess is not None]
    if len(residuals) < RECENT_BUCKETS:
        recent = values[-RECENT_BUCKETS:]
        center = statistics.median(recent)
        residuals = [value - center for value in recent]
    middle = statistics.median(residuals)
    scale = MAD_TO_SIGMA * statistics.median(abs(r - middle) for r in residuals)
    scale = max(scale, MIN_WIDTH * expected / sensitivity, 1e-12)
    return _Band(expected, scale, expected + sensitivity * scale)


class AnomalySignal:
    """Fed by the guard after each settlement; reports through a counter, a span event, the log and
    the ``on_anomaly`` callback."""

    def __init__(
        self,
        meter: Meter,
        *,
        budgets: Sequence[Budget],
        clock: Callable[[], float],
        callback: AnomalyCallback | None = None,
    ) -> None:
        self._clock = clock
        self._callback = callback
        self._lock = threading.Lock()
        renew_locks_after_fork(self, "_lock")
        self._groups: OrderedDict[tuple[str, str], _Group] = OrderedDict()
        self._active = bool(budgets)
        self._counter: Counter = meter.create_counter(
            TOKENBUDGET_BUDGET_ANOMALIES,
            unit=TOKENBUDGET_BUDGET_ANOMALIES_UNIT,
            description="Times a budget group's spend in an interval left the band of its recent baseline.",
        )

    def close(self) -> None:
        self._active = False

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
        bucket = int(now // BUCKET_SECONDS) * BUCKET_SECONDS
        usd = amount / PICODOLLARS_PER_USD  # the correctly rounded quotient, as float(Decimal) is
        drivers = driver_names(attributes)
        found: list[tuple[Charge, _Group, _Band]] = []
        # By hand rather than `with`, on every call's path: see `MemoryStore.reserve`.
        lock = self._lock
        lock.acquire()
        try:
            for charge in charges:
                anomalous = self._observe(charge, bucket, usd, drivers)
                if anomalous is not None:
                    found.append((charge, *anomalous))
        finally:
            lock.release()
        for charge, group, current in found:
            self._report(charge, group, current, span=span)

    def _observe(
        self, charge: Charge, bucket: int, usd: float, drivers: Sequence[tuple[str, str]]
    ) -> tuple[_Group, _Band] | None:
        """Count `usd` into the charge's group; its group and band if this starts an anomaly. Called
        with the lock held."""
        key = (charge.budget.name, charge.group)
        groups = self._groups
        group = groups.get(key)
        if group is None:
            group = groups[key] = _Group(bucket)
            if len(groups) > MAX_GROUPS:
                groups.popitem(last=False)
        else:
            groups.move_to_end(key)
        if bucket < group.bucket:
            return None  # a late settlement of an interval already closed
        if bucket > group.bucket:
            group.roll(bucket)
        group.add(usd, drivers)
        current = group.band
        if current is None or group.fired or group.spent <= current.threshold:
            return None
        group.fired = True
        if group.fired_before:
            return None  # the same run of anomalous intervals, reported when it began
        return group, current

    def _report(self, charge: Charge, group: _Group, current: _Band, *, span: Span | None) -> None:
        driver, excess = group.driver(current.expected)
        event = AnomalyEvent(
            budget=charge.budget.name,
            group=charge.group,
            start=datetime.fromtimestamp(group.bucket, timezone.utc),
            end=datetime.fromtimestamp(group.bucket + BUCKET_SECONDS, timezone.utc),
            observed_usd=group.spent,
            expected_usd=current.expected,
            score=(group.spent - current.expected) / current.scale,
            driver=driver,
            driver_excess_usd=excess,
        )
        _logger.warning(
            "tokenbudget: budget %r%s spent %s in the %d minutes from %s, against %s expected%s",
            event.budget,
            f" for {event.group}" if event.group else "",
            _money(event.observed_usd),
            BUCKET_SECONDS // 60,
            event.start.strftime("%H:%M UTC"),
            _money(event.expected_usd),
            f"; driven by {driver} ({_money(excess)} above its usual share)" if driver else "",
        )
        attributes: dict[str, AttributeValue] = {TOKENBUDGET_BUDGET_NAME: event.budget}
        self._counter.add(1, attributes)
        if span is not None and span.is_recording():
            event_attributes: dict[str, AttributeValue] = {
                **attributes,
                TOKENBUDGET_ANOMALY_OBSERVED: event.observed_usd,
                TOKENBUDGET_ANOMALY_EXPECTED: event.expected_usd,
                TOKENBUDGET_ANOMALY_SCORE: event.score,
            }
            if charge.budget.group_by:
                event_attributes[TOKENBUDGET_BUDGET_GROUP] = event.group
            if driver is not None:
                event_attributes[TOKENBUDGET_ANOMALY_DRIVER] = driver
                event_attributes[TOKENBUDGET_ANOMALY_DRIVER_EXCESS] = excess
            span.add_event(TOKENBUDGET_BUDGET_ANOMALY_EVENT, event_attributes)
        if self._callback is not None:
            try:
                self._callback(event)
            except Exception:
                _logger.warning("tokenbudget: the on_anomaly callback raised", exc_info=True)


def _money(amount: float) -> str:
    """Four significant digits, never in exponent form: $0.0003275."""
    return format_usd(Decimal(f"{amount:.4g}"))
