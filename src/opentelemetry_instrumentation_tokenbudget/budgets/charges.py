"""Which ledger entries a call is charged to: the budgets it matches, its group in each, the window."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from opentelemetry.util.types import AttributeValue

from .spec import Budget
from .store import LedgerKey
from .windows import NEVER, WindowSpan

# A call that ends just after its window closed still settles into the window that reserved it; the
# entry must outlive the window by longer than any call lasts.
SETTLE_GRACE_SECONDS: Final = 86_400


@dataclass(slots=True)
class Charge:
    """One budget's share of a call: the ledger entry and what is needed to report on it."""

    budget: Budget
    group: str
    window: WindowSpan
    key: LedgerKey


def charges_for(
    budgets: Sequence[Budget], attributes: Mapping[str, AttributeValue], now: float
) -> tuple[Charge, ...]:
    """The charges of a call with these attributes at `now` (epoch seconds), in the budgets' order."""
    charges: list[Charge] = []
    for budget in budgets:
        if not budget.matches(attributes):
            continue
        group = budget.group_of(attributes)
        window = budget.window.span_at(now)
        charges.append(Charge(budget, group, window, ledger_key(budget, group, window)))
    return tuple(charges)


def ledger_key(budget: Budget, group: str, window: WindowSpan) -> LedgerKey:
    expires_at = NEVER if window.end is None else window.end + SETTLE_GRACE_SECONDS
    return LedgerKey(
        budget=budget.name,
        group=group,
        window_start=window.start,
        expires_at=expires_at,
        limit=budget.limit,
        blocking=budget.blocking,
    )
