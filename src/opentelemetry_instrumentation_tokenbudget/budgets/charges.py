"""Which ledger entries a call is charged to: the budgets it matches, its group in each, the window."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from opentelemetry.util.types import AttributeValue

from .group_cap import GroupCap
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
    budgets: Sequence[Budget],
    attributes: Mapping[str, AttributeValue],
    now: float,
    cap: GroupCap | None = None,
) -> tuple[Charge, ...]:
    """The charges of a call with these attributes at `now` (epoch seconds), in the budgets' order;
    with `cap`, a group past its budget's `max_groups` is charged to the overflow group."""
    charges: list[Charge] = []
    for budget in budgets:
        if not budget.matches(attributes):
            continue
        group = budget.group_of(attributes)
        window = budget.window.span_at(now)
        if cap is not None:
            group = cap.group(budget, window.start, group)
        charges.append(Charge(budget, group, window, ledger_key(budget, group, window)))
    return tuple(charges)


MAX_CACHED_CHARGES: Final = 4096


class ChargeBook:
    """`charges_for` over fixed budgets, each charge made once per budget, group and window.

    A charge and its ledger key are never changed once made, so the calls of one group in one window
    share them: the group's name and the key's storage name are formatted once, not on every call.
    Groups whose attribute values are all strings (or unset) are kept, the `MAX_CACHED_CHARGES` most
    recently charged (a full book stays the same size, so memory stays flat); other values (numbers,
    booleans: True and 1 are equal keys but different groups) are charged as `charges_for` does.
    """

    __slots__ = ("_budgets", "_cap", "_charges")

    def __init__(self, budgets: Sequence[Budget], cap: GroupCap | None = None) -> None:
        self._budgets = tuple(budgets)
        self._cap = cap
        """With a cap, a group past its budget's `max_groups` is charged to the overflow group (a
        cached charge is one the cap already decided)."""
        self._charges: OrderedDict[tuple[int, int, tuple[AttributeValue | None, ...]], Charge] = OrderedDict()

    def charges_for(self, attributes: Mapping[str, AttributeValue], now: float) -> tuple[Charge, ...]:
        charges: list[Charge] = []
        for index, budget in enumerate(self._budgets):
            if not budget.matches(attributes):
                continue
            window = budget.window.span_at(now)
            values = tuple([attributes.get(key) for key in budget.group_by]) if budget.group_by else ()
            if not _cacheable(values):
                group = self._group(budget, window, attributes)
                charges.append(Charge(budget, group, window, ledger_key(budget, group, window)))
                continue
            cache_key = (index, window.start, values)
            charge = self._charges.get(cache_key)
            if charge is None:
                group = self._group(budget, window, attributes)
                charge = Charge(budget, group, window, ledger_key(budget, group, window))
                self._charges[cache_key] = charge
                if len(self._charges) > MAX_CACHED_CHARGES:
                    self._charges.popitem(last=False)
            else:
                self._charges.move_to_end(cache_key)
            charges.append(charge)
        return tuple(charges)

    def _group(self, budget: Budget, window: WindowSpan, attributes: Mapping[str, AttributeValue]) -> str:
        group = budget.group_of(attributes)
        return group if self._cap is None else self._cap.group(budget, window.start, group)


def _cacheable(values: tuple[AttributeValue | None, ...]) -> bool:
    # A loop rather than all() over a generator, which costs more than the few checks it would make.
    for value in values:  # noqa: SIM110
        if value is not None and type(value) is not str:
            return False
    return True


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
