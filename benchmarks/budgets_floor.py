"""The budgets' floor: the least pure-Python code that does the per-call work of `budgets.py`'s two
budgets in memory, for `instructions.py` to count beside the package's budgets.

The package's `sdk-floor` (in `harness.py`) answers "how much could any instrumentation that makes
this span and these metric points cost?"; this answers the same for budget enforcement. `FlatBudgets`
takes the place of the budgets' guard behind the same `SpendGuard` calls (`admit`, `settle`,
`release`) and, for every call, does what the package does in the benchmark's case:

- the call's attributes (its attribution and what it calls), and its charges from a cache keyed by
  the values the budgets match and group on, while the instant is in their windows;
- the estimate: the price's integer rates, the prompt's tokens, the output percentile of the model
  capped by `max_tokens`; a reservation on every entry under one lock, refused by a blocking budget
  that it would take past its limit;
- on settlement: the output percentile told the call's output, the reservation swapped for the cost
  on every entry, the balances after it, and for each charge the threshold check, the forecast's
  window shape and the anomaly signal's interval sums per driver.

What it leaves out is what the package adds for being a library rather than a benchmark: checks of
amounts, keys and token counts, the store protocol's objects, store failures (health, journal,
`on_store_error`), the bounds on its caches and on groups, windows that end, the processor's view
of the call's parent span, and reporting (refusals, thresholds, forecasts, anomalies are only
detected). So it is a floor, not an alternative: the package cannot get below it while doing the same
work in Python, and what it costs above it is the price of those parts and of its module boundaries.
Its allocations also mirror the package's where the work needs them (the balances returned after a
settlement are fresh `Balance`s, since a listener may keep them).
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry_instrumentation_tokenbudget.budgets.spec import Budget
from opentelemetry_instrumentation_tokenbudget.budgets.store import Balance
from opentelemetry_instrumentation_tokenbudget.pricing import PriceBook

PICODOLLARS_PER_USD = 10**12
SHAPE_POINTS = 48
BUCKET_SECONDS = 900
DRIVER_KEYS = ("gen_ai.request.model", "tokenbudget.feature", "user.id")
DEFAULT_OUTPUT_TOKENS = 256
WINDOW = 100
QUANTILE = 0.95


class _Charge:
    __slots__ = ("blocking", "budget", "end", "group", "levels", "limit", "name", "start")

    def __init__(self, budget: Budget, group: str, now: float) -> None:
        window = budget.window.span_at(now)
        self.budget = budget.name
        self.group = group
        self.start = window.start
        self.end = window.end if window.end is not None else window.start + 86_400
        self.name = f"{budget.name}|{group}|{window.start}"
        self.limit = budget.limit
        self.blocking = budget.blocking
        self.levels = budget.threshold_levels


class _Entry:
    __slots__ = ("reserved", "spent")

    def __init__(self) -> None:
        self.spent = 0
        self.reserved = 0


class _Recent:
    __slots__ = ("arrivals", "percentile", "sorted")

    def __init__(self) -> None:
        self.arrivals: deque[int] = deque(maxlen=WINDOW)
        self.sorted: list[int] = []
        self.percentile = DEFAULT_OUTPUT_TOKENS


class _Shape:
    __slots__ = ("first_seen", "points", "start")

    def __init__(self, start: int) -> None:
        self.start = start
        self.points = [0.0] * (SHAPE_POINTS + 1)
        self.first_seen = 1.0


class _Interval:
    __slots__ = ("bucket", "by_value", "spent")

    def __init__(self, bucket: int) -> None:
        self.bucket = bucket
        self.spent = 0.0
        self.by_value: dict[tuple[str, Any], float] = {}


class FlatBudgets:
    """Budget enforcement in one class, for counting: see the module's docstring."""

    def __init__(self, budgets: Sequence[Budget], prices: PriceBook) -> None:
        self._budgets = tuple(budgets)
        self._prices = prices
        self._read = tuple(
            dict.fromkeys(name for budget in self._budgets for name in (*budget.match, *budget.group_by))
        )
        self._calls: dict[tuple[Any, ...], tuple[tuple[_Charge, ...], float, float]] = {}
        self._rates: dict[tuple[Any, ...], tuple[int, int, int]] = {}
        self._recent: dict[tuple[str, str], _Recent] = {}
        self._entries: dict[str, _Entry] = {}
        self._shapes: dict[tuple[str, str], _Shape] = {}
        self._intervals: dict[tuple[str, str], _Interval] = {}
        self._lock = threading.Lock()

    def admit(self, request: Any, attribution: Mapping[str, Any]) -> Any:
        attributes = dict(attribution)
        attributes["gen_ai.provider.name"] = request.provider
        attributes["gen_ai.request.model"] = request.model
        attributes["gen_ai.operation.name"] = request.operation
        now = time.time()
        values = tuple([attributes.get(name) for name in self._read])
        known = self._calls.get(values)
        if known is None or not known[1] <= now < known[2]:
            known = self._calls[values] = self._charge(attributes, now)
        charges = known[0]
        price_key = (request.provider, request.model, request.price_route)
        rates = self._rates.get(price_key)
        if rates is None:
            pricing = self._prices.lookup(request.provider, request.model, request.price_route)
            whole = pricing.token_rates() if pricing is not None else None
            rates = self._rates[price_key] = (whole[0], whole[1], whole[2]) if whole else (0, 0, 0)
        recent = self._recent.get((request.provider, request.model))
        output = DEFAULT_OUTPUT_TOKENS if recent is None else recent.percentile
        ceiling = request.max_output_tokens
        if ceiling is not None and ceiling < output:
            output = ceiling
        estimate = rates[0] + rates[1] * request.estimate_input_tokens() + rates[2] * output
        entries: list[_Entry] = []
        lock = self._lock
        lock.acquire()
        try:
            stored = self._entries
            for charge in charges:
                entry = stored.get(charge.name)
                if entry is None:
                    entry = stored[charge.name] = _Entry()
                if charge.blocking and entry.spent + entry.reserved + estimate > charge.limit:
                    raise RuntimeError(f"refused by {charge.budget}")
                entries.append(entry)
            for entry in entries:
                entry.reserved += estimate
        finally:
            lock.release()
        return (charges, entries, estimate, attributes)

    def settle(self, admission: Any, request: Any, spent: int | None, span: Any, usage: Any = None) -> None:
        if admission is None or spent is None:
            return
        charges, entries, reserved, attributes = admission
        balances: list[Balance] = []
        lock = self._lock
        lock.acquire()
        try:
            if usage is not None:
                self._observe(request.provider, request.model, usage.output_tokens)
            for entry in entries:
                entry.spent += spent
                held = entry.reserved
                entry.reserved = held - reserved if held > reserved else 0
                balances.append(Balance(entry.spent, entry.reserved))
        finally:
            lock.release()
        self._signals(charges, balances, spent, attributes)

    def release(self, admission: Any) -> None:
        if admission is None:
            return
        _, entries, reserved, _ = admission
        with self._lock:
            for entry in entries:
                entry.reserved = max(entry.reserved - reserved, 0)

    def _charge(self, attributes: Mapping[str, Any], now: float) -> tuple[tuple[_Charge, ...], float, float]:
        charges = []
        for budget in self._budgets:
            if budget.matches(attributes):
                charges.append(_Charge(budget, budget.group_of(attributes), now))
        start = max([charge.start for charge in charges], default=0)
        end = min([charge.end for charge in charges], default=float("inf"))
        return tuple(charges), start, end

    def _observe(self, provider: str, model: str, tokens: int) -> None:
        key = (provider, model)
        recent = self._recent.get(key)
        if recent is None:
            recent = self._recent[key] = _Recent()
        if len(recent.arrivals) == WINDOW:
            del recent.sorted[bisect.bisect_left(recent.sorted, recent.arrivals[0])]
        recent.arrivals.append(tokens)
        bisect.insort(recent.sorted, tokens)
        rank = math.ceil(QUANTILE * len(recent.sorted))
        recent.percentile = recent.sorted[rank - 1 if rank > 1 else 0]

    def _signals(
        self,
        charges: Sequence[_Charge],
        balances: Sequence[Balance],
        amount: int,
        attributes: Mapping[str, Any],
    ) -> None:
        now = time.time()
        usd = amount / PICODOLLARS_PER_USD
        bucket = int(now // BUCKET_SECONDS) * BUCKET_SECONDS
        drivers = []
        for name in DRIVER_KEYS:
            value = attributes.get(name)
            if value is not None:
                drivers.append((name, value))
        lock = self._lock
        lock.acquire()
        try:
            for index, charge in enumerate(charges):
                after = balances[index].spent
                crossed = bisect.bisect_right(charge.levels, after) - bisect.bisect_right(
                    charge.levels, after - amount
                )
                if crossed:
                    pass  # reported by the package; detected here
                group = (charge.budget, charge.group)
                shape = self._shapes.get(group)
                if shape is None or shape.start != charge.start:
                    shape = self._shapes[group] = _Shape(charge.start)
                fraction = (now - charge.start) / (charge.end - charge.start)
                # Comparisons rather than min() and max(), as in the package: they cost less.
                if fraction < shape.first_seen:  # noqa: PLR1730
                    shape.first_seen = fraction
                point = int(fraction * SHAPE_POINTS) + 1
                if point > SHAPE_POINTS:  # noqa: PLR1730
                    point = SHAPE_POINTS
                spent_usd = after / PICODOLLARS_PER_USD
                if spent_usd > shape.points[point]:  # noqa: PLR1730
                    shape.points[point] = spent_usd
                interval = self._intervals.get(group)
                if interval is None or interval.bucket != bucket:
                    interval = self._intervals[group] = _Interval(bucket)
                interval.spent += usd
                by_value = interval.by_value
                for driver in drivers:
                    so_far = by_value.get(driver)
                    by_value[driver] = usd if so_far is None else so_far + usd
        finally:
            lock.release()
