"""The SQLite spend ledger that `instrument(ledger="sqlite:///path")` writes."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from ...ledger.record import COLUMNS
from ...ledger.writer import parse_url
from ...pricing import picodollars_to_usd
from .. import focus
from ..focus import Group, GroupKey
from ..report import TIME_KEYS, Aggregate
from ..spend_record import KEY_ALIASES, UNSET, SpendRecord
from .otlp_json import SourceError

# What `calls` yields, in this order: what `tokenbudget export --format csv` writes of each call
# (`export.CALL_COLUMNS`), selected in the shape its lines are made from, by SQLite rather than by
# Python per call: the token counts joined as SQLite writes integers, the ids joined when they are
# lower-case hex (nothing to quote; a JSON array otherwise).
CSV_SELECT: Final = (
    "start_unix_nano",
    "duration_s",
    "provider",
    "operation",
    "request_model",
    "response_model",
    "input_tokens || ',' || output_tokens || ',' || cache_read_tokens || ',' || cache_write_tokens"
    " || ',' || reasoning_tokens",
    "cost_usd",
    "estimated",
    "price_source",
    "price_version",
    "price_inferred",
    "attribution",
    "CASE WHEN trace_id || span_id GLOB '*[^0-9a-f]*' THEN json_array(trace_id, span_id)"
    " ELSE trace_id || ',' || span_id END",
    "error_type",
    "refused",
)
# A record's columns: the first schema version's (the cost in picodollars repeats `cost_usd`).
_RECORD_COLUMNS: Final = COLUMNS[: COLUMNS.index("cost_picodollars")]
_PERIOD_NANOSECONDS: Final = {"day": 86_400 * 10**9, "hour": 3_600 * 10**9}
_ROWS_PER_READER: Final = 250_000
_MAX_READERS: Final = 4
_COLUMN_OF: Final = {
    "gen_ai.request.model": "request_model",
    "gen_ai.provider.name": "provider",
    "gen_ai.operation.name": "operation",
}


def path_of(url_or_path: str) -> Path:
    """`sqlite:///relative.db`, `sqlite:////absolute.db` (as in SQLAlchemy) or a plain path."""
    if url_or_path.startswith("sqlite:"):
        try:
            return parse_url(url_or_path)[0]
        except ValueError as error:
            raise SourceError(str(error)) from None
    if "://" in url_or_path:
        raise SourceError(f"--ledger {url_or_path}: expected sqlite:///path/spend.db or a file's path")
    return Path(url_or_path)


def _key_sql(key: str) -> str:
    """The SQL expression of a report key (an alias, `day`, `hour` or an attribute name)."""
    if key in TIME_KEYS:
        return f"strftime('{TIME_KEYS[key]}', start_unix_nano / 1000000000, 'unixepoch')"
    name = KEY_ALIASES.get(key, key)
    column = _COLUMN_OF.get(name)
    if column is not None:
        return column
    return f"coalesce(json_extract(attribution, {_quote('$.' + json.dumps(name))}), {_quote(UNSET)})"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _open(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise SourceError(f"{path}: no such ledger file")
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    known = connection.execute(
        "SELECT name FROM sqlite_master WHERE type='table' AND name='tokenbudget_ledger'"
    ).fetchone()
    if known is None:
        connection.close()
        raise SourceError(f"{path}: not a tokenbudget ledger (no tokenbudget_ledger table)")
    return connection


def _picodollars_sql(connection: sqlite3.Connection) -> str:
    """The cost in whole picodollars, or NULL everywhere in a file of schema version 1 (which a
    read-only connection must read as it is: only a writer migrates)."""
    columns = {row[1] for row in connection.execute("PRAGMA table_info(calls)")}
    return "cost_picodollars" if "cost_picodollars" in columns else "NULL"


def _filter(
    where: Sequence[tuple[str, str]],
    since: float | None,
    until: float | None,
    *,
    refused: bool = False,
) -> tuple[str, list[object]]:
    """The WHERE clause and its parameters. The rows of refused calls (nothing sent, nothing spent) are
    left out of what sums spend, and kept (`refused=True`) where each row is listed. No bound on the
    start time unless one is asked for: SQLite would then read the rows through the time index, one
    lookup each, rather than in one pass over the table."""
    conditions: list[str] = []
    parameters: list[object] = []
    if since is not None:
        conditions.append("start_unix_nano >= ?")
        parameters.append(int(since * 1e9))
    if until is not None:
        conditions.append("start_unix_nano < ?")
        parameters.append(int(until * 1e9))
    if not refused:
        conditions.append("refused = 0")
    for name, value in where:
        conditions.append(f"{_key_sql(name)} = ?")
        parameters.append(value)
    return " AND ".join(conditions) if conditions else "1", parameters


def _readers(rows: int) -> int:
    """How many connections sum a ledger at once, each over its own range of rows: SQLite runs a
    query on one core, and Python's sqlite3 lets other threads run meanwhile."""
    return max(1, min(_MAX_READERS, os.cpu_count() or 1, rows // _ROWS_PER_READER))


@dataclass(frozen=True)
class _GroupedSum:
    """The grouped sum of `_summed_rows`, as run over one range of rows."""

    path: Path
    picodollars: str
    keys: Sequence[str]
    conditions: str
    parameters: Sequence[object]

    def over(self, rowids: tuple[int, int]) -> list[tuple[Any, ...]]:
        return _summed_range(self, rowids)


def _summed_range(grouped: _GroupedSum, rowids: tuple[int, int]) -> list[tuple[Any, ...]]:
    keys, conditions = grouped.keys, grouped.conditions
    with_keys = ", ".join(keys)
    connection = _open(grouped.path)
    try:
        for whole in (grouped.picodollars, "NULL"):
            inexact = f"CASE WHEN {whole} IS NULL THEN cost_usd END"
            query = (
                # Every expression is built from constants and quoted names; values are bound.
                f"SELECT {with_keys}{', ' if keys else ''}{inexact}, COUNT(*), SUM(input_tokens),"  # noqa: S608
                " SUM(output_tokens), SUM(cache_read_tokens), SUM(cache_write_tokens), SUM(estimated),"
                f" SUM(cost_usd IS NULL), SUM({whole}) FROM calls"
                f" WHERE rowid BETWEEN ? AND ? AND {conditions}"
                f" GROUP BY {with_keys}{', ' if keys else ''}{inexact}"
            )
            try:
                return connection.execute(query, [*rowids, *grouped.parameters]).fetchall()
            except sqlite3.OperationalError as error:
                if str(error) != "integer overflow" or whole == "NULL":
                    raise
        raise AssertionError("unreachable: the text sums cannot overflow")
    finally:
        connection.close()


def _summed_rows(
    path: Path, keys: Sequence[str], conditions: str, parameters: Sequence[object]
) -> list[tuple[Any, ...]]:
    """Per group of the `keys` expressions: the keys, then calls, input, output, cache read and cache
    write tokens, estimated calls, unpriced calls and the cost (Decimal).

    SQLite sums the cost as integer picodollars where a row has them; the rows whose cost is not a
    whole number of picodollars (or a file without the column) are grouped by their text cost as
    well, and multiplied out exactly here. SQLite's SUM of integers raises on passing 2**63 - 1
    picodollars (about 9.2 million USD in one group): then every group of that range of rows is
    summed the second way. A large ledger is summed in ranges of rows by several connections at once,
    and the ranges' groups added up here (each range is read at the moment its reader starts)."""
    try:
        connection = _open(path)
        try:
            picodollars = _picodollars_sql(connection)
            low, high = connection.execute("SELECT MIN(rowid), MAX(rowid) FROM calls").fetchone()
        finally:
            connection.close()
        if low is None:
            return []
        readers = _readers(high - low + 1)
        step = (high - low) // readers + 1
        ranges = [(low + index * step, min(high, low + (index + 1) * step - 1)) for index in range(readers)]
        grouped = _GroupedSum(path, picodollars, keys, conditions, parameters)
        if readers == 1:
            parts = [grouped.over(ranges[0])]
        else:
            with ThreadPoolExecutor(readers, thread_name_prefix="tokenbudget-report") as pool:
                parts = list(pool.map(grouped.over, ranges))
    except sqlite3.DatabaseError as error:
        raise SourceError(f"{path}: cannot read it as a ledger ({error})") from None
    width = len(keys)
    merged: dict[tuple[Any, ...], list[Any]] = {}
    for part in parts:
        for row in part:
            group = row[: width + 1]
            sums = merged.get(group)
            if sums is None:
                merged[group] = list(row[width + 1 :])
                continue
            for index, value in enumerate(row[width + 1 : width + 8]):
                sums[index] += value
            if row[width + 8] is not None:
                sums[7] = row[width + 8] if sums[7] is None else sums[7] + row[width + 8]
    summed = []
    for group, (calls, *counts, unpriced, whole) in merged.items():
        inexact_cost = group[width]
        cost = Decimal(0) if whole is None else picodollars_to_usd(whole)
        if inexact_cost is not None:
            cost += Decimal(inexact_cost) * (calls - unpriced)
        summed.append((*group[:width], calls, *counts, unpriced, cost))
    return summed


def summed(
    url_or_path: str,
    keys: Sequence[str],
    *,
    where: Sequence[tuple[str, str]] = (),
    since: float | None = None,
    until: float | None = None,
) -> dict[tuple[str, ...], Aggregate]:
    """The figures per group of `keys` over the calls started in [since, until) that match `where`,
    summed by SQLite (the cost exactly: see `_summed_rows`)."""
    path = path_of(url_or_path)
    conditions, parameters = _filter(where, since, until)
    width = len(keys)
    groups: dict[tuple[str, ...], Aggregate] = {}
    for row in _summed_rows(path, [_group_sql(key) for key in keys], conditions, parameters):
        key = tuple(_group_label(name, value) for name, value in zip(keys, row[:width], strict=True))
        calls, inputs, outputs, cache_read, cache_write, estimated, unpriced, cost = row[width:]
        group = groups.get(key)
        if group is None:
            group = groups[key] = Aggregate()
        group.calls += calls
        group.input_tokens += inputs
        group.output_tokens += outputs
        group.cache_read_tokens += cache_read
        group.cache_write_tokens += cache_write
        group.estimated_calls += estimated
        group.unpriced_calls += unpriced
        group.cost_usd += cost
    return groups


def _group_sql(key: str) -> str:
    """A report key as a group's SQL: the time keys as whole periods since the epoch (an integer
    division per row, where formatting a date per row would cost more than the rest of the sum)."""
    nanoseconds = _PERIOD_NANOSECONDS.get(key)
    return f"start_unix_nano / {nanoseconds}" if nanoseconds is not None else _key_sql(key)


def _group_label(key: str, value: Any) -> str:
    nanoseconds = _PERIOD_NANOSECONDS.get(key)
    if nanoseconds is None:
        return str(value)
    return datetime.fromtimestamp(value * nanoseconds // 10**9, timezone.utc).strftime(TIME_KEYS[key])


def _tags_sql(tag_keys: Sequence[str] | None) -> str:
    """The part of the attribution that makes FOCUS tags, as SQL: the JSON object without the
    high-cardinality ids by default, or with only `tag_keys` (an absent key is null)."""
    if tag_keys is None:
        paths = ", ".join(_quote("$." + json.dumps(name)) for name in focus.HIGH_CARDINALITY_KEYS)
        return f"json_remove(attribution, {paths})"
    if not tag_keys:
        return "'{}'"
    pairs = ", ".join(
        f"{_quote(name)}, json_extract(attribution, {_quote('$.' + json.dumps(name))})" for name in tag_keys
    )
    return f"json_object({pairs})"


def focus_groups(
    url_or_path: str,
    *,
    tag_keys: Sequence[str] | None,
    where: Sequence[tuple[str, str]] = (),
    since: float | None = None,
    until: float | None = None,
) -> dict[GroupKey, Group]:
    """`focus.group` of the calls, summed by SQLite per day x provider x model x operation x tags."""
    path = path_of(url_or_path)
    conditions, parameters = _filter(where, since, until)
    keys = ["start_unix_nano / 86400000000000", "provider", "request_model", "operation", _tags_sql(tag_keys)]
    tags_of: dict[str, tuple[tuple[str, str], ...]] = {}
    groups: dict[GroupKey, Group] = {}
    for row in _summed_rows(path, keys, conditions, parameters):
        day, provider, model, operation, attribution = row[:5]
        tags = tags_of.get(attribution)
        if tags is None:
            present = {name: value for name, value in json.loads(attribution).items() if value is not None}
            tags = tags_of[attribution] = focus.tags(present, tag_keys)
        key = (day, provider, model, operation, tags)
        group = groups.get(key)
        if group is None:
            group = groups[key] = Group()
        group.calls += row[5]
        group.input += row[6]
        group.output += row[7]
        group.cache_read += row[8]
        group.cache_write += row[9]
        group.estimated += row[10]
        group.unpriced += row[11]
        group.cost += row[12]
    return groups


def calls(
    url_or_path: str,
    *,
    where: Sequence[tuple[str, str]] = (),
    since: float | None = None,
    until: float | None = None,
) -> Iterator[tuple[Any, ...]]:
    """The ledger's rows (`CSV_SELECT`) of the calls started in [since, until) that match `where`,
    oldest first, streamed from SQLite. The file is opened and the query started before this returns,
    so that a bad file is reported before anything is written."""
    path = path_of(url_or_path)
    conditions, parameters = _filter(where, since, until, refused=True)
    try:
        connection = _open(path)
        try:
            cursor = connection.execute(
                # The column names are constants; values are bound as parameters.
                f"SELECT {', '.join(CSV_SELECT)} FROM calls WHERE {conditions}"  # noqa: S608
                " ORDER BY start_unix_nano",
                parameters,
            )
        except BaseException:
            connection.close()
            raise
    except sqlite3.DatabaseError as error:
        raise SourceError(f"{path}: cannot read it as a ledger ({error})") from None
    return _streamed(path, connection, cursor)


def _streamed(
    path: Path, connection: sqlite3.Connection, cursor: sqlite3.Cursor
) -> Iterator[tuple[Any, ...]]:
    try:
        while True:
            try:
                batch = cursor.fetchmany(10_000)
            except sqlite3.DatabaseError as error:
                raise SourceError(f"{path}: cannot read it as a ledger ({error})") from None
            if not batch:
                return
            yield from batch
    finally:
        connection.close()


def read(url_or_path: str, *, since: float | None = None, until: float | None = None) -> list[SpendRecord]:
    """The calls in the ledger started in [since, until), oldest first (refused calls left out)."""
    path = path_of(url_or_path)
    try:
        connection = _open(path)
        try:
            low = int(since * 1e9) if since is not None else -(2**63)
            high = int(until * 1e9) if until is not None else 2**63 - 1
            rows = connection.execute(
                # The column names are constants; the bounds are bound as parameters.
                f"SELECT {', '.join(_RECORD_COLUMNS)} FROM calls"  # noqa: S608
                " WHERE start_unix_nano >= ? AND start_unix_nano < ? AND refused = 0"
                " ORDER BY start_unix_nano",
                (low, high),
            ).fetchall()
        finally:
            connection.close()
    except sqlite3.DatabaseError as error:
        raise SourceError(f"{path}: cannot read it as a ledger ({error})") from None
    return [_record(row) for row in rows]


def _record(row: tuple[object, ...]) -> SpendRecord:
    (
        start, duration, provider, operation, request_model, response_model, input_tokens, output_tokens,
        cache_read, cache_write, reasoning, cost, cost_parts, price_source, price_version, inferred,
        estimated, attribution, trace_id, span_id, error_type, refused,
    ) = row  # fmt: skip
    return SpendRecord(
        start=int(start) / 1e9,  # type: ignore[call-overload]
        provider=str(provider),
        request_model=str(request_model),
        operation=str(operation),
        response_model=None if response_model is None else str(response_model),
        input_tokens=int(input_tokens),  # type: ignore[call-overload]
        output_tokens=int(output_tokens),  # type: ignore[call-overload]
        cache_read_tokens=int(cache_read),  # type: ignore[call-overload]
        cache_write_tokens=int(cache_write),  # type: ignore[call-overload]
        cost_usd=None if cost is None else Decimal(str(cost)),
        estimated=bool(estimated),
        attributes=json.loads(str(attribution)),
        duration_s=float(duration),  # type: ignore[arg-type]
        reasoning_tokens=int(reasoning),  # type: ignore[call-overload]
        cost_parts=json.loads(str(cost_parts)),
        price_source=None if price_source is None else str(price_source),
        price_version=None if price_version is None else str(price_version),
        price_inferred=bool(inferred),
        trace_id=str(trace_id),
        span_id=str(span_id),
        error_type=None if error_type is None else str(error_type),
        refused=bool(refused),
    )
