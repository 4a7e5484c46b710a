"""The ledger's writer: calls are queued by the caller (an append, no disk write) and written to SQLite
in batches by one background thread.

The file is in WAL mode with a busy timeout, so that many processes can write one file and readers
never block writers. The queue is bounded: under a burst beyond it the oldest unwritten calls are
dropped and counted (logged at WARNING), rather than growing the process's memory without limit.
"""

from __future__ import annotations

import atexit
import logging
import sqlite3
import threading
import time
from collections import deque
from itertools import chain
from pathlib import Path
from typing import Final
from urllib.parse import parse_qs, urlsplit

from ..forksafe import hold_lock_across_fork, renew_after_fork
from .record import COLUMNS, SCHEMA, SCHEMA_VERSION, Row, SpanFacts, picodollars, row_from_facts, span_facts

_logger = logging.getLogger(__name__)
DEFAULT_MAX_QUEUED: Final = 100_000
FLUSH_INTERVAL_S: Final = 0.25
_BUSY_TIMEOUT_MS: Final = 10_000
_PREFIX: Final = "sqlite:///"
_ROW_LENGTH: Final = len(COLUMNS)
# Rows made and written per transaction: while calls are queued as fast as they are written, the
# writer's batch in memory stays this size rather than growing with the burst.
_ROWS_PER_TRANSACTION: Final = 4096


class LedgerURLError(ValueError):
    """A ledger URL that is not `sqlite:///path[?retention_days=N]`."""


def parse_url(url: str) -> tuple[Path, float | None]:
    """(the file, the retention in days or None). As in SQLAlchemy, `sqlite:///spend.db` is relative to
    the working directory and `sqlite:////var/lib/spend.db` absolute."""
    parts = urlsplit(url)
    if parts.scheme != "sqlite" or not url.startswith(_PREFIX) or len(parts.path) < 2 or parts.netloc:
        raise LedgerURLError(f"ledger={url!r}: expected 'sqlite:///path/spend.db'")
    retention: float | None = None
    for key, values in parse_qs(parts.query).items():
        if key != "retention_days":
            raise LedgerURLError(f"ledger={url!r}: unknown parameter {key!r} (retention_days=N is known)")
        try:
            retention = float(values[-1])
        except ValueError:
            raise LedgerURLError(f"ledger={url!r}: retention_days must be a number") from None
        if retention <= 0:
            raise LedgerURLError(f"ledger={url!r}: retention_days must be above 0")
    return Path(parts.path[1:]), retention


def connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, timeout=_BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
    with connection:
        connection.executescript(SCHEMA)
        if connection.execute("SELECT COUNT(*) FROM tokenbudget_ledger").fetchone()[0] == 0:
            connection.execute("INSERT INTO tokenbudget_ledger (version) VALUES (?)", (SCHEMA_VERSION,))
    if connection.execute("SELECT MAX(version) FROM tokenbudget_ledger").fetchone()[0] < SCHEMA_VERSION:
        _migrate(connection)
    return connection


def _migrate(connection: sqlite3.Connection) -> None:
    """Version 1 -> 2: the cost in whole picodollars, added and filled in for the rows already there.
    One write transaction, taken before looking, so that two writers opening an old file at once
    migrate it once; the other then finds it done."""
    connection.create_function("tokenbudget_picodollars", 1, picodollars, deterministic=True)
    connection.execute("BEGIN IMMEDIATE")
    try:
        columns = {row[1] for row in connection.execute("PRAGMA table_info(calls)")}
        if "cost_picodollars" not in columns:
            connection.execute("ALTER TABLE calls ADD COLUMN cost_picodollars INTEGER")
            connection.execute(
                "UPDATE calls SET cost_picodollars = tokenbudget_picodollars(cost_usd)"
                " WHERE cost_usd IS NOT NULL"
            )
        connection.execute("UPDATE tokenbudget_ledger SET version = ?", (SCHEMA_VERSION,))
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise


# Rows per INSERT statement. Python's sqlite3 lets other threads run while SQLite executes a statement,
# and takes the GIL back after it: with `executemany` (one execution per row) the writer would win the
# GIL back from a busy caller for every row, each time only after the interpreter's switch interval, and
# fall behind a program that makes calls without pause. 32 rows x 23 columns stay within the 999 bound
# parameters of the oldest SQLite builds.
_ROWS_PER_STATEMENT: Final = 32


def _insert_statement(rows: int) -> str:
    values = "(" + ", ".join("?" for _ in COLUMNS) + ")"
    return f"INSERT INTO calls ({', '.join(COLUMNS)}) VALUES {', '.join(values for _ in range(rows))}"  # noqa: S608


# One statement per power of two up to the chunk: a batch of any size is a few statements, all cached.
_STATEMENTS: Final = {
    1 << power: _insert_statement(1 << power) for power in range(_ROWS_PER_STATEMENT.bit_length())
}


