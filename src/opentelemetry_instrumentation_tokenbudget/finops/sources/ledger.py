"""The SQLite spend ledger that `instrument(ledger="sqlite:///path")` writes."""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal
from pathlib import Path

from ...ledger.record import COLUMNS
from ...ledger.writer import parse_url
from ..spend_record import SpendRecord
from .otlp_json import SourceError


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
