"""Saying loudly, but not on every call, that the spend store is failing, and when it is back."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Final

from ..forksafe import renew_locks_after_fork

_logger = logging.getLogger(__name__)

REPEAT_SECONDS: Final = 60.0


class StoreHealth:
    """An ERROR when the store starts failing, a WARNING a minute while it goes on, one when it is back.

    While it fails, warn budgets count nothing and blocking budgets follow `on_store_error`.
    """

    def __init__(
        self, store: str, on_store_error: str, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._store = store
        self._policy = (
            "blocking budgets refuse every call they cover (on_store_error='closed')"
            if on_store_error == "closed"
            else "blocking budgets admit calls unchecked (on_store_error='open')"
        )
        self._monotonic = monotonic
        self._lock = threading.Lock()
        renew_locks_after_fork(self, "_lock")
        self.failures = 0
        """Operations failed since the store last answered: read on every call's path, changed only here."""
        self._next_report = 0.0

    def failed(self, operation: str, error: BaseException) -> None:
        with self._lock:
            self.failures += 1
            failures = self.failures
            now = self._monotonic()
            if failures > 1 and now < self._next_report:
                return
            self._next_report = now + REPEAT_SECONDS
        if failures == 1:
            _logger.error(
                "tokenbudget: the spend store %s failed on %s (%s: %s); until it answers again, %s,"
                " and warn budgets count nothing",
                self._store,
                operation,
                type(error).__name__,
                error,
                self._policy,
            )
        else:
            _logger.warning(
                "tokenbudget: the spend store %s is still failing (%s, the last on %s: %s); %s",
                self._store,
                _operations(failures),
                operation,
                error,
                self._policy,
            )

    def succeeded(self) -> None:
        if self.failures == 0:
            return
        with self._lock:
            failures, self.failures = self.failures, 0
        if failures:
            _logger.warning(
                "tokenbudget: the spend store %s answers again after %s; calls admitted meanwhile were not"
                " reserved, and the spend of those that settled meanwhile is written from the journal",
                self._store,
                _operations(failures),
            )


def _operations(count: int) -> str:
    return "1 failed operation" if count == 1 else f"{count} failed operations"
