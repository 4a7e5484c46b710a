"""How many groups a budget with `group_by` keeps: at most `Budget.max_groups` per window.

Group values come from the calls' attributes, which may come from outside (an id in a request, W3C
baggage): a caller that sends a new id with every request would otherwise get a fresh limit each
time. The first `max_groups` groups of a window keep their own ledger entries; every later one is
charged to the one `OVERFLOW_GROUP` entry, under the same limit, so that rotating ids can spend at
most `(max_groups + 1) * limit` in a window.

The groups seen are counted in this process: processes that share a store each admit their own
first `max_groups` (the bound is then per process).
"""

from __future__ import annotations

import threading
from typing import Final

from ..forksafe import renew_locks_after_fork
from .spec import Budget

OVERFLOW_GROUP: Final = "<overflow>"
"""The group of calls past a budget's `max_groups` (real groups always read ``key=value``)."""

# Windows remembered per budget: the current one and the one before, whose late settlements still land.
_WINDOWS_KEPT: Final = 2


class GroupCap:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        renew_locks_after_fork(self, "_lock")
        self._seen: dict[str, dict[int, set[str]]] = {}

    def group(self, budget: Budget, window_start: int, group: str) -> str:
        """`group`, or `OVERFLOW_GROUP` when the budget's window already has `max_groups` others."""
        if not budget.group_by:
            return group
        with self._lock:
            windows = self._seen.setdefault(budget.name, {})
            seen = windows.get(window_start)
            if seen is None:
                seen = windows[window_start] = set()
                while len(windows) > _WINDOWS_KEPT:
                    del windows[min(windows)]
            if group in seen:
                return group
            if len(seen) < budget.max_groups:
                seen.add(group)
                return group
            return OVERFLOW_GROUP
