"""What every spend store must do, run against the memory, SQLite and Redis stores alike."""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from opentelemetry_instrumentation_tokenbudget.budgets.store import (
    Balance,
    LedgerKey,
    SpendStore,
    StoreError,
)
from opentelemetry_instrumentation_tokenbudget.budgets.stores import open_store
from opentelemetry_instrumentation_tokenbudget.budgets.stores.memory import MemoryStore
from opentelemetry_instrumentation_tokenbudget.budgets.stores.redis import RedisStore
from opentelemetry_instrumentation_tokenbudget.budgets.stores.sqlite import SqliteStore
from tests import conftest_redis
from tests.redis_server import RedisServer, running_redis_server

# pytest finds fixtures by name in the test module: these make the Redis ones available here.
redis_server = conftest_redis.redis_server
redis_url = conftest_redis.redis_url

START = 1_700_000_000.0
USD = 10**12
MAX = 2**63 - 1


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Subject:
    """A store under test, and how to read and move its clock (Redis keeps its own: we wait)."""

    name: str
    store: SpendStore
    now: Callable[[], float]
    advance: Callable[[float], None]

    def key(
        self,
        budget: str = "daily",
        limit: int = 1000,
        *,
        group: str = "",
        blocking: bool = True,
        lifetime: int = 3600,
    ) -> LedgerKey:
        window_start = int(self.now())
        return LedgerKey(
            budget=budget,
            group=group,
            window_start=window_start,
            expires_at=window_start + lifetime,
            limit=limit,
            blocking=blocking,
        )


@pytest.fixture(params=["memory", "sqlite", "redis"])
def subject(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Subject]:
    if request.param == "redis":
        store = open_store(request.getfixturevalue("redis_url"))
        subject = Subject("redis", store, time.time, time.sleep)
    else:
        clock = FakeClock(START)

        def advance(seconds: float) -> None:
            clock.now += seconds

        url = "memory" if request.param == "memory" else f"sqlite:///{tmp_path / 'spend.db'}"
        subject = Subject(request.param, open_store(url, clock=clock), clock, advance)
    yield subject
    subject.store.close()


def test_admits_up_to_the_limit_exactly(subject: Subject) -> None:
    key = subject.key(limit=1000)
    first = subject.store.reserve([key], 400)
    assert first.admitted
    assert first.balances == (Balance(spent=0, reserved=400),)
    assert subject.store.settle([key], 400, 400) == (Balance(spent=400, reserved=0),)

    second = subject.store.reserve([key], 600)

    assert second.refused_by is None
    assert second.balances == (Balance(spent=400, reserved=600),)
    assert subject.store.balances([key]) == (Balance(spent=400, reserved=600),)


def test_refuses_past_the_limit_and_reserves_nothing(subject: Subject) -> None:
    key = subject.key(limit=1000)
    subject.store.reserve([key], 600)

    outcome = subject.store.reserve([key], 401)

    assert not outcome.admitted
    assert outcome.refused_by == 0
    assert outcome.balances == (Balance(spent=0, reserved=600),)
    assert subject.store.balances([key]) == (Balance(spent=0, reserved=600),)
    assert subject.store.reserve([key], 400).admitted


def test_open_reservations_count_against_the_limit(subject: Subject) -> None:
    key = subject.key(limit=1000)
    subject.store.settle([key], 0, 300)
    subject.store.reserve([key], 300)

    assert subject.store.reserve([key], 401).refused_by == 0
    assert subject.store.reserve([key], 400).admitted
    assert subject.store.balances([key]) == (Balance(spent=300, reserved=700),)


def test_all_or_nothing_when_one_of_two_keys_is_at_its_limit(subject: Subject) -> None:
    roomy = subject.key("global", limit=10 * USD)
    full = subject.key("per-user", limit=1000, group="alice")
    subject.store.settle([full], 0, 900)

    refused = subject.store.reserve([roomy, full], 200)

    assert refused.refused_by == 1
    assert refused.balances == (Balance(spent=0, reserved=0), Balance(spent=900, reserved=0))
    assert subject.store.balances([roomy, full]) == (
        Balance(spent=0, reserved=0),
        Balance(spent=900, reserved=0),
    )

    admitted = subject.store.reserve([roomy, full], 100)

    assert admitted.admitted
    assert subject.store.balances([roomy, full]) == (
        Balance(spent=0, reserved=100),
        Balance(spent=900, reserved=100),
    )


