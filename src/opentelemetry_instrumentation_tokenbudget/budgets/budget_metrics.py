"""Budget metrics: spend, limit and utilisation gauges read from the store, and two counters.

The gauges report, per budget, the current window's settled spend as the store holds it (so every
process sharing a store reports the same figures). A budget without `group_by` has one series. A
grouped budget has one series per group charged in the current window while there are at most
`max_metric_groups` of them; past that, per-user series would swamp a metrics backend, so it has a
single series without the group attribute that reports the group closest to its limit (the largest
spend among the `10 * max_metric_groups` groups this process charged most recently).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from opentelemetry.metrics import CallbackOptions, Counter, Meter, Observation
from opentelemetry.util.types import AttributeValue

from ..forksafe import renew_locks_after_fork
from ..pricing import picodollars_to_usd
from ..semconv import (
    TOKENBUDGET_BUDGET_ACTION,
    TOKENBUDGET_BUDGET_GROUP,
    TOKENBUDGET_BUDGET_LIMIT_METRIC,
    TOKENBUDGET_BUDGET_LIMIT_UNIT,
    TOKENBUDGET_BUDGET_NAME,
    TOKENBUDGET_BUDGET_REFUSALS,
    TOKENBUDGET_BUDGET_REFUSALS_UNIT,
    TOKENBUDGET_BUDGET_SPEND,
    TOKENBUDGET_BUDGET_SPEND_UNIT,
    TOKENBUDGET_BUDGET_THRESHOLD_CROSSINGS,
    TOKENBUDGET_BUDGET_THRESHOLD_CROSSINGS_UNIT,
    TOKENBUDGET_BUDGET_UTILIZATION,
    TOKENBUDGET_BUDGET_UTILIZATION_UNIT,
)
from .charges import Charge, ledger_key
from .spec import Budget
from .store import SpendStore
from .store_health import StoreHealth

_logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BudgetCounters:
    refusals: Counter
    threshold_crossings: Counter


def create_budget_counters(meter: Meter) -> BudgetCounters:
    return BudgetCounters(
        refusals=meter.create_counter(
            TOKENBUDGET_BUDGET_REFUSALS,
            unit=TOKENBUDGET_BUDGET_REFUSALS_UNIT,
            description="Calls that a blocking budget refused before any request was sent.",
        ),
        threshold_crossings=meter.create_counter(
            TOKENBUDGET_BUDGET_THRESHOLD_CROSSINGS,
            unit=TOKENBUDGET_BUDGET_THRESHOLD_CROSSINGS_UNIT,
            description="Times the spend of a budget's group passed one of the budget's thresholds.",
        ),
    )


class GroupTracker:
    """The groups of each grouped budget charged in its current window, most recent last, bounded."""

    def __init__(self, max_metric_groups: int) -> None:
        self.max_metric_groups = max_metric_groups
        self._capacity = max(10 * max_metric_groups, 1)
        self._lock = threading.Lock()
        renew_locks_after_fork(self, "_lock")
        self._groups: dict[str, tuple[int, OrderedDict[str, None]]] = {}
        # (window start, group) each budget charged last, read without the lock: a call of the same
        # group as the one before it, the common case, changes nothing.
        self._last: dict[str, tuple[int, str]] = {}
        # The charges seen last: `ChargeBook` gives a call like the one before it the same tuple, and
        # each of its groups is then the most recent of its budget's window already.
        self._last_charges: object = None

    def saw(self, charges: Sequence[Charge]) -> None:
        if charges is self._last_charges:
            return
        for charge in charges:
            if not charge.budget.group_by:
                continue
            name = charge.budget.name
            start = charge.window.start
            if self._last.get(name) == (start, charge.group):
                continue  # already the most recent group of this window: nothing would change
            with self._lock:
                window_start, groups = self._groups.get(name, (start, OrderedDict()))
                if window_start != start:
                    if window_start > start:
                        continue  # a late settlement of the window before: not the current one
                    groups = OrderedDict()
                groups[charge.group] = None
                groups.move_to_end(charge.group)
                if len(groups) > self._capacity:
                    groups.popitem(last=False)
                self._groups[name] = (start, groups)
                self._last[name] = (start, charge.group)
        self._last_charges = charges

    def groups(self, budget: Budget, window_start: int) -> list[str]:
        with self._lock:
            start, groups = self._groups.get(budget.name, (window_start, OrderedDict()))
            return list(groups) if start == window_start else []


@dataclass(frozen=True, slots=True)
class _Row:
    budget: Budget
    group: str | None
    spent: int


class BudgetGauges:
    """Observable gauges over the store; inert once `close()` is called (gauges cannot be removed)."""

    def __init__(
        self,
        meter: Meter,
        *,
        budgets: Sequence[Budget],
        store: SpendStore,
        tracker: GroupTracker,
        health: StoreHealth,
        clock: Callable[[], float],
    ) -> None:
        self._budgets = tuple(budgets)
        self._store = store
        self._tracker = tracker
        self._health = health
        self._clock = clock
        self._lock = threading.Lock()
        renew_locks_after_fork(self, "_lock")
        self._snapshot: list[_Row] | None = None
        self._served: set[str] = set()
        self._active = True
        meter.create_observable_gauge(
            TOKENBUDGET_BUDGET_SPEND,
            callbacks=[self._observe_usage],
            unit=TOKENBUDGET_BUDGET_SPEND_UNIT,
            description="Spend settled in the budget's current window, per group.",
        )
        meter.create_observable_gauge(
            TOKENBUDGET_BUDGET_LIMIT_METRIC,
            callbacks=[self._observe_limit],
            unit=TOKENBUDGET_BUDGET_LIMIT_UNIT,
            description="The budget's limit, per group.",
        )
        meter.create_observable_gauge(
            TOKENBUDGET_BUDGET_UTILIZATION,
            callbacks=[self._observe_utilization],
            unit=TOKENBUDGET_BUDGET_UTILIZATION_UNIT,
            description="Fraction of the budget's limit spent in its current window, per group.",
        )

    def close(self) -> None:
        self._active = False

    def _observe_usage(self, options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(float(picodollars_to_usd(row.spent)), _attributes(row)) for row in self._rows("usage")
        ]

    def _observe_limit(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(float(row.budget.limit_usd), _attributes(row)) for row in self._rows("limit")]

    def _observe_utilization(self, options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(float(Decimal(row.spent) / row.budget.limit), _attributes(row))
            for row in self._rows("utilization")
            if row.budget.limit > 0
        ]

    def _rows(self, gauge: str) -> list[_Row]:
        """The rows of this collection: one store read serves the three gauges of one collection, and
        a gauge asking again means a new collection has begun."""
        if not self._active:
            return []
        with self._lock:
            if gauge in self._served or self._snapshot is None:
                self._served.clear()
                try:
                    self._snapshot = self._read()
                except Exception as error:
                    self._health.failed("a metrics read", error)
                    self._snapshot = []
                else:
                    self._health.succeeded()
            self._served.add(gauge)
            return self._snapshot

    def _read(self) -> list[_Row]:
        now = self._clock()
        wanted: list[tuple[Budget, str]] = []
        for budget in self._budgets:
            window = budget.window.span_at(now)
            if budget.group_by:
                wanted.extend((budget, group) for group in self._tracker.groups(budget, window.start))
            else:
                wanted.append((budget, ""))
        if not wanted:
            return []
        keys = [ledger_key(budget, group, budget.window.span_at(now)) for budget, group in wanted]
        balances = self._store.balances(keys)
        rows: list[_Row] = []
        by_budget: dict[str, list[_Row]] = {}
        for (budget, group), balance in zip(wanted, balances, strict=True):
            by_budget.setdefault(budget.name, []).append(_Row(budget, group, balance.spent))
        for budget_rows in by_budget.values():
            budget = budget_rows[0].budget
            if not budget.group_by or len(budget_rows) <= self._tracker.max_metric_groups:
                rows.extend(budget_rows)
            else:
                top = max(budget_rows, key=lambda row: row.spent)
                rows.append(_Row(budget, None, top.spent))
        return rows


def _attributes(row: _Row) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = {
        TOKENBUDGET_BUDGET_NAME: row.budget.name,
        TOKENBUDGET_BUDGET_ACTION: row.budget.action,
    }
    if row.group is not None and row.budget.group_by:
        attributes[TOKENBUDGET_BUDGET_GROUP] = row.group
    return attributes
