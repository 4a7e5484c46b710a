"""The contract between budget enforcement and the places where spend is kept.

Money crosses this boundary as whole picodollars (10^-12 USD): prices per million tokens have at most
a few decimals, so every per-token price is a whole number of picodollars, sums stay exact in SQLite
INTEGER and Redis INCRBY (64-bit: up to 9.2 million USD per ledger entry), and no float ever decides
whether a call is admitted.

A call may fall under several budgets at once (a global daily limit and a per-user one). It is
admitted by all of them or by none: `reserve` checks and reserves every entry in one atomic step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


# Built on every call and every settlement, never changed once built, and not frozen for all that
# (see `usage.TokenUsage`).
@dataclass(slots=True)
class LedgerKey:
    """One budget's ledger entry for one group in one window.

    `window_start` identifies the window (epoch seconds, UTC); `expires_at` is when the entry may be
    dropped by the store (the window's end plus a grace period, so late settlements still land).
    `blocking` is False for warn-only budgets: they are counted but never refuse.
    """

    budget: str
    group: str
    window_start: int
    expires_at: int
    limit: int
    blocking: bool
    storage_key: str = field(init=False, repr=False, compare=False)
    """The entry's name in a store, made once: a settlement reads it several times."""

    def __post_init__(self) -> None:
        if self.limit < 0:
            raise ValueError(f"ledger key {self.budget}|{self.group} has a negative limit {self.limit}")
        self.storage_key = f"{self.budget}|{self.group}|{self.window_start}"


@dataclass(slots=True)
class Balance:
    """What a ledger entry holds, in picodollars: settled spend and reservations still open."""

    spent: int
    reserved: int


@dataclass(slots=True)
class ReserveOutcome:
    """The answer to `reserve`.

    `balances` are the entries' balances after the call (before it, when refused), in the order of the
    keys given. `refused_by` is the index of the first blocking key whose limit the amount would pass,
    or None when the call was admitted and the amount reserved on every key.
    """

    balances: tuple[Balance, ...]
    refused_by: int | None

    @property
    def admitted(self) -> bool:
        return self.refused_by is None


class AmountError(ValueError):
    """An amount that no ledger may hold (negative, not an int, past 2**63 - 1): a bug or a malformed
    response upstream of the store, never the store's failure, so `on_store_error` does not apply."""


class StoreError(Exception):
    """The store could not be reached or answered wrongly; the caller applies its on_store_error policy."""


class SpendStore(Protocol):
    """Where spend is kept. Every method is safe to call from many threads at once."""

    def reserve(self, keys: Sequence[LedgerKey], amount: int) -> ReserveOutcome:
        """Atomically: refuse if `spent + reserved + amount > limit` for any blocking key, else add
        `amount` to `reserved` on every key. Raises StoreError when the store fails."""
        ...

    def settle(self, keys: Sequence[LedgerKey], reserved: int, actual: int) -> tuple[Balance, ...]:
        """Move a reservation to spend: `reserved -= reserved_amount; spent += actual` on every key.

        `reserved` may be 0 to record spend that was never reserved (a call made while the store was
        down, or a span priced after the fact). Returns the balances after the change."""
        ...

    def release(self, keys: Sequence[LedgerKey], reserved: int) -> None:
        """Drop a reservation whose call failed before it cost anything."""
        ...

    def balances(self, keys: Sequence[LedgerKey]) -> tuple[Balance, ...]:
        """Read the entries' balances (zero for entries that do not exist)."""
        ...

    def close(self) -> None:
        """Release connections and files. Idempotent."""
        ...
