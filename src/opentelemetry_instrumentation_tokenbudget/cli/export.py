"""`tokenbudget export`: the recorded calls as FOCUS cost-and-usage rows (`--format focus`) or one CSV
row per call (`--format csv`), to standard output or to `-o FILE` (written whole or not at all)."""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import re
import tempfile
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, TextIO, TypeVar

from ..finops import focus
from ..finops.spend_record import SpendRecord

FORMATS: Final = ("focus", "csv")
_MAX_CACHED: Final = 100_000
_Key = TypeVar("_Key", bound=Hashable)
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


def ledger_call_lines(rows: Iterable[tuple[Any, ...]]) -> Iterator[str]:
    """`call_lines` of the ledger's rows as SQLite selects them (`ledger.CSV_SELECT`), as the csv writer
    would write them, each line made whole: the same text, without a record or a writer's field checks
    per call. The runs of columns that repeat from call to call (provider to response model, estimated
    to attribution, error type and refused) are formatted once per distinct run."""
    yield _csv_line(CALL_COLUMNS)
    fields = _Fields()
    models: dict[tuple[Any, ...], str] = {}
    prices: dict[tuple[Any, ...], str] = {}
    outcomes: dict[tuple[Any, ...], str] = {}
    minutes: dict[int, str] = {}
    for row in rows:
        (
            start, duration, provider, operation, request_model, response_model, tokens, cost,
            estimated, price_source, price_version, inferred, attribution, ids, error_type, refused,
        ) = row  # fmt: skip
        model_key = (provider, operation, request_model, response_model)
        model_text = models.get(model_key)
        if model_text is None:
            model_text = _remember(models, model_key, ",".join(map(fields.text, model_key)))
        price_key = (estimated, price_source, price_version, inferred, attribution)
        price_text = prices.get(price_key)
        if price_text is None:
            # The attribution as `call_lines` writes a record's attributes.
            compact = json.dumps(json.loads(attribution), sort_keys=True, separators=(",", ":"))
            price_text = _remember(
                prices,
                price_key,
                f"{_flag(estimated)},{fields.text(price_source)},{fields.text(price_version)},"
                f"{_flag(inferred)},{fields.text(compact)}",
            )
        outcome_key = (error_type, refused)
        outcome_text = outcomes.get(outcome_key)
        if outcome_text is None:
            outcome_text = _remember(outcomes, outcome_key, f"{fields.text(error_type)},{_flag(refused)}")
        yield (
            f"{_timestamp(start, minutes)},{float(duration)},{model_text},{tokens},{_cost_text(cost)},"
            f"{price_text},{_ids_text(ids, fields)},{outcome_text}\n"
        )


def _ids_text(ids: str, fields: _Fields) -> str:
    return ",".join(map(fields.text, json.loads(ids))) if ids.startswith("[") else ids


def _remember(cache: dict[_Key, str], key: _Key, text: str) -> str:
    """`cache[key] = text`, the cache emptied first when full (a stream of distinct values costs no
    more memory)."""
    if len(cache) >= _MAX_CACHED:
        cache.clear()
    cache[key] = text
    return text


def _flag(value: object) -> str:
    return "true" if value else "false"


class _CsvLines:
    """Rows as CSV lines ending in "\\n", with a field quoted when it holds a comma, a quote, a line feed
    or a carriage return, on every Python: the csv writer quotes the characters of its line terminator
    (a carriage return only from Python 3.13 on with "\\n"), so it writes "\\r\\n" here, made "\\n"."""

    def __init__(self) -> None:
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer, lineterminator="\r\n")

    def line(self, values: Iterable[object]) -> str:
        buffer = self._buffer
        buffer.seek(0)
        buffer.truncate()
        self._writer.writerow(values)
        return buffer.getvalue()[:-2] + "\n"


def _csv_line(values: Iterable[object]) -> str:
    return _CsvLines().line(values)


class _Fields:
    """Text values as the csv writer writes them in a row of several fields (quoted when they need it,
    None as nothing), each distinct value asked of the writer once."""

    def __init__(self) -> None:
        self._seen: dict[str, str] = {}
        self._line = _CsvLines().line

    def text(self, value: str | None) -> str:
        if not value:
            return ""
        field = self._seen.get(value)
        if field is None:
            # A second, empty field: a value alone on its line would be quoted when empty.
            field = _remember(self._seen, value, self._line((value, ""))[:-2])
        return field


# The costs the ledger holds (a double's shortest repr, or "0"), when `_decimal_text` would give them
# back unchanged: a plain decimal with a point, no exponent, no trailing zero but a lone one.
_PLAIN_DECIMAL: Final = re.compile(r"-?(?:0|[1-9][0-9]*)\.(?:[0-9]*[1-9]|0)")


def _cost_text(cost: str | None) -> str:
    if cost is None:
        return ""
    if _PLAIN_DECIMAL.fullmatch(cost):
        return cost
    return _decimal_text(Decimal(cost))


def _timestamp(start_unix_nano: int, minutes: dict[int, str]) -> str:
    """`datetime.fromtimestamp(start_unix_nano / 1e9, timezone.utc)` as `call_lines` writes it (the
    same float seconds, rounded to microseconds half to even as datetime does), with each minute's date
    and time formatted once."""
    moment = start_unix_nano / 1e9
    seconds = math.trunc(moment)
    microseconds = round((moment - seconds) * 1e6)
    if microseconds >= _MICROSECONDS:
        seconds, microseconds = seconds + 1, microseconds - _MICROSECONDS
    elif microseconds < 0:
        seconds, microseconds = seconds - 1, microseconds + _MICROSECONDS
    minute, second = divmod(seconds, 60)
    prefix = minutes.get(minute)
    if prefix is None:
        text = datetime.fromtimestamp(minute * 60, timezone.utc).strftime("%Y-%m-%dT%H:%M:")
        prefix = _remember(minutes, minute, text)
    return f"{prefix}{second:02d}.{microseconds:06d}Z"


def csv_text(lines: Iterable[Sequence[object]]) -> Iterator[str]:
    """The export's lines (lists of values) as CSV text, a line each."""
    return map(_CsvLines().line, lines)


def write(lines: Iterable[Sequence[object]], *, output: Path | None, out: TextIO) -> int:
    """Writes the export's lines (the header first); returns the number of data rows."""
    return write_text(csv_text(lines), output=output, out=out)


def write_text(lines: Iterable[str], *, output: Path | None, out: TextIO) -> int:
    """`write` for lines made already as text (the header first, each ending in a newline)."""
    with _destination(output, out) as file:
        count = -1
        for line in lines:
            file.write(line)
            count += 1
    return count


@contextmanager
def _destination(output: Path | None, out: TextIO) -> Iterator[TextIO]:
    """`out`, or a file beside `output` that replaces it once whole (removed on any error)."""
    if output is None:
        yield out
        return
    directory = output.parent if str(output.parent) else Path(".")
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{output.name}.", dir=directory)
    except OSError as error:
        raise ExportError(f"-o {output}: cannot write there ({error.strerror})") from None
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as file:
            yield file
        os.replace(temporary, output)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise ExportError(f"-o {output}: cannot write it ({error.strerror})") from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
