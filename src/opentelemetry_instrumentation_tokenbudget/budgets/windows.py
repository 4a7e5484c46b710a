"""The time windows a budget's spend is counted in.

Three kinds, each answering "which window holds this instant?" with its start and its end:

- calendar windows, ``"day"``, ``"week"`` (starting Monday) and ``"month"``, in UTC unless the budget
  names a time zone; a day in a zone with daylight saving time lasts 23 or 25 hours twice a year;
- fixed windows, ``"30m"``, ``"1h"``, ``"1d"``, ``"7d"`` or a ``timedelta``: consecutive windows of
  that length aligned to the Unix epoch (``"1h"`` is the clock hour in UTC, ``"1d"`` the UTC day).
  They are not rolling windows: the spend starts over at each boundary. A true rolling window needs
  the sum of many buckets checked and reserved in one atomic step, which the spend store contract
  (one ledger entry per budget, group and window) does not offer; the honest name is "fixed";
- no window (``None``): the spend is never reset.

Instants are epoch seconds, the unit of the stores' `LedgerKey`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Final, Protocol

CALENDAR_UNITS: Final = ("day", "week", "month")

# "No window" entries must still carry an expiry for the stores; 9999-12-31T23:59:59Z is within what
# every store (and Redis EXPIREAT, in milliseconds) can hold.
NEVER: Final = 253_402_300_799

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_SECONDS_PER_UNIT: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(slots=True)
class WindowSpan:
    """One window: `start` (inclusive) and `end` (exclusive) in epoch seconds; `end` None is never."""

    start: int
    end: int | None

    @property
    def starts_at(self) -> datetime:
        return datetime.fromtimestamp(self.start, timezone.utc)

    @property
    def resets_at(self) -> datetime | None:
        return None if self.end is None else datetime.fromtimestamp(self.end, timezone.utc)

    def contains(self, now: float) -> bool:
        return self.start <= now and (self.end is None or now < self.end)


class Window(Protocol):
    """How a budget cuts time into windows."""

    @property
    def label(self) -> str:
        """The window as the user wrote it, for messages."""
        ...

    def span_at(self, now: float) -> WindowSpan:
        """The window that holds `now` (epoch seconds)."""
        ...


class NoWindow:
    """Spend accumulates forever."""

    label = "none"
    _SPAN: Final = WindowSpan(0, None)

    def span_at(self, now: float) -> WindowSpan:
        return self._SPAN

    def __repr__(self) -> str:
        return "NoWindow()"


class FixedWindow:
    """Consecutive windows of `seconds` each, the first starting at the Unix epoch."""

    __slots__ = ("_last", "label", "seconds")

    def __init__(self, seconds: int, label: str | None = None) -> None:
        if seconds < 1:
            raise ValueError(f"a fixed window lasts at least one second, not {seconds}")
        self.seconds = seconds
        self.label = label or f"{seconds}s"
        self._last = WindowSpan(0, seconds)

    def span_at(self, now: float) -> WindowSpan:
        last = self._last
        if last.contains(now):
            return last
        start = int(now // self.seconds) * self.seconds
        span = WindowSpan(start, start + self.seconds)
        self._last = span
        return span

    def __repr__(self) -> str:
        return f"FixedWindow({self.seconds}, label={self.label!r})"


class CalendarWindow:
    """Days, weeks (Monday to Sunday) or months of the calendar in `zone`."""

    __slots__ = ("_last", "label", "unit", "zone")

    def __init__(self, unit: str, zone: tzinfo = timezone.utc) -> None:
        if unit not in CALENDAR_UNITS:
            raise ValueError(f"unknown calendar unit {unit!r}; expected one of {', '.join(CALENDAR_UNITS)}")
        self.unit = unit
        self.zone = zone
        self.label = unit
        self._last = WindowSpan(0, 0)

    def span_at(self, now: float) -> WindowSpan:
        # Computing calendar boundaries costs a few microseconds; nearly every call falls in the
        # window of the call before it.
        last = self._last
        if last.contains(now):
            return last
        today = datetime.fromtimestamp(now, self.zone).date()
        first, after = _calendar_bounds(self.unit, today)
        span = WindowSpan(self._epoch(first), self._epoch(after))
        self._last = span
        return span

    def _epoch(self, day: date) -> int:
        # Midnight of that day on the zone's wall clock; zoneinfo resolves a midnight that a DST
        # change skips or repeats to one definite instant.
        return int(datetime(day.year, day.month, day.day, tzinfo=self.zone).timestamp())

    def __repr__(self) -> str:
        return f"CalendarWindow({self.unit!r}, {self.zone!r})"


def _calendar_bounds(unit: str, today: date) -> tuple[date, date]:
    if unit == "day":
        return today, today + timedelta(days=1)
    if unit == "week":
        monday = today - timedelta(days=today.weekday())
        return monday, monday + timedelta(days=7)
    first = today.replace(day=1)
    after = date(first.year + 1, 1, 1) if first.month == 12 else date(first.year, first.month + 1, 1)
    return first, after


def parse_window(value: object, zone: tzinfo | None) -> Window:
    """The window `value` names; ValueError saying what is accepted otherwise.

    `zone` applies to calendar windows only: a fixed window is aligned to the epoch whatever the
    zone, so asking for both is refused rather than silently ignored.
    """
    if value is None:
        if zone is not None:
            raise ValueError("timezone is set but the budget has no window")
        return NoWindow()
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
        if seconds < 1 or seconds != int(seconds):
            raise ValueError(f"a timedelta window must be a whole number of seconds >= 1, not {value!r}")
        window: Window = FixedWindow(int(seconds), label=str(value))
    elif isinstance(value, str):
        if value in CALENDAR_UNITS:
            return CalendarWindow(value, zone or timezone.utc)
        match = _DURATION.match(value)
        if match is None or int(match.group(1)) == 0:
            raise ValueError(
                f"unknown window {value!r}; expected 'day', 'week', 'month', a duration such as"
                " '30m', '1h', '1d' (fixed windows aligned to the Unix epoch), a timedelta, or None"
            )
        window = FixedWindow(int(match.group(1)) * _SECONDS_PER_UNIT[match.group(2)], label=value.strip())
    else:
        raise ValueError(
            f"window must be a string, a timedelta or None, not {type(value).__name__} {value!r}"
        )
    if zone is not None:
        raise ValueError(
            f"timezone applies to the calendar windows 'day', 'week' and 'month'; window {value!r} is"
            " a fixed window aligned to the Unix epoch"
        )
    return window