def test_refused_by_names_the_first_blocking_key_over_its_limit(subject: Subject) -> None:
    warn_only = subject.key("warn", limit=0, blocking=False)
    first = subject.key("first", limit=50)
    second = subject.key("second", limit=50)

    outcome = subject.store.reserve([warn_only, first, second], 51)

    assert outcome.refused_by == 1


def test_non_blocking_keys_never_refuse_but_are_counted(subject: Subject) -> None:
    warn_only = subject.key("warn", limit=100, blocking=False)
    blocking = subject.key("hard", limit=10_000)

    assert subject.store.reserve([warn_only, blocking], 250).admitted
    subject.store.settle([warn_only, blocking], 250, 260)
    again = subject.store.reserve([warn_only, blocking], 250)

    assert again.admitted
    assert again.balances == (Balance(spent=260, reserved=250), Balance(spent=260, reserved=250))


def test_settle_moves_the_reservation_to_spend(subject: Subject) -> None:
    key = subject.key(limit=1000)
    subject.store.reserve([key], 500)
    subject.store.reserve([key], 200)

    after = subject.store.settle([key], 500, 321)

    assert after == (Balance(spent=321, reserved=200),)
    assert subject.store.balances([key]) == (Balance(spent=321, reserved=200),)


def test_settle_records_spend_above_the_reservation_and_the_limit(subject: Subject) -> None:
    key = subject.key(limit=1000)
    subject.store.reserve([key], 900)

    assert subject.store.settle([key], 900, 1500) == (Balance(spent=1500, reserved=0),)
    assert subject.store.reserve([key], 0).refused_by == 0


def test_settle_without_reservation_records_spend(subject: Subject) -> None:
    key = subject.key()

    assert subject.store.settle([key], 0, 123) == (Balance(spent=123, reserved=0),)
    assert subject.store.balances([key]) == (Balance(spent=123, reserved=0),)


def test_reserved_never_goes_below_zero(subject: Subject) -> None:
    key = subject.key(limit=1000)
    subject.store.reserve([key], 100)

    assert subject.store.settle([key], 300, 50) == (Balance(spent=50, reserved=0),)
    assert subject.store.reserve([key], 950).admitted


def test_release_drops_the_reservation(subject: Subject) -> None:
    key = subject.key(limit=1000)
    subject.store.reserve([key], 300)
    subject.store.reserve([key], 600)
    assert not subject.store.reserve([key], 101).admitted

    subject.store.release([key], 300)

    assert subject.store.balances([key]) == (Balance(spent=0, reserved=600),)
    assert subject.store.reserve([key], 400).admitted


def test_unknown_entries_read_as_zero(subject: Subject) -> None:
    assert subject.store.balances([subject.key("a"), subject.key("b")]) == (
        Balance(spent=0, reserved=0),
        Balance(spent=0, reserved=0),
    )
    assert subject.store.balances([]) == ()


def test_entries_expire_with_their_window(subject: Subject) -> None:
    # Redis expires keys by its own clock: keep the wait under a second and a quarter.
    start = subject.now()
    expires_at = int(start) + 1
    key = LedgerKey("daily", "", int(start), expires_at, limit=1000, blocking=True)
    subject.store.settle([key], 0, 700)
    subject.store.reserve([key], 200)
    assert not subject.store.reserve([key], 101).admitted

    subject.advance(expires_at - subject.now() + 0.2)

    assert subject.store.balances([key]) == (Balance(spent=0, reserved=0),)
    assert subject.store.reserve([key], 1000).balances == (Balance(spent=0, reserved=1000),)


def test_a_late_release_does_not_revive_an_expired_entry(subject: Subject) -> None:
    start = subject.now()
    key = LedgerKey("daily", "", int(start), int(start) + 1, limit=1000, blocking=True)
    subject.store.reserve([key], 200)
    subject.advance(int(start) + 1 - subject.now() + 0.2)

    subject.store.release([key], 200)

    assert subject.store.balances([key]) == (Balance(spent=0, reserved=0),)


def test_sums_are_exact_past_two_to_the_53(subject: Subject) -> None:
    # 2**53 picodollars is about 9,007 USD: a double would already round these.
    amounts = [2**53 + 1 + 7919 * i for i in range(40)]
    key = subject.key(limit=sum(amounts))

    for amount in amounts:
        assert subject.store.reserve([key], amount).admitted

    assert subject.store.balances([key]) == (Balance(spent=0, reserved=sum(amounts)),)
    assert subject.store.reserve([key], 1).refused_by == 0
    assert subject.store.reserve([key], 0).admitted
    assert subject.store.settle([key], sum(amounts), sum(amounts) - 3) == (
        Balance(spent=sum(amounts) - 3, reserved=0),
    )
    assert subject.store.reserve([key], 3).admitted
    assert subject.store.reserve([key], 1).refused_by == 0


