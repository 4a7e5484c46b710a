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

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Literal

from ...forksafe import renew_locks_after_fork
from ..store import Balance, LedgerKey, ReserveOutcome, StoreError
from ._ledger import ZERO, after_reserve, after_settle, check_amount, check_keys, first_refusal

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

# An entry past its expires_at reads as absent even before a sweep deletes it.
_SELECT = "SELECT spent, reserved FROM tokenbudget_ledger WHERE key = ? AND expires_at > ?"

_UPSERT = """
INSERT INTO tokenbudget_ledger (key, budget, grp, window_start, expires_at, spent, reserved)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (key) DO UPDATE SET
    expires_at = excluded.expires_at, spent = excluded.spent, reserved = excluded.reserved
"""


class SqliteStore:
    """One connection per store, used under a lock.

    A per-thread connection would buy nothing: every reserve and settle writes, and SQLite lets one
    writer in at a time per file anyway. Each reserve and settle is a `BEGIN IMMEDIATE` transaction,
    which takes the file's write lock before reading, so processes sharing the file serialise their
    check-then-update and none can admit a call on a balance another is changing. A transaction holds
    that lock for tens of microseconds; a process still waiting for it after `busy_timeout` seconds
    gets StoreError rather than holding up the user's call.
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
        # The connection is renewed by the first call in the child (below); the lock must be at once.
        renew_locks_after_fork(self, "_lock")
        self._closed = False
        # SQLite forbids using a connection in a process forked from the one that opened it (a server
        # that forks workers after instrumenting), so each process opens its own. The parent's
        # connection is kept unclosed in the child: closing it there could disturb the parent's locks.
        self._pid = os.getpid()
        self._inherited: list[sqlite3.Connection] = []
        with self._lock:
            self._connection = self._connect()

    def reserve(self, keys: Sequence[LedgerKey], amount: int) -> ReserveOutcome:
        check_amount("amount", amount)
        check_keys(keys)
        with self._transaction() as connection:
            before = self._read(connection, keys)
            refused_by = first_refusal(keys, before, amount)
            if refused_by is not None:
                return ReserveOutcome(balances=tuple(before), refused_by=refused_by)
            after = after_reserve(keys, before, amount)
            self._write(connection, keys, before, after)
            self._sweep(connection)
            return ReserveOutcome(balances=tuple(after), refused_by=None)

    def settle(self, keys: Sequence[LedgerKey], reserved: int, actual: int) -> tuple[Balance, ...]:
        check_amount("reserved", reserved)
        check_amount("actual", actual)
        check_keys(keys)
        with self._transaction() as connection:
            return self._settle(connection, keys, reserved, actual)

    def release(self, keys: Sequence[LedgerKey], reserved: int) -> None:
        check_amount("reserved", reserved)
        check_keys(keys)
        with self._transaction() as connection:
            self._settle(connection, keys, reserved, 0)

    def balances(self, keys: Sequence[LedgerKey]) -> tuple[Balance, ...]:
        with self._lock:
            try:
                return tuple(self._read(self._usable_connection(), keys))
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

    def _usable_connection(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreError(f"SQLite spend store {self._path!r} is closed")
        if os.getpid() != self._pid:
            self._inherited.append(self._connection)
            self._connection = self._connect()
            self._pid = os.getpid()
        return self._connection

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            connection = self._usable_connection()
            try:
                connection.execute("BEGIN IMMEDIATE")
                try:
                    yield connection
                except BaseException:
                    connection.execute("ROLLBACK")
                    raise
                connection.execute("COMMIT")
            except sqlite3.Error as exc:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise StoreError(f"SQLite spend store {self._path!r}: {exc}") from exc

    def _read(self, connection: sqlite3.Connection, keys: Sequence[LedgerKey]) -> list[Balance]:
        now = self._clock()
        result = []
        for key in keys:
            row = connection.execute(_SELECT, (key.storage_key, now)).fetchone()
            result.append(ZERO if row is None else Balance(spent=row[0], reserved=row[1]))
        return result

    def _settle(
        self, connection: sqlite3.Connection, keys: Sequence[LedgerKey], reserved: int, actual: int
    ) -> tuple[Balance, ...]:
        before = self._read(connection, keys)
        after = after_settle(keys, before, reserved, actual)
        self._write(connection, keys, before, after)
        return tuple(after)

    def _write(
        self,
        connection: sqlite3.Connection,
        keys: Sequence[LedgerKey],
        before: Sequence[Balance],
        after: Sequence[Balance],
    ) -> None:
        # Only entries that change: a release from an entry that expired must not recreate it.
        connection.executemany(
            _UPSERT,
            [
                (
                    key.storage_key,
                    key.budget,
                    key.group,
                    key.window_start,
                    key.expires_at,
                    new.spent,
                    new.reserved,
                )
                for key, old, new in zip(keys, before, after, strict=True)
                if new != old
            ],
        )

    def _sweep(self, connection: sqlite3.Connection) -> None:
        # Inside a reserve's transaction, at most once a minute per process: a few rows at a time, and
        # no separate write for it to wait on.
        now = self._clock()
        if now < self._next_sweep:
            return
        self._next_sweep = now + self._sweep_interval
        connection.execute("DELETE FROM tokenbudget_ledger WHERE expires_at <= ?", (now,))
