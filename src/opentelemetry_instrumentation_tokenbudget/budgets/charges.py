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
MAX_CACHED_CALLS: Final = 4096


@dataclass(slots=True)
class _CallCharges:
    """The charges of every call whose attributes read the same, while `now` is in all their windows."""

    charges: tuple[Charge, ...]
    valid_from: float
    valid_until: float


class ChargeBook:
    """`charges_for` over fixed budgets, each charge made once per budget, group and window.

    A charge and its ledger key are never changed once made, so the calls of one group in one window
    share them: the group's name and the key's storage name are formatted once, not on every call.
    Groups whose attribute values are all strings (or unset) are kept, the `MAX_CACHED_CHARGES` most
    recently charged (a full book stays the same size, so memory stays flat); other values (numbers,
    booleans: True and 1 are equal keys but different groups) are charged as `charges_for` does.

    Calls are kept too: what a call is charged depends only on the values of the attributes that the
    budgets match and group on, and on which windows hold `now`. A call whose values were seen, in
    the windows of the charges then made, gets those charges with one look-up instead of one per
    budget (the `MAX_CACHED_CALLS` most recent sets of values, under the same rule on their types).
    """

    __slots__ = ("_budgets", "_calls", "_cap", "_charges", "_read")

    def __init__(self, budgets: Sequence[Budget], cap: GroupCap | None = None) -> None:
        self._budgets = tuple(budgets)
        self._cap = cap
        """With a cap, a group past its budget's `max_groups` is charged to the overflow group (a
        cached charge is one the cap already decided)."""
        self._charges: OrderedDict[tuple[int, int, tuple[AttributeValue | None, ...]], Charge] = OrderedDict()
        self._read = tuple(
            dict.fromkeys(name for budget in self._budgets for name in (*budget.match, *budget.group_by))
        )
        """Every attribute that a budget matches or groups on: a call's charges depend on these alone."""
        self._calls: OrderedDict[tuple[AttributeValue | None, ...], _CallCharges] = OrderedDict()

    def charges_for(self, attributes: Mapping[str, AttributeValue], now: float) -> tuple[Charge, ...]:
        values = tuple([attributes.get(name) for name in self._read])
        if not _cacheable(values):
            return self._charge(attributes, now)
        calls = self._calls
        known = calls.get(values)
        if known is not None and known.valid_from <= now < known.valid_until:
            # Not contextlib.suppress, a context manager on every call's path.
            try:  # noqa: SIM105
                calls.move_to_end(values)
            except KeyError:
                pass  # dropped by another thread meanwhile; the charges stay right
            return known.charges
        charges = self._charge(attributes, now)
        valid_from = max([charge.window.start for charge in charges], default=-_FOREVER)
        valid_until = min(
            [_FOREVER if charge.window.end is None else charge.window.end for charge in charges],
            default=_FOREVER,
        )
        calls.pop(values, None)  # a stale entry: its replacement goes last, as the most recent
        calls[values] = _CallCharges(charges, valid_from, valid_until)
        while len(calls) > MAX_CACHED_CALLS:
            calls.popitem(last=False)
        return charges

    def _charge(self, attributes: Mapping[str, AttributeValue], now: float) -> tuple[Charge, ...]:
        charges: list[Charge] = []
        book = self._charges
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
            charge = book.get(cache_key)
            if charge is None:
                group = self._group(budget, window, attributes)
                charge = Charge(budget, group, window, ledger_key(budget, group, window))
                book[cache_key] = charge
                while len(book) > MAX_CACHED_CHARGES:
                    book.popitem(last=False)
            else:
                try:  # noqa: SIM105
                    book.move_to_end(cache_key)
                except KeyError:
                    pass  # dropped by another thread meanwhile
            charges.append(charge)
        return tuple(charges)

    def _group(self, budget: Budget, window: WindowSpan, attributes: Mapping[str, AttributeValue]) -> str:
        group = budget.group_of(attributes)
        return group if self._cap is None else self._cap.group(budget, window.start, group)


_FOREVER: Final = float("inf")


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
