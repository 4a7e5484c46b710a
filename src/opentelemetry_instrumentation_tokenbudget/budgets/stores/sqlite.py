"""A spend store in one SQLite file, shared by every process on the machine that opens it.

Durability: the file is in WAL mode with `synchronous=NORMAL`. SQLite's documentation of
`PRAGMA synchronous` states that transactions are durable across application crashes whatever the
synchronous setting, and that in WAL mode NORMAL only gives up durability against an operating-system
crash or power loss. That matches how it works: COMMIT has written the transaction into the WAL file
with write(2) before it returns, so the data sits in the kernel's page cache, which a `kill -9` of
the process does not touch; NORMAL only skips the fsync that would also carry it through a power cut.
So a settlement that `settle` has returned survives a SIGKILL of the process (the test suite kills a
writer and checks). Pass `synchronous="FULL"` to survive power loss too, for an fsync per commit.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from typing import Concatenate, Literal, ParamSpec, TypeVar

from ...forksafe import hold_lock_across_fork
from ..store import Balance, LedgerKey, ReserveOutcome, StoreError
from ._ledger import ZERO, after_settle, check_amount, check_keys, reserved_or_refused

_SYNCHRONOUS = ("NORMAL", "FULL", "EXTRA")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tokenbudget_ledger (
    key TEXT PRIMARY KEY,
    budget TEXT NOT NULL,
    grp TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    spent INTEGER NOT NULL,
    reserved INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tokenbudget_ledger_expires_at ON tokenbudget_ledger (expires_at);
"""

_SELECT_ONE = "SELECT key, spent, reserved, expires_at FROM tokenbudget_ledger WHERE key = ?"
# SQLite's default cap on the terms of one compound SELECT is 500.
_SELECT_AT_ONCE = 100

# An entry that is live and keeps its expires_at: the index on expires_at is left alone.
_UPDATE = "UPDATE tokenbudget_ledger SET spent = ?, reserved = ? WHERE key = ?"

# A new entry, or one that replaces an expired one (or changes its expires_at).
_UPSERT = """
INSERT INTO tokenbudget_ledger (key, budget, grp, window_start, expires_at, spent, reserved)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (key) DO UPDATE SET
    expires_at = excluded.expires_at, spent = excluded.spent, reserved = excluded.reserved
"""

_P = ParamSpec("_P")
_T = TypeVar("_T")

# (spent, reserved, expires_at) of an entry as the file holds it.
_Row = tuple[int, int, int]


@functools.cache
def _select(count: int) -> str:
    """One statement that looks up `count` keys: a primary-key look-up each, one step of the VM."""
    return " UNION ALL ".join([_SELECT_ONE] * count)