def _insert(connection: sqlite3.Connection, rows: list[Row]) -> None:
    start, total = 0, len(rows)
    while start < total:
        size = min(_ROWS_PER_STATEMENT, 1 << ((total - start).bit_length() - 1))
        connection.execute(_STATEMENTS[size], tuple(chain.from_iterable(rows[start : start + size])))
        start += size


class LedgerWriter:
    """`add(span)` on the caller's thread; the rest on the writer's."""

    def __init__(self, url: str, *, max_queued: int = DEFAULT_MAX_QUEUED) -> None:
        self.path, self._retention_days = parse_url(url)
        self._connection = connect(self.path)
        # Spans' facts (`record.span_facts`) and rows made already (a refused call's), told apart by length.
        self._queue: deque[SpanFacts | Row] = deque(maxlen=max_queued)
        self._max_queued = max_queued
        self.dropped = 0
        self._dropped_reported = 0
        self.written = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        # Registered first, so that the child's new lock is in place before `_after_fork` starts the
        # child's writer thread.
        hold_lock_across_fork(self, "_lock")
        self._closed = False
        # The parent's connections, kept unclosed in a forked child (see `_after_fork`).
        self._inherited: list[sqlite3.Connection] = []
        self._apply_retention()
        self._thread = self._start_thread()
        atexit.register(self.close)
        renew_after_fork(self._after_fork)

    def _start_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self._run, name="tokenbudget-ledger", daemon=True)
        thread.start()
        return thread

    def _after_fork(self) -> None:
        """In a child forked from the writer's process (a prefork server's worker): the writer thread
        did not survive the fork (its lock was held across it and is new: `hold_lock_across_fork`), and
        the calls still queued are the parent's, which writes them. SQLite forbids using a connection
        in a process forked from the one that opened it: the child opens its own, and keeps the
        parent's unclosed (closing it there could disturb the parent's locks on the file)."""
        self._queue.clear()
        self.dropped = self._dropped_reported = self.written = 0
        self._stop = threading.Event()
        if self._closed:
            return
        self._inherited.append(self._connection)
        try:
            self._connection = connect(self.path)
        except sqlite3.Error as error:
            self._closed = True
            _logger.warning("tokenbudget ledger %s: not written by this forked process: %s", self.path, error)
            return
        self._thread = self._start_thread()

    def add(self, span: object) -> None:
        """An ended span (on the caller's thread: its facts are queued, the span is let go)."""
        try:
            facts = span_facts(span)
        except Exception:  # the ledger must never fail the call
            _logger.debug("tokenbudget ledger: a span could not be read", exc_info=True)
            return
        if facts is not None:
            self._enqueue(facts)

    def add_row(self, row: Row) -> None:
        """A row made already (a refused call's, which has no span), queued with the spans."""
        self._enqueue(row)

    def _enqueue(self, item: SpanFacts | Row) -> None:
        queue = self._queue
        if len(queue) == self._max_queued:
            self.dropped += 1
        queue.append(item)

    def _run(self) -> None:
        while not self._stop.wait(FLUSH_INTERVAL_S):
            self.flush()

    def flush(self) -> None:
        """Write what is queued (any thread; serialised), a bounded batch per transaction."""
        with self._lock:
            if self._closed:
                return
            while self._queue:
                self._write(self._take(_ROWS_PER_TRANSACTION))
            if self.dropped != self._dropped_reported:
                self._dropped_reported = self.dropped
                _logger.warning(
                    "tokenbudget ledger %s: %d call(s) dropped so far (more than %d waiting to be written)",
                    self.path,
                    self.dropped,
                    self._max_queued,
                )

    def _take(self, limit: int) -> list[Row]:
        rows: list[Row] = []
        queue = self._queue
        for _ in range(limit):
            try:
                item = queue.popleft()
            except IndexError:
                break
            try:
                row = item if len(item) == _ROW_LENGTH else row_from_facts(item)
            except Exception:  # one odd span must not lose the others
                _logger.debug("tokenbudget ledger: a span could not be read", exc_info=True)
                continue
            if row is not None:
                rows.append(row)
        return rows

    def _write(self, rows: list[Row]) -> None:
        if not rows:
            return
        try:
            with self._connection:
                _insert(self._connection, rows)
            self.written += len(rows)
        except sqlite3.Error as error:
            _logger.warning("tokenbudget ledger %s: %d call(s) not written: %s", self.path, len(rows), error)

    def _apply_retention(self) -> None:
        if self._retention_days is None:
            return
        horizon = int((time.time() - self._retention_days * 86400) * 1e9)
        with self._connection:
            self._connection.execute("DELETE FROM calls WHERE start_unix_nano < ?", (horizon,))

    def close(self) -> None:
        """Flush and stop (at uninstrument() and at exit); idempotent."""
        if self._closed:
            return
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self.flush()
        with self._lock:
            self._closed = True
            self._connection.close()
        atexit.unregister(self.close)
