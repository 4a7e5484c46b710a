"""The arithmetic every spend store applies, kept in one place so that the stores cannot disagree.

The Redis store does the same arithmetic in Lua (it must run inside the server to be atomic); the
shared test suite holds all three stores to these rules.
"""

from __future__ import annotations

from collections.abc import Sequence

from ...pricing import MAX_PICODOLLARS
from ..store import AmountError, Balance, LedgerKey, StoreError

# SQLite INTEGER and Redis HINCRBY are signed 64-bit and cannot hold more; every store refuses a balance
# past this before writing anything, so that a call over several entries is never half applied.
MAX_BALANCE = MAX_PICODOLLARS

ZERO = Balance(spent=0, reserved=0)


def is_amount(value: object) -> bool:
    return type(value) is int and 0 <= value <= MAX_BALANCE


def check_amount(name: str, value: int) -> None:
    # is_amount's test, written out: every reserve and settle of every store checks its amounts.
    if type(value) is not int or not 0 <= value <= MAX_BALANCE:
        raise AmountError(f"{name} must be an int of picodollars in [0, 2**63 - 1], not {value!r}")


def check_keys(keys: Sequence[LedgerKey]) -> None:
    # The same entry twice in one call would be checked once but charged twice. (A key's limit is
    # checked when the key is made.) Most calls fall under one or two budgets: those need no set.
    count = len(keys)
    if count < 2 or (count == 2 and keys[0].storage_key != keys[1].storage_key):
        return
    if len({key.storage_key for key in keys}) != count:
        seen: set[str] = set()
        for key in keys:
            if key.storage_key in seen:
                raise ValueError(f"ledger key {key.storage_key!r} appears twice in one call")
            seen.add(key.storage_key)


def reserved_or_refused(
    keys: Sequence[LedgerKey], balances: Sequence[Balance], amount: int
) -> int | list[Balance]:
    """The index of the first blocking key whose limit `amount` would pass, or else the balances once
    `amount` is reserved on every entry; StoreError if one would overflow (and none refuses)."""
    result = []
    past: LedgerKey | None = None
    # Indexed, not zip(strict=True): on every call's path, zip's keyword costs more than the loop.
    # A store reads one balance per key (an IndexError otherwise).
    for index, key in enumerate(keys):
        balance = balances[index]
        spent = balance.spent
        reserved = balance.reserved + amount
        if key.blocking and spent + reserved > key.limit:
            return index
        if reserved > MAX_BALANCE and past is None:
            past = key
        result.append(Balance(spent, reserved))
    if past is not None:
        raise StoreError(f"ledger entry {past.storage_key!r} would pass 2**63 - 1 picodollars")
    return result


def after_settle(
    keys: Sequence[LedgerKey], balances: Sequence[Balance], reserved: int, actual: int
) -> list[Balance]:
    """The balances once the reservation is moved to spend; StoreError if one would overflow."""
    # Never below zero: a reservation the store no longer holds (its entry expired, or a memory store
    # restarted) must not turn into credit that admits calls past the limit.
    result = []
    for index, key in enumerate(keys):
        balance = balances[index]  # one per key, as above
        spent = balance.spent + actual
        if spent > MAX_BALANCE:
            raise StoreError(f"ledger entry {key.storage_key!r} would pass 2**63 - 1 picodollars")
        held = balance.reserved
        result.append(Balance(spent, held - reserved if held > reserved else 0))
    return result