@pytest.mark.parametrize(
    ("held", "limit"),
    [
        (2**62, 2**62 + 1),  # a double cannot tell 2**62 + 1 from 2**62 + 2
        (999_999_999_999_999_999, 10**18),  # the low nine digits carry into the high part
        (MAX - 1, MAX),
    ],
)
def test_the_last_picodollar_decides(subject: Subject, held: int, limit: int) -> None:
    key = subject.key(limit=limit)
    assert subject.store.reserve([key], held).admitted

    assert subject.store.reserve([key], 2).refused_by == 0
    assert subject.store.reserve([key], 1).balances == (Balance(spent=0, reserved=limit),)
    assert subject.store.reserve([key], 1).refused_by == 0
    assert subject.store.balances([key]) == (Balance(spent=0, reserved=limit),)


def test_limits_above_64_bits_are_accepted(subject: Subject) -> None:
    key = subject.key(limit=10**30)

    assert subject.store.reserve([key], MAX).admitted
    assert subject.store.balances([key]) == (Balance(spent=0, reserved=MAX),)


def test_overflowing_64_bits_is_a_store_error_that_writes_nothing(subject: Subject) -> None:
    other = subject.key("other", limit=USD)
    warn_only = subject.key("warn", limit=0, blocking=False)
    subject.store.settle([warn_only], 0, MAX - 10)
    subject.store.reserve([warn_only], MAX - 10)

    with pytest.raises(StoreError, match="2\\*\\*63 - 1"):
        subject.store.reserve([other, warn_only], 11)
    with pytest.raises(StoreError, match="2\\*\\*63 - 1"):
        subject.store.settle([other, warn_only], 0, 11)

    assert subject.store.balances([other, warn_only]) == (
        Balance(spent=0, reserved=0),
        Balance(spent=MAX - 10, reserved=MAX - 10),
    )
    assert subject.store.reserve([other, warn_only], 10).admitted


def test_a_refusal_is_the_answer_even_where_another_entry_would_overflow(subject: Subject) -> None:
    warn_only = subject.key("warn", limit=0, blocking=False)
    full = subject.key("full", limit=100)
    subject.store.reserve([warn_only], MAX - 10)

    outcome = subject.store.reserve([warn_only, full], 101)

    assert outcome.refused_by == 1
    assert outcome.balances == (Balance(spent=0, reserved=MAX - 10), Balance(spent=0, reserved=0))
    assert subject.store.balances([warn_only, full]) == outcome.balances


def test_a_ledger_key_with_a_negative_limit_cannot_be_made() -> None:
    with pytest.raises(ValueError, match="negative limit -1"):
        LedgerKey(budget="daily", group="", window_start=0, expires_at=60, limit=-1, blocking=True)


def test_an_empty_call_is_admitted(subject: Subject) -> None:
    outcome = subject.store.reserve([], 5)

    assert outcome.admitted
    assert outcome.balances == ()
    assert subject.store.settle([], 5, 5) == ()


@pytest.mark.parametrize("amount", [-1, 2**63, True, 1.5])
def test_amounts_must_be_64_bit_picodollar_ints(subject: Subject, amount: object) -> None:
    key = subject.key()

    with pytest.raises(ValueError, match="picodollars"):
        subject.store.reserve([key], amount)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="picodollars"):
        subject.store.settle([key], 0, amount)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="picodollars"):
        subject.store.release([key], amount)  # type: ignore[arg-type]


def test_the_same_entry_twice_in_one_call_is_refused(subject: Subject) -> None:
    key = subject.key(limit=1000)

    with pytest.raises(ValueError, match="twice"):
        subject.store.reserve([key, key], 600)
    assert subject.store.balances([key]) == (Balance(spent=0, reserved=0),)


def test_close_is_idempotent_and_final(subject: Subject) -> None:
    key = subject.key()
    subject.store.close()
    subject.store.close()

    with pytest.raises(StoreError, match="closed"):
        subject.store.reserve([key], 1)
    with pytest.raises(StoreError, match="closed"):
        subject.store.balances([key])
    with pytest.raises(StoreError, match="closed"):
        subject.store.reserve([], 1)


