"""Spend that the store could not take, kept until it can.

Under ``on_store_error="open"`` a call is admitted while the store is down, and when it ends its
settlement fails too. Rather than lose that spend, the guard journals the settlement (the ledger
entries, the reservation to drop and the cost to add) and writes the journal as soon as the store
answers again, so that after an outage the store holds what the spans say was spent.

The journal is in this process's memory and bounded (`MAX_ENTRIES` settlements by default): an
outage longer than that many calls drops the oldest entries, counted and logged, and a process that
exits during the outage takes its journal with it.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from ..forksafe import renew_after_fork
from .store import LedgerKey, SpendStore

_logger = logging.getLogger(__name__)

MAX_ENTRIES: Final = 10_000


@dataclass(slots=True)
class _Entry:
    keys: tuple[LedgerKey, ...]
    reserved: int
    actual: int


class SpendJournal:
    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.entries: deque[_Entry] = deque()
        """The settlements waiting, oldest first: read on every call's path (empty but after an
        outage), changed only here."""
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self._dropped = 0
        renew_after_fork(self._after_fork)

    def __len__(self) -> int:
        return len(self.entries)

    def add(self, keys: Sequence[LedgerKey], reserved: int, actual: int) -> None:
        with self._lock:
            self.entries.append(_Entry(tuple(keys), reserved, actual))
            if len(self.entries) <= self._max_entries:
                return
            self.entries.popleft()
            self._dropped += 1
            dropped = self._dropped
        if dropped == 1 or dropped % 1000 == 0:
            _logger.warning(
                "tokenbudget: the spend journal is full (%d settlements waiting for the spend store);"
                " %d of the oldest were dropped, and budgets will not count them",
                self._max_entries,
                dropped,
            )

    def write(self, store: SpendStore) -> int:
        """Settle the journaled spend in `store`, oldest first; stop at the first failure (the entry
        stays). Returns how many were written."""
        written = 0
        # One writer at a time, so that no entry is written twice.
        if not self._lock.acquire(blocking=False):
            return 0
        try:
            while self.entries:
                entry = self.entries[0]
                try:
                    store.settle(entry.keys, entry.reserved, entry.actual)
                except ValueError:
                    _logger.debug("tokenbudget: a journaled settlement was invalid", exc_info=True)
                except Exception:
                    break
                self.entries.popleft()
                written += 1
        finally:
            self._lock.release()
        if written:
            _logger.warning(
                "tokenbudget: %d settlements journaled while the spend store was failing are written", written
            )
        return written

    def _after_fork(self) -> None:
        # The parent writes its own journal; a child starts empty.
        self._lock = threading.Lock()
        self.entries.clear()
