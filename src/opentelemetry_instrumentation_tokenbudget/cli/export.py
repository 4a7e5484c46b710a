"""`tokenbudget export`: the recorded calls as FOCUS cost-and-usage rows (`--format focus`) or one CSV
row per call (`--format csv`), to standard output or to `-o FILE` (written whole or not at all)."""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, TextIO

from ..finops import focus
from ..finops.spend_record import SpendRecord

FORMATS: Final = ("focus", "csv")
_MAX_CACHED: Final = 100_000
_MICROSECONDS: Final = 1_000_000
CALL_COLUMNS: Final = (
    "start",
    "duration_s",
    "provider",
    "operation",
    "request_model",
    "response_model",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_usd",
    "estimated",
    "price_source",
    "price_version",
    "price_inferred",
    "attribution",
    "trace_id",
    "span_id",
    "error_type",
    "refused",
)


class ExportError(Exception):
    """The output file cannot be written; the message names it."""


def add_parser(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    parser = sub.add_parser(
        "export",
        help="FOCUS cost-and-usage rows (what finance loads next to the cloud bill), or one CSV row per call",
        description=(
            "--format focus: FOCUS 1.0 rows, one per UTC day x provider x model x operation x attribution"
            " (as Tags); --format csv: one row per call."
        ),
    )
    common(parser)
    parser.add_argument("-o", "--output", type=Path, metavar="FILE", help="write here (default: stdout)")
    parser.add_argument("--since", help="a duration back from now (7d, 12h, 2w) or a date")
    parser.add_argument("--until", help="a date (default now)")
    parser.add_argument(
        "--tags",
        metavar="KEY,...",
        help=(
            "only these attribution keys become FOCUS tags and groups (default: all but user.id and"
            " session.id, one row per user or session otherwise; name them here to have them)"
        ),
    )


def _decimal_text(value: Decimal) -> str:
    # No trailing zeros (the same sum reads the same however it was added up), and a decimal point
    # even on whole numbers: FOCUS's decimal columns are read as such.
    text = format(value.normalize(), "f")
    return text if "." in text else f"{text}.0"


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return _decimal_text(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def tag_keys_of(tags: str | None) -> list[str] | None:
    return [key.strip() for key in tags.split(",") if key.strip()] if tags else None


def focus_lines(rows: Iterable[dict[str, Any]]) -> Iterator[list[str]]:
    yield list(focus.COLUMNS)
    for row in rows:
        yield [_text(row[column]) for column in focus.COLUMNS]


def call_lines(records: Iterable[SpendRecord]) -> Iterator[list[str]]:
    yield list(CALL_COLUMNS)
    for r in records:
        yield [
            datetime.fromtimestamp(r.start, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            _text(r.duration_s),
            r.provider,
            r.operation,
            r.request_model,
            _text(r.response_model),
            str(r.input_tokens),
            str(r.output_tokens),
            str(r.cache_read_tokens),
            str(r.cache_write_tokens),
            str(r.reasoning_tokens),
            _text(r.cost_usd),
            _text(r.estimated),
            _text(r.price_source),
            _text(r.price_version),
            _text(r.price_inferred),
            json.dumps(dict(r.attributes), sort_keys=True, separators=(",", ":")),
            _text(r.trace_id),
            _text(r.span_id),
            _text(r.error_type),
            _text(r.refused),
        ]


def ledger_call_lines(rows: Iterable[tuple[Any, ...]]) -> Iterator[list[Any]]:
    """`call_lines` of the ledger's rows as they come from SQLite (`ledger.CALL_COLUMNS`): the same
    text, without a record per call."""
    yield list(CALL_COLUMNS)
    compact: dict[str, str] = {}
    dates: dict[int, str] = {}
    # The csv writer writes None as "" and numbers as str() does: values go to it as SQLite gives them.
    for row in rows:
        (
            start, duration, provider, operation, request_model, response_model, input_tokens,
            output_tokens, cache_read, cache_write, reasoning, cost, estimated, price_source,
            price_version, inferred, attribution, trace_id, span_id, error_type, refused,
        ) = row  # fmt: skip
        # Few distinct attributions, each written as `call_lines` writes a record's attributes.
        attributes = compact.get(attribution)
        if attributes is None:
            if len(compact) >= _MAX_CACHED:
                compact.clear()
            attributes = compact[attribution] = json.dumps(
                json.loads(attribution), sort_keys=True, separators=(",", ":")
            )
        yield [
            _timestamp(start, dates),
            float(duration),
            provider,
            operation,
            request_model,
            response_model,
            input_tokens,
            output_tokens,
            cache_read,
            cache_write,
            reasoning,
            None if cost is None else _decimal_text(Decimal(cost)),
            "true" if estimated else "false",
            price_source,
            price_version,
            "true" if inferred else "false",
            attributes,
            trace_id,
            span_id,
            error_type,
            "true" if refused else "false",
        ]


def _timestamp(start_unix_nano: int, dates: dict[int, str]) -> str:
    """`datetime.fromtimestamp(start_unix_nano / 1e9, timezone.utc)` as `call_lines` writes it (the
    same float seconds, rounded to microseconds half to even as datetime does), with each day's date
    formatted once."""
    moment = start_unix_nano / 1e9
    seconds = math.trunc(moment)
    microseconds = round((moment - seconds) * 1e6)
    if microseconds >= _MICROSECONDS:
        seconds, microseconds = seconds + 1, microseconds - _MICROSECONDS
    elif microseconds < 0:
        seconds, microseconds = seconds - 1, microseconds + _MICROSECONDS
    day, second = divmod(seconds, 86_400)
    date = dates.get(day)
    if date is None:
        date = dates[day] = datetime.fromtimestamp(day * 86_400, timezone.utc).strftime("%Y-%m-%d")
    hours, rest = divmod(second, 3_600)
    minutes, second = divmod(rest, 60)
    return f"{date}T{hours:02d}:{minutes:02d}:{second:02d}.{microseconds:06d}Z"


def write(lines: Iterable[Sequence[object]], *, output: Path | None, out: TextIO) -> int:
    """Writes the export's lines (the header first); returns the number of data rows."""
    if output is None:
        writer = csv.writer(out, lineterminator="\n")
        count = -1
        for line in lines:
            writer.writerow(line)
            count += 1
        return count
    directory = output.parent if str(output.parent) else Path(".")
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{output.name}.", dir=directory)
    except OSError as error:
        raise ExportError(f"-o {output}: cannot write there ({error.strerror})") from None
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as file:
            writer = csv.writer(file, lineterminator="\n")
            count = -1
            for line in lines:
                writer.writerow(line)
                count += 1
        os.replace(temporary, output)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise ExportError(f"-o {output}: cannot write it ({error.strerror})") from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return count