# --- memory ---------------------------------------------------------------------------------------


def test_memory_drops_past_windows_without_being_asked() -> None:
    clock = FakeClock(START)
    store = MemoryStore(clock=clock, sweep_interval=60)
    for window in range(50):
        start = int(START) + window
        store.settle([LedgerKey("minute", "", start, start + 60, 10, True)], 0, 1)
    assert len(store) == 50

    clock.now += 200
    store.balances([])

    assert len(store) == 0


# --- SQLite ---------------------------------------------------------------------------------------


def _rows(path: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as connection:
        return connection.execute(
            "SELECT key, budget, grp, window_start, expires_at, spent, reserved FROM tokenbudget_ledger"
            " ORDER BY key"
        ).fetchall()


def test_sqlite_keeps_one_row_per_entry_with_exact_integers(tmp_path: Path) -> None:
    path = tmp_path / "spend.db"
    store = SqliteStore(path, clock=FakeClock(START))
    key = LedgerKey("daily", "alice", 1_699_999_200, 1_700_090_000, MAX, True)
    store.reserve([key], MAX - 5)
    store.settle([key], 7, 2)
    store.close()

    assert _rows(path) == [
        ("daily|alice|1699999200", "daily", "alice", 1_699_999_200, 1_700_090_000, 2, MAX - 12)
    ]
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_sqlite_deletes_expired_rows_at_most_once_per_interval(tmp_path: Path) -> None:
    path = tmp_path / "spend.db"
    clock = FakeClock(START)
    store = SqliteStore(path, clock=clock, sweep_interval=60)
    old = LedgerKey("minute", "", int(START), int(START) + 10, 100, True)
    store.reserve([old], 5)  # the first reserve sweeps, and puts the next sweep a minute on
    clock.now += 20
    newer = LedgerKey("minute", "", int(START) + 20, int(START) + 600, 100, True)
    store.reserve([newer], 5)
    assert [row[0] for row in _rows(path)] == [old.storage_key, newer.storage_key]
    assert store.balances([old]) == (Balance(spent=0, reserved=0),)

    clock.now += 40
    store.reserve([newer], 5)

    assert [row[0] for row in _rows(path)] == [newer.storage_key]
    store.close()


def test_sqlite_a_new_expiry_for_a_live_entry_is_written_with_its_balance(tmp_path: Path) -> None:
    # A live entry is written by an UPDATE of its amounts; one whose expires_at changes (the budget's
    # grace period changed) takes the new expires_at too, in the same call as a new entry.
    path = tmp_path / "spend.db"
    store = SqliteStore(path, clock=FakeClock(START))
    daily = LedgerKey("daily", "", int(START), int(START) + 100, 1000, True)
    store.reserve([daily], 10)
    store.settle([daily], 10, 7)
    longer = LedgerKey("daily", "", int(START), int(START) + 900, 1000, True)
    user = LedgerKey("per-user", "bob", int(START), int(START) + 100, 1000, False)

    assert store.reserve([longer, user], 5).balances == (Balance(7, 5), Balance(0, 5))
    assert store.settle([longer, user], 5, 4) == (Balance(11, 0), Balance(4, 0))
    store.close()

    assert _rows(path) == [
        ("daily||1700000000", "daily", "", int(START), int(START) + 900, 11, 0),
        ("per-user|bob|1700000000", "per-user", "bob", int(START), int(START) + 100, 4, 0),
    ]


def test_sqlite_a_call_of_hundreds_of_keys(tmp_path: Path) -> None:
    # One SELECT reads a hundred keys at most (SQLite caps the terms of a compound SELECT).
    store = SqliteStore(tmp_path / "spend.db", clock=FakeClock(START))
    keys = [LedgerKey(f"b{i}", "", int(START), int(START) + 100, 1000, True) for i in range(250)]
    store.settle(keys[::2], 0, 990)

    refused = store.reserve(keys[1::2] + keys[248:249], 11)
    assert refused.refused_by == 125
    assert store.reserve(keys, 10).admitted
    assert store.balances(keys) == tuple(
        Balance(990, 10) if i % 2 == 0 else Balance(0, 10) for i in range(250)
    )
    store.close()


def test_sqlite_stores_on_one_file_share_balances(tmp_path: Path) -> None:
    path = tmp_path / "spend.db"
    first, second = SqliteStore(path), SqliteStore(path)
    key = LedgerKey("daily", "", int(time.time()), int(time.time()) + 3600, 1000, True)
    first.reserve([key], 700)

    assert second.reserve([key], 301).refused_by == 0
    assert second.reserve([key], 300).balances == (Balance(spent=0, reserved=1000),)
    first.close()
    second.close()


def test_sqlite_store_opens_its_own_connection_in_a_forked_child(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "spend.db")
    key = LedgerKey("daily", "", int(time.time()), int(time.time()) + 3600, 1000, True)
    store.reserve([key], 100)

    pid = os.fork()
    if pid == 0:  # the child: report through the exit code, never return into pytest
        try:
            balances = store.reserve([key], 200).balances
            # Sharing the parent's connection would work here too, by luck: check it was not used.
            os._exit(0 if balances == (Balance(0, 300),) and len(store._inherited) == 1 else 1)
        finally:
            os._exit(2)
    _, status = os.waitpid(pid, 0)

    assert os.waitstatus_to_exitcode(status) == 0
    assert store.settle([key], 100, 100) == (Balance(spent=100, reserved=200),)
    store.close()


def test_sqlite_store_error_when_the_file_cannot_be_opened(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open"):
        SqliteStore(tmp_path / "missing-directory" / "spend.db")


# --- Redis ----------------------------------------------------------------------------------------


def _redis_key(url: str) -> tuple[redis.Redis, LedgerKey]:
    now = int(time.time())
    return redis.Redis.from_url(url), LedgerKey("daily", "alice", now, now + 3600, MAX, True)


def test_redis_entries_are_integer_hashes_that_expire_with_their_window(redis_url: str) -> None:
    client, key = _redis_key(redis_url)
    store = RedisStore.from_url(redis_url, prefix="tb-test:")
    store.reserve([key], MAX - 5)
    store.settle([key], 7, 2)

    name = f"tb-test:{key.storage_key}"
    assert client.keys("*") == [name.encode()]
    assert client.hgetall(name) == {b"spent": b"2", b"reserved": str(MAX - 12).encode()}
    assert client.expiretime(name) == key.expires_at
    store.close()
    client.close()


def test_redis_one_round_trip_per_reserve_settle_and_release(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, key = _redis_key(redis_url)
    other = LedgerKey("global", "", key.window_start, key.expires_at, MAX, True)
    store = RedisStore.from_url(redis_url)
    store.reserve([key, other], 1)  # loads the scripts and opens the connection
    store.settle([key, other], 1, 1)
    client.config_resetstat()

    sent: list[bytes] = []
    original = redis.connection.AbstractConnection.send_packed_command

    def counting(self, command, check_health=True):
        sent.append(command)
        original(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
    store.reserve([key, other], 5)
    assert len(sent) == 1
    store.settle([key, other], 5, 4)
    assert len(sent) == 2
    store.release([key, other], 0)
    assert len(sent) == 3
    store.balances([key, other])
    assert len(sent) == 4
    monkeypatch.undo()

    stats = client.info("commandstats")
    assert stats["cmdstat_evalsha"]["calls"] == 3
    assert "cmdstat_script|load" not in stats
    assert "cmdstat_eval" not in stats
    store.close()
    client.close()


def test_redis_reloads_its_scripts_after_a_script_flush(redis_url: str) -> None:
    client, key = _redis_key(redis_url)
    store = RedisStore.from_url(redis_url)
    store.reserve([key], 1)
    client.script_flush()

    assert store.reserve([key], 2).balances == (Balance(spent=0, reserved=3),)
    store.close()
    client.close()


def test_redis_a_wrong_value_in_an_entry_is_a_store_error(redis_url: str) -> None:
    client, key = _redis_key(redis_url)
    client.hset(f"tokenbudget:{key.storage_key}", "spent", "twelve")
    store = RedisStore.from_url(redis_url)

    with pytest.raises(StoreError, match="not a non-negative integer"):
        store.reserve([key], 1)
    store.close()
    client.close()


def test_redis_store_leaves_a_client_it_was_given_open(redis_url: str) -> None:
    client, key = _redis_key(redis_url)
    store = RedisStore(client, prefix="x:")
    store.settle([key], 0, 9)
    store.close()

    assert client.hget(f"x:{key.storage_key}", "spent") == b"9"
    client.close()


def test_redis_a_reply_that_comes_too_late_never_answers_a_later_call(redis_server: RedisServer) -> None:
    # A server of its own: pausing the session's would hold up other tests.
    with running_redis_server() as server:
        client, key = _redis_key(server.url)
        store = RedisStore.from_url(server.url, socket_timeout=0.2)
        store.reserve([key], 1)
        server.pause()
        try:
            with pytest.raises(StoreError, match="Timeout"):
                store.reserve([key], 2)
        finally:
            server.resume()
        # The paused reserve runs once the server resumes; its reply must go nowhere.
        deadline = time.monotonic() + 5
        while client.hget(f"tokenbudget:{key.storage_key}", "reserved") != b"3":
            assert time.monotonic() < deadline
            time.sleep(0.01)

        assert store.reserve([key], 4).balances == (Balance(spent=0, reserved=7),)
        assert store.settle([key], 7, 5) == (Balance(spent=5, reserved=0),)
        store.close()
        client.close()


def test_redis_a_connection_the_server_closed_while_idle_is_opened_anew(redis_url: str) -> None:
    client, key = _redis_key(redis_url)
    store = RedisStore.from_url(redis_url)
    store.reserve([key], 1)
    # What a restarted server, or its timeout for idle clients, leaves the store holding.
    assert client.client_kill_filter(_type="normal", skipme=True) >= 1

    assert store.reserve([key], 2).balances == (Balance(spent=0, reserved=3),)
    assert store.balances([key]) == (Balance(spent=0, reserved=3),)
    store.close()
    client.close()


def test_redis_names_outside_ascii_are_the_same_entry_everywhere(redis_url: str) -> None:
    client, key = _redis_key(redis_url)
    zoe = LedgerKey("per-user", "user.id=zoë", key.window_start, key.expires_at, 1000, True)
    store = RedisStore.from_url(redis_url)
    store.reserve([zoe], 600)
    store.settle([zoe], 600, 400)

    assert client.hgetall(f"tokenbudget:{zoe.storage_key}") == {b"spent": b"400", b"reserved": b"0"}
    assert store.balances([zoe]) == (Balance(spent=400, reserved=0),)
    assert store.reserve([zoe], 601).refused_by == 0
    store.close()
    client.close()


def test_redis_store_hangs_up_its_connections_when_closed(redis_url: str) -> None:
    client, key = _redis_key(redis_url)
    before = len(client.client_list())
    store = RedisStore.from_url(redis_url)
    store.reserve([key], 1)
    store.balances([key])  # the same connection: one per thread calling at once
    assert len(client.client_list()) == before + 1

    store.close()

    assert len(client.client_list()) == before
    client.close()


# --- open_store -----------------------------------------------------------------------------------


def test_open_store_memory() -> None:
    store = open_store("memory")
    assert isinstance(store, MemoryStore)
    store.close()


def test_open_store_sqlite_relative_and_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    key = LedgerKey("daily", "", int(time.time()), int(time.time()) + 60, 1000, True)
    relative = open_store("sqlite:///relative.db")
    relative.settle([key], 0, 11)
    absolute = open_store(f"sqlite:///{tmp_path / 'absolute.db'}")
    absolute.settle([key], 0, 22)
    relative.close()
    absolute.close()

    assert _rows(tmp_path / "relative.db")[0][5] == 11
    assert _rows(tmp_path / "absolute.db")[0][5] == 22


def test_open_store_redis_passes_options(redis_url: str) -> None:
    client, key = _redis_key(redis_url)
    store = open_store(redis_url, prefix="opened:")
    assert isinstance(store, RedisStore)
    store.settle([key], 0, 5)
    store.close()

    assert client.hget(f"opened:{key.storage_key}", "spent") == b"5"
    client.close()


@pytest.mark.parametrize("url", ["postgres://db/spend", "sqlite://relative.db", "sqlite:///", "", "mem"])
def test_open_store_refuses_unknown_urls_by_name(url: str) -> None:
    with pytest.raises(ValueError, match="unknown spend store URL") as raised:
        open_store(url)
    assert repr(url) in str(raised.value)


def test_open_store_does_not_echo_a_password() -> None:
    with pytest.raises(ValueError, match="unknown spend store URL") as raised:
        open_store("redsi://user:s3cret@cache:6379/0")
    assert "s3cret" not in str(raised.value)
    assert "'redsi://user:***@cache:6379/0'" in str(raised.value)


def test_open_store_names_the_extra_when_redis_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    monkeypatch.delitem(sys.modules, "opentelemetry_instrumentation_tokenbudget.budgets.stores.redis")

    with pytest.raises(ImportError, match=r"opentelemetry-instrumentation-tokenbudget\[redis\]"):
        open_store("redis://127.0.0.1:1/0")