class SqliteStore:
    """One connection per store, used under a lock.

    A per-thread connection would buy nothing: every reserve and settle writes, and SQLite lets one
    writer in at a time per file anyway. Each reserve and settle is a `BEGIN IMMEDIATE` transaction,
    which takes the file's write lock before reading, so processes sharing the file serialise their
    check-then-update and none can admit a call on a balance another is changing. A transaction holds
    that lock for tens of microseconds; a process still waiting for it after `busy_timeout` seconds
    gets StoreError rather than holding up the user's call.

    A transaction is the same few statements whatever the number of keys: BEGIN IMMEDIATE, one SELECT
    of every key, an `executemany` of the entries that change (a second one when some are new), and
    COMMIT; each statement costs the sqlite3 module more than SQLite's look-up costs, so there is no
    statement per key. An entry that is live and keeps its `expires_at` is written by a plain UPDATE
    of its two amounts, which leaves the index on `expires_at` alone.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        clock: Callable[[], float] = time.time,
        busy_timeout: float = 1.0,
        synchronous: Literal["NORMAL", "FULL", "EXTRA"] = "NORMAL",
        sweep_interval: float = 60.0,
    ) -> None:
        if synchronous not in _SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {', '.join(_SYNCHRONOUS)}, not {synchronous!r}")
        self._path = os.fspath(path)
        self._clock = clock
        self._busy_timeout = busy_timeout
        self._synchronous = synchronous
        self._sweep_interval = sweep_interval
        self._next_sweep = 0.0
        self._lock = threading.Lock()
        # The connection is renewed by the first call in the child (below); the lock at once.
        hold_lock_across_fork(self, "_lock")
        self._closed = False
        # SQLite forbids using a connection in a process forked from the one that opened it (a server
        # that forks workers after instrumenting), so each process opens its own. The parent's
        # connection is kept unclosed in the child: closing it there could disturb the parent's locks.
        self._pid = os.getpid()
        self._inherited: list[sqlite3.Connection] = []
        with self._lock:
            self._connection = self._connect()
            self._cursor = self._connection.cursor()

    def reserve(self, keys: Sequence[LedgerKey], amount: int) -> ReserveOutcome:
        check_amount("amount", amount)
        check_keys(keys)
        return self._transaction(self._reserve, keys, amount)

    def settle(self, keys: Sequence[LedgerKey], reserved: int, actual: int) -> tuple[Balance, ...]:
        check_amount("reserved", reserved)
        check_amount("actual", actual)
        check_keys(keys)
        return self._transaction(self._settle, keys, reserved, actual)

    def release(self, keys: Sequence[LedgerKey], reserved: int) -> None:
        check_amount("reserved", reserved)
        check_keys(keys)
        self._transaction(self._settle, keys, reserved, 0)

    def balances(self, keys: Sequence[LedgerKey]) -> tuple[Balance, ...]:
        with self._lock:
            try:
                rows = self._read(self._usable_cursor(), keys, self._clock())
                return tuple(_balances(rows))
            except sqlite3.Error as exc:
                raise StoreError(f"SQLite spend store {self._path!r}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if os.getpid() == self._pid:
                self._connection.close()

    def _connect(self) -> sqlite3.Connection:
        try:
            # isolation_level=None: the module opens no transactions of its own, so BEGIN IMMEDIATE
            # below is the only one. check_same_thread=False: the lock, not the thread, guards it.
            connection = sqlite3.connect(
                self._path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite spend store {self._path!r}: {exc}") from exc
        try:
            self._set_up(connection)
        except sqlite3.Error as exc:
            connection.close()
            raise StoreError(f"cannot set up SQLite spend store {self._path!r}: {exc}") from exc
        return connection

    def _set_up(self, connection: sqlite3.Connection) -> None:
        # Switching a new file to WAL needs a moment of exclusive access, and SQLite does not call the
        # busy handler for it: processes opening a fresh file together retry here instead.
        deadline = time.monotonic() + self._busy_timeout
        while True:
            try:
                connection.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        connection.execute(f"PRAGMA synchronous={self._synchronous}")
        connection.executescript(_SCHEMA)

    def _usable_cursor(self) -> sqlite3.Cursor:
        if self._closed:
            raise StoreError(f"SQLite spend store {self._path!r} is closed")
        if os.getpid() != self._pid:
            self._inherited.append(self._connection)
            self._connection = self._connect()
            self._cursor = self._connection.cursor()
            self._pid = os.getpid()
        return self._cursor

    def _transaction(
        self, operation: Callable[Concatenate[sqlite3.Cursor, _P], _T], *args: _P.args, **kwargs: _P.kwargs
    ) -> _T:
        """`operation` in one BEGIN IMMEDIATE transaction, committed unless it raises."""
        with self._lock:
            cursor = self._usable_cursor()
            try:
                cursor.execute("BEGIN IMMEDIATE")
                try:
                    result = operation(cursor, *args, **kwargs)
                except BaseException:
                    cursor.execute("ROLLBACK")
                    raise
                cursor.execute("COMMIT")
                return result
            except sqlite3.Error as exc:
                if self._connection.in_transaction:
                    self._connection.execute("ROLLBACK")
                raise StoreError(f"SQLite spend store {self._path!r}: {exc}") from exc

    def _reserve(self, cursor: sqlite3.Cursor, keys: Sequence[LedgerKey], amount: int) -> ReserveOutcome:
        now = self._clock()
        rows = self._read(cursor, keys, now)
        before = _balances(rows)
        after = reserved_or_refused(keys, before, amount)
        if isinstance(after, int):
            return ReserveOutcome(balances=tuple(before), refused_by=after)
        self._write(cursor, keys, rows, before, after)
        self._sweep(cursor, now)
        return ReserveOutcome(balances=tuple(after), refused_by=None)

    def _settle(
        self, cursor: sqlite3.Cursor, keys: Sequence[LedgerKey], reserved: int, actual: int
    ) -> tuple[Balance, ...]:
        rows = self._read(cursor, keys, self._clock())
        before = _balances(rows)
        after = after_settle(keys, before, reserved, actual)
        self._write(cursor, keys, rows, before, after)
        return tuple(after)

    def _read(self, cursor: sqlite3.Cursor, keys: Sequence[LedgerKey], now: float) -> list[_Row | None]:
        """Each key's row, None for an entry that does not exist or whose expires_at has passed (it
        reads as absent even before a sweep deletes it)."""
        names = [key.storage_key for key in keys]
        found: dict[str, _Row] = {}
        for start in range(0, len(names), _SELECT_AT_ONCE):
            chunk = names[start : start + _SELECT_AT_ONCE]
            for name, spent, reserved, expires_at in cursor.execute(_select(len(chunk)), chunk):
                if expires_at > now:
                    found[name] = (spent, reserved, expires_at)
        return [found.get(name) for name in names]

    def _write(
        self,
        cursor: sqlite3.Cursor,
        keys: Sequence[LedgerKey],
        rows: Sequence[_Row | None],
        before: Sequence[Balance],
        after: Sequence[Balance],
    ) -> None:
        updates: list[tuple[int, int, str]] = []
        upserts: list[tuple[str, str, str, int, int, int, int]] = []
        for index, key in enumerate(keys):
            # One row and balance per key in each (indexed, as in `_ledger`). Only entries that
            # change: a release from an entry that expired must not recreate it.
            row = rows[index]
            old = before[index]
            new = after[index]
            if new == old:
                continue
            if row is not None and row[2] == key.expires_at:
                updates.append((new.spent, new.reserved, key.storage_key))
            else:
                upserts.append(
                    (
                        key.storage_key,
                        key.budget,
                        key.group,
                        key.window_start,
                        key.expires_at,
                        new.spent,
                        new.reserved,
                    )
                )
        if updates:
            cursor.executemany(_UPDATE, updates)
        if upserts:
            cursor.executemany(_UPSERT, upserts)

    def _sweep(self, cursor: sqlite3.Cursor, now: float) -> None:
        # Inside a reserve's transaction, at most once a minute per process: a few rows at a time, and
        # no separate write for it to wait on.
        if now < self._next_sweep:
            return
        self._next_sweep = now + self._sweep_interval
        cursor.execute("DELETE FROM tokenbudget_ledger WHERE expires_at <= ?", (now,))


def _balances(rows: Sequence[_Row | None]) -> list[Balance]:
    return [ZERO if row is None else Balance(spent=row[0], reserved=row[1]) for row in rows]
