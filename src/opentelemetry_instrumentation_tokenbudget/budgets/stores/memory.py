"""A spend store held in this process's memory: budgets for one process, lost when it exits."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from ...forksafe import renew_locks_after_fork
from ..store import Balance, LedgerKey, ReserveOutcome, StoreError
from ._ledger import ZERO, after_settle, check_amount, check_keys, reserved_or_refused


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
        self._balances: dict[str, Balance] = {}
        self._expiry: dict[str, int] = {}
        """When each entry of `_balances` may be dropped: a key's `expires_at`, the same on every call."""
        self._next_sweep = clock() + sweep_interval
        self._closed = False

    def __len__(self) -> int:
        """Entries held, including expired ones not yet dropped."""
        with self._lock:
            return len(self._balances)

    # reserve and settle take the lock by hand: on every call's path, `with` costs a lock's
    # __exit__ call with three arguments more than acquire() and release().

    def reserve(self, keys: Sequence[LedgerKey], amount: int) -> ReserveOutcome:
        check_amount("amount", amount)
        check_keys(keys)
        lock = self._lock
        lock.acquire()
        try:
            before = self._read(keys)
            after = reserved_or_refused(keys, before, amount)
            if isinstance(after, int):
                return ReserveOutcome(tuple(before), after)
            self._write(keys, before, after)
        finally:
            lock.release()
        return ReserveOutcome(tuple(after), None)

    def settle(self, keys: Sequence[LedgerKey], reserved: int, actual: int) -> tuple[Balance, ...]:
        check_amount("reserved", reserved)
        check_amount("actual", actual)
        check_keys(keys)
        lock = self._lock
        lock.acquire()
        try:
            return self._settle(keys, reserved, actual)
        finally:
            lock.release()

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
            self._balances.clear()
            self._expiry.clear()

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
        balances = self._balances
        result = []
        for key in keys:
            name = key.storage_key
            balance = balances.get(name)
            if balance is None:
                result.append(ZERO)
            elif self._expiry[name] <= now:
                self._drop(name)
                result.append(ZERO)
            else:
                result.append(balance)
        return result

    def _write(self, keys: Sequence[LedgerKey], before: Sequence[Balance], after: Sequence[Balance]) -> None:
        # Only entries that change: a release from an entry that expired must not recreate it. Indexed,
        # as in `_ledger`: one balance per key in each.
        for index, key in enumerate(keys):
            old = before[index]
            new = after[index]
            if new.spent != old.spent or new.reserved != old.reserved:
                if old is ZERO:
                    self._expiry[key.storage_key] = key.expires_at
                self._balances[key.storage_key] = new

    def _drop(self, name: str) -> None:
        del self._balances[name]
        del self._expiry[name]

    def _sweep(self, now: float) -> None:
        for name in [name for name, expires_at in self._expiry.items() if expires_at <= now]:
            self._drop(name)
        self._next_sweep = now + self._sweep_interval
