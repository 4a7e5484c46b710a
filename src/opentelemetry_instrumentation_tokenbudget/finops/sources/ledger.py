"""The SQLite spend ledger that `instrument(ledger="sqlite:///path")` writes."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Final

from ...ledger.record import COLUMNS
from ...ledger.writer import parse_url
from .. import focus
from ..focus import Group, GroupKey
from ..report import TIME_KEYS, Aggregate
from ..spend_record import KEY_ALIASES, UNSET, SpendRecord
from .otlp_json import SourceError

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


def summed(
    url_or_path: str,
    keys: Sequence[str],
    *,
    where: Sequence[tuple[str, str]] = (),
    since: float | None = None,
    until: float | None = None,
) -> dict[tuple[str, ...], Aggregate]:
    """The figures per group of `keys` over the calls started in [since, until) that match `where`,
    summed by SQLite; the cost in Python, exactly, from each distinct cost's number of calls."""
    path = path_of(url_or_path)
    expressions = [_key_sql(key) for key in keys]
    conditions = ["start_unix_nano >= ?", "start_unix_nano < ?"]
    parameters: list[object] = [
        int(since * 1e9) if since is not None else -(2**63),
        int(until * 1e9) if until is not None else 2**63 - 1,
    ]
    for name, value in where:
        conditions.append(f"{_key_sql(name)} = ?")
        parameters.append(value)
    grouped = ", ".join([*expressions, "cost_usd"])
    selected = ", ".join([*expressions, "cost_usd"])
    query = (
        # Every expression is built from constants and quoted names; values are bound as parameters.
        f"SELECT {selected}, COUNT(*), SUM(input_tokens), SUM(output_tokens), SUM(cache_read_tokens),"  # noqa: S608
        f" SUM(cache_write_tokens), SUM(estimated) FROM calls WHERE {' AND '.join(conditions)}"
        f" GROUP BY {grouped}"
    )
    groups: dict[tuple[str, ...], Aggregate] = {}
    try:
        connection = _open(path)
        try:
            cursor = connection.execute(query, parameters)
            width = len(expressions)
            for row in cursor:
                key = tuple(str(value) for value in row[:width])
                cost, calls, inputs, outputs, cache_read, cache_write, estimated = row[width:]
                group = groups.get(key)
                if group is None:
                    group = groups[key] = Aggregate()
                group.calls += calls
                group.input_tokens += inputs
                group.output_tokens += outputs
                group.cache_read_tokens += cache_read
                group.cache_write_tokens += cache_write
                group.estimated_calls += estimated
                if cost is None:
                    group.unpriced_calls += calls
                else:
                    group.cost_usd += Decimal(cost) * calls
        finally:
            connection.close()
    except sqlite3.DatabaseError as error:
        raise SourceError(f"{path}: cannot read it as a ledger ({error})") from None
    return groups


def focus_groups(
    url_or_path: str,
    *,
    tag_keys: Sequence[str] | None,
    where: Sequence[tuple[str, str]] = (),
    since: float | None = None,
    until: float | None = None,
) -> dict[GroupKey, Group]:
    """`focus.group` of the calls, summed by SQLite per day x provider x model x operation x attribution
    (and distinct cost: the cost is summed exactly in Python)."""
    path = path_of(url_or_path)
    conditions = ["start_unix_nano >= ?", "start_unix_nano < ?"]
    parameters: list[object] = [
        int(since * 1e9) if since is not None else -(2**63),
        int(until * 1e9) if until is not None else 2**63 - 1,
    ]
    for name, value in where:
        conditions.append(f"{_key_sql(name)} = ?")
        parameters.append(value)
    query = (
        # Constant expressions; values are bound as parameters.
        "SELECT start_unix_nano / 86400000000000, provider, request_model, operation, attribution,"  # noqa: S608
        " cost_usd, COUNT(*), SUM(input_tokens), SUM(output_tokens), SUM(cache_read_tokens),"
        f" SUM(cache_write_tokens), SUM(estimated) FROM calls WHERE {' AND '.join(conditions)}"
        " GROUP BY 1, provider, request_model, operation, attribution, cost_usd"
    )
    tags_of: dict[str, tuple[tuple[str, str], ...]] = {}
    groups: dict[GroupKey, Group] = {}
    try:
        connection = _open(path)
        try:
            for row in connection.execute(query, parameters):
                day, provider, model, operation, attribution, cost, calls = row[:7]
                tags = tags_of.get(attribution)
                if tags is None:
                    tags = tags_of[attribution] = focus.tags(json.loads(attribution), tag_keys)
                key = (day, provider, model, operation, tags)
                group = groups.get(key)
                if group is None:
                    group = groups[key] = Group()
                group.calls += calls
                group.input += row[7]
                group.output += row[8]
                group.cache_read += row[9]
                group.cache_write += row[10]
                group.estimated += row[11]
                if cost is None:
                    group.unpriced += calls
                else:
                    group.cost += Decimal(cost) * calls
        finally:
            connection.close()
    except sqlite3.DatabaseError as error:
        raise SourceError(f"{path}: cannot read it as a ledger ({error})") from None
    return groups


def read(url_or_path: str, *, since: float | None = None, until: float | None = None) -> list[SpendRecord]:
    """The calls in the ledger started in [since, until), oldest first."""
    path = path_of(url_or_path)
    if not path.is_file():
        raise SourceError(f"{path}: no such ledger file")
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            known = connection.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name='tokenbudget_ledger'"
            ).fetchone()
            if known is None:
                raise SourceError(f"{path}: not a tokenbudget ledger (no tokenbudget_ledger table)")
            low = int(since * 1e9) if since is not None else -(2**63)
            high = int(until * 1e9) if until is not None else 2**63 - 1
            rows = connection.execute(
                # The column names are constants; the bounds are bound as parameters.
                f"SELECT {', '.join(COLUMNS)} FROM calls"  # noqa: S608
                " WHERE start_unix_nano >= ? AND start_unix_nano < ? ORDER BY start_unix_nano",
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
