"""Reporting a budget's spend as it crosses its thresholds (by default 50%, 80% and 100% of the limit).

A threshold is crossed by the one settlement that takes a ledger entry's spend from below the
threshold's level to at or above it. The store applies each settlement atomically and returns the
balance after it, so the spend just before it is `after - amount`: among all settlements of a window
and group, in every process that shares the store, exactly one sees the crossing. Thresholds thus fire
once per budget, group, window and threshold without remembering anything, across processes too.
Two exceptions: a store that loses its data (a restarted memory store, a Redis without persistence)
starts the window's spend over, so its thresholds can fire again; and a settlement that failed because
the store was down is not counted, so the crossing it would have made happens on a later one.

Thresholds follow settled spend, not reservations, so a blocking budget, which refuses calls before
spend reaches the limit, reports 100% only when calls cost more than their estimates; its refusals are
reported by their own event and metric.
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from opentelemetry.metrics import Counter
from opentelemetry.trace import Span
from opentelemetry.util.types import AttributeValue

from ..errors import describe_reset, format_usd
from ..pricing import picodollars_to_usd
from ..semconv import (
    TOKENBUDGET_BUDGET_ACTION,
    TOKENBUDGET_BUDGET_GROUP,
    TOKENBUDGET_BUDGET_LIMIT,
    TOKENBUDGET_BUDGET_NAME,
    TOKENBUDGET_BUDGET_SPENT,
    TOKENBUDGET_BUDGET_THRESHOLD,
    TOKENBUDGET_BUDGET_THRESHOLD_CROSSED_EVENT,
)
from .charges import Charge
from .store import Balance

_logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ThresholdEvent:
    """What `on_threshold` receives: a budget's group passed `threshold` (a fraction) of its limit."""

    budget: str
    group: str
    """"user.id=u-42" for a budget with group_by, "" otherwise."""
    action: str
    threshold: Decimal
    spent_usd: Decimal
    limit_usd: Decimal
    window_start: datetime
    resets_at: datetime | None


ThresholdCallback = Callable[[ThresholdEvent], object]


class ThresholdNotifier:
    def __init__(self, crossings: Counter, callback: ThresholdCallback | None) -> None:
        self._crossings = crossings
        self._callback = callback

    def after_settle(
        self, charges: Sequence[Charge], balances: Sequence[Balance], amount: int, span: Span | None
    ) -> None:
        """Report every threshold that the settlement of `amount` took `balances` across."""
        if amount <= 0:
            return
        # Indexed, not zip(strict=True), whose keyword costs more than this loop: one balance per charge.
        for position, charge in enumerate(charges):
            budget = charge.budget
            if budget.limit == 0:
                continue
            after = balances[position].spent
            # The levels are in ascending order (`Budget` sorts the thresholds): those crossed are the
            # ones in (after - amount, after], found by two bisections, none for most settlements.
            levels = budget.threshold_levels
            for index in range(bisect_right(levels, after - amount), bisect_right(levels, after)):
                self._fire(charge, budget.thresholds[index], after, span)

    def _fire(self, charge: Charge, threshold: Decimal, spent: int, span: Span | None) -> None:
        budget = charge.budget
        event = ThresholdEvent(
            budget=budget.name,
            group=charge.group,
            action=budget.action,
            threshold=threshold,
            spent_usd=picodollars_to_usd(spent),
            limit_usd=budget.limit_usd,
            window_start=charge.window.starts_at,
            resets_at=charge.window.resets_at,
        )
        _logger.warning(
            "tokenbudget: budget %r%s passed %s%% of its limit: spent %s of %s; %s",
            budget.name,
            f" for {charge.group}" if charge.group else "",
            f"{(threshold * 100).normalize():f}",
            format_usd(event.spent_usd),
            format_usd(event.limit_usd),
            describe_reset(event.resets_at),
        )
        attributes: dict[str, AttributeValue] = {
            TOKENBUDGET_BUDGET_NAME: budget.name,
            TOKENBUDGET_BUDGET_ACTION: budget.action,
            TOKENBUDGET_BUDGET_THRESHOLD: float(threshold),
        }
        self._crossings.add(1, attributes)
        if span is not None and span.is_recording():
            event_attributes = {
                **attributes,
                TOKENBUDGET_BUDGET_SPENT: float(event.spent_usd),
                TOKENBUDGET_BUDGET_LIMIT: float(event.limit_usd),
            }
            if budget.group_by:
                event_attributes[TOKENBUDGET_BUDGET_GROUP] = charge.group
            span.add_event(TOKENBUDGET_BUDGET_THRESHOLD_CROSSED_EVENT, event_attributes)
        if self._callback is not None:
            try:
                self._callback(event)
            except Exception:
                _logger.warning("tokenbudget: the on_threshold callback raised", exc_info=True)
