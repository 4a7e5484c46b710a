"""The arithmetic every spend store applies, kept in one place so that the stores cannot disagree.

The Redis store does the same arithmetic in Lua (it must run inside the server to be atomic); the
shared test suite holds all three stores to these rules.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..store import AmountError, Balance, LedgerKey, StoreError

# SQLite INTEGER and Redis HINCRBY are signed 64-bit and cannot hold more; every store refuses a balance
# past this before writing anything, so that a call over several entries is never half applied.
MAX_BALANCE = 2**63 - 1

ZERO = Balance(spent=0, reserved=0)


def is_amount(value: object) -> bool:
    return type(value) is int and 0 <= value <= MAX_BALANCE


def check_amount(name: str, value: int) -> None:
    if not is_amount(value):
        raise AmountError(f"{name} must be an int of picodollars in [0, 2**63 - 1], not {value!r}")


def check_keys(keys: Sequence[LedgerKey]) -> None:
    # The same entry twice in one call would be checked once but charged twice.
    names = {key.storage_key for key in keys}
    if len(names) != len(keys):
        seen: set[str] = set()
        for key in keys:
            if key.storage_key in seen:
                raise ValueError(f"ledger key {key.storage_key!r} appears twice in one call")
            seen.add(key.storage_key)
    for key in keys:
        if key.limit < 0:
            raise ValueError(f"ledger key {key.storage_key!r} has a negative limit {key.limit}")


def first_refusal(keys: Sequence[LedgerKey], balances: Sequence[Balance], amount: int) -> int | None:
    for index, (key, balance) in enumerate(zip(keys, balances, strict=True)):
        if key.blocking and balance.spent + balance.reserved + amount > key.limit:
            return index
    return None


def after_reserve(keys: Sequence[LedgerKey], balances: Sequence[Balance], amount: int) -> list[Balance]:
    """The balances once `amount` is reserved on every entry; StoreError if one would overflow."""
    result = [Balance(spent=b.spent, reserved=b.reserved + amount) for b in balances]
    _check_fits(keys, result)
    return result


def after_settle(
    keys: Sequence[LedgerKey], balances: Sequence[Balance], reserved: int, actual: int
) -> list[Balance]:
    """The balances once the reservation is moved to spend; StoreError if one would overflow."""
    # Never below zero: a reservation the store no longer holds (its entry expired, or a memory store
    # restarted) must not turn into credit that admits calls past the limit.
    result = [Balance(spent=b.spent + actual, reserved=max(0, b.reserved - reserved)) for b in balances]
    _check_fits(keys, result)
    return result


def _check_fits(keys: Sequence[LedgerKey], balances: Sequence[Balance]) -> None:
    for key, balance in zip(keys, balances, strict=True):
        if balance.spent > MAX_BALANCE or balance.reserved > MAX_BALANCE:
            raise StoreError(f"ledger entry {key.storage_key!r} would pass 2**63 - 1 picodollars")
