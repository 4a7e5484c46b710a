"""A spend store held in this process's memory: budgets for one process, lost when it exits."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ...forksafe import renew_locks_after_fork
from ..store import Balance, LedgerKey, ReserveOutcome, StoreError
from ._ledger import ZERO, after_reserve, after_settle, check_amount, check_keys, first_refusal


@dataclass(slots=True)
class _Entry:
    balance: Balance
    expires_at: int


class MemoryStore:
    """A dict behind one lock; every operation is a few dict look-ups, so the lock is held briefly.

    Entries whose `expires_at` has passed read as absent. They are dropped when touched, and all of
    them at most once per `sweep_interval` seconds, so a long-running process that moves through many
    windows does not keep every past window's entries.
    """

    def __init__(self, *, clock: Callable[[], float] = time.time, sweep_interval: float = 60.0) -> None:
        self._clock = clock
        self._sweep_interval = sweep_interval
        self._lock = threading.Lock()
        renew_locks_after_fork(self, "_lock")
        self._entries: dict[str, _Entry] = {}
        self._next_sweep = clock() + sweep_interval
        self._closed = False

    def __len__(self) -> int:
        """Entries held, including expired ones not yet dropped."""
        with self._lock:
            return len(self._entries)

    def reserve(self, keys: Sequence[LedgerKey], amount: int) -> ReserveOutcome:
        check_amount("amount", amount)
        check_keys(keys)
        with self._lock:
            before = self._read(keys)
            refused_by = first_refusal(keys, before, amount)
            if refused_by is not None:
                return ReserveOutcome(balances=tuple(before), refused_by=refused_by)
            after = after_reserve(keys, before, amount)
            self._write(keys, before, after)
            return ReserveOutcome(balances=tuple(after), refused_by=None)

    def settle(self, keys: Sequence[LedgerKey], reserved: int, actual: int) -> tuple[Balance, ...]:
        check_amount("reserved", reserved)
        check_amount("actual", actual)
        check_keys(keys)
        with self._lock:
            return self._settle(keys, reserved, actual)

    def release(self, keys: Sequence[LedgerKey], reserved: int) -> None:
        check_amount("reserved", reserved)
        check_keys(keys)
        with self._lock:
            self._settle(keys, reserved, 0)

    def balances(self, keys: Sequence[LedgerKey]) -> tuple[Balance, ...]:
        with self._lock:
            return tuple(self._read(keys))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._entries.clear()

    def _settle(self, keys: Sequence[LedgerKey], reserved: int, actual: int) -> tuple[Balance, ...]:
        before = self._read(keys)
        after = after_settle(keys, before, reserved, actual)
        self._write(keys, before, after)
        return tuple(after)

    def _read(self, keys: Sequence[LedgerKey]) -> list[Balance]:
        if self._closed:
            raise StoreError("the memory spend store is closed")
        now = self._clock()
        if now >= self._next_sweep:
            self._sweep(now)
        result = []
        for key in keys:
            entry = self._entries.get(key.storage_key)
            if entry is not None and entry.expires_at <= now:
                del self._entries[key.storage_key]
                entry = None
            result.append(ZERO if entry is None else entry.balance)
        return result

    def _write(self, keys: Sequence[LedgerKey], before: Sequence[Balance], after: Sequence[Balance]) -> None:
        # Only entries that change: a release from an entry that expired must not recreate it.
        for key, old, new in zip(keys, before, after, strict=True):
            if new != old:
                self._entries[key.storage_key] = _Entry(balance=new, expires_at=key.expires_at)

    def _sweep(self, now: float) -> None:
        expired = [name for name, entry in self._entries.items() if entry.expires_at <= now]
        for name in expired:
            del self._entries[name]
        self._next_sweep = now + self._sweep_interval
