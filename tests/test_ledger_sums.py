"""The ledger's sums in SQLite stay exact: costs in whole picodollars summed as integers, the others
(not a whole number of picodollars) by their text, a group past SQLite's 64-bit SUM summed the second
way, a ledger file of the first schema version read as it is and migrated by a writer; the per-call
CSV streamed from SQLite is byte for byte what the records give."""

from __future__ import annotations

import csv
import io
import json
import random
import sqlite3
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind

from opentelemetry_instrumentation_tokenbudget.cli import export
from opentelemetry_instrumentation_tokenbudget.cli.main import main
from opentelemetry_instrumentation_tokenbudget.finops import focus
from opentelemetry_instrumentation_tokenbudget.finops.sources import ledger as ledger_source
from opentelemetry_instrumentation_tokenbudget.ledger.record import SCHEMA_VERSION
from opentelemetry_instrumentation_tokenbudget.ledger.writer import LedgerWriter

DAY = 1_764_547_200  # 2025-12-01T00:00:00Z

# Schema version 1, as the ledger's first release created it (no cost in picodollars).
V1_SCHEMA = """
CREATE TABLE calls (
    start_unix_nano INTEGER NOT NULL, duration_s REAL NOT NULL, provider TEXT NOT NULL,
    operation TEXT NOT NULL, request_model TEXT NOT NULL, response_model TEXT,
    input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL, cache_read_tokens INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL, reasoning_tokens INTEGER NOT NULL, cost_usd TEXT,
    cost_parts TEXT NOT NULL, price_source TEXT, price_version TEXT, price_inferred INTEGER NOT NULL,
    estimated INTEGER NOT NULL, attribution TEXT NOT NULL, trace_id TEXT NOT NULL, span_id TEXT NOT NULL,
    error_type TEXT, refused INTEGER NOT NULL
);
CREATE INDEX calls_start ON calls (start_unix_nano);
CREATE TABLE tokenbudget_ledger (version INTEGER NOT NULL);
INSERT INTO tokenbudget_ledger (version) VALUES (1);
"""
V1_INSERT = "INSERT INTO calls VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"


def span(
    number: int, model: str, cost: float | None, *, offset: float = 0, **attributes: object
) -> ReadableSpan:
    values: dict[str, object] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": model,
        "gen_ai.response.model": model,
        "gen_ai.usage.input_tokens": 10 + number,
        "gen_ai.usage.output_tokens": 2,
        "tokenbudget.price.source": "genai-prices",
        **attributes,
    }
    if cost is not None:
        values["gen_ai.usage.cost.amount"] = cost
    nanos = int((DAY + 60 * number + offset) * 1e9)
    return ReadableSpan(
        name=f"chat {model}",
        context=SpanContext(number + 1, number + 1, is_remote=False),
        kind=SpanKind.CLIENT,
        attributes=values,  # type: ignore[arg-type]
        start_time=nanos,
        end_time=nanos + 250_000_000,
    )


# Whole picodollars, not whole picodollars (0.1 + 0.2 as a double: 17 significant digits), unpriced.
SPANS = [
    span(0, "m", 0.0000078, **{"tokenbudget.feature": "a", "user.id": "u-1"}),
    span(1, "m", 0.0000078, **{"tokenbudget.feature": "a", "user.id": "u-2"}),
    span(2, "m", 0.1 + 0.2, **{"tokenbudget.feature": "a", "user.id": "u-1"}),
    span(3, "m", 0.1 + 0.2, **{"tokenbudget.feature": "b", "session.id": "s-9"}),
    span(4, "m", None, **{"tokenbudget.feature": "b"}),
    span(5, "n", 1e-05, **{"tokenbudget.feature": "b", "tokenbudget.project": "café"}),
    span(6, "n", 0.000063, **{"tokenbudget.feature": "a", "error.type": "timeout"}),
]
# 2 x 0.0000078 + 2 x 0.30000000000000004 + 0.00001 + 0.000063
TOTAL = Decimal("0.60008860000000008")


def write(path: Path, spans: list[ReadableSpan]) -> None:
    writer = LedgerWriter(f"sqlite:///{path}")
    for item in spans:
        writer.add(item)
    writer.close()


def summed(path: Path, *keys: str, **options: object) -> dict[str, tuple[int, Decimal, int]]:
    """(calls, cost, unpriced calls) per group, as the report reads them (before JSON's floats)."""
    groups = ledger_source.summed(str(path), keys, **options)  # type: ignore[arg-type]
    return {
        ",".join(key): (group.calls, group.cost_usd, group.unpriced_calls) for key, group in groups.items()
    }


def report_total(capsys: pytest.CaptureFixture[str], path: Path) -> dict[str, object]:
    assert main(["report", "--ledger", str(path), "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)["total"]  # type: ignore[no-any-return]


def test_whole_picodollars_are_kept_as_integers_and_the_others_are_not(tmp_path):
    path = tmp_path / "spend.db"
    write(path, SPANS)
    rows = (
        sqlite3.connect(path)
        .execute("SELECT cost_usd, cost_picodollars FROM calls ORDER BY rowid")
        .fetchall()
    )
    assert rows == [
        ("7.8e-06", 7_800_000),
        ("7.8e-06", 7_800_000),
        ("0.30000000000000004", None),
        ("0.30000000000000004", None),
        (None, None),
        ("1e-05", 10_000_000),
        ("6.3e-05", 63_000_000),
    ]
    assert sqlite3.connect(path).execute("SELECT version FROM tokenbudget_ledger").fetchall() == [(2,)]


def test_report_sums_both_kinds_exactly(capsys, tmp_path):
    path = tmp_path / "spend.db"
    write(path, SPANS)
    assert summed(path) == {"": (7, TOTAL, 1)}
    assert summed(path, "feature") == {
        "a": (4, Decimal("0.30007860000000004"), 0),  # 2 x 0.0000078 + 0.30000000000000004 + 0.000063
        "b": (3, Decimal("0.30001000000000004"), 1),  # 0.30000000000000004 + 0.00001, one unpriced
    }
    assert summed(path, "model", where=[("feature", "a")]) == {
        "m": (3, Decimal("0.30001560000000004"), 0),
        "n": (1, Decimal("0.000063"), 0),
    }


def test_a_group_past_sqlites_integer_sum_is_summed_exactly_all_the_same(capsys, tmp_path):
    """Two calls of 5 million USD: 10**19 picodollars, past 2**63 - 1 (about 9.2 million USD)."""
    path = tmp_path / "spend.db"
    write(
        path, [span(0, "big", 5e6), span(1, "big", 5e6), span(2, "big", 0.0000078), span(3, "m", 0.1 + 0.2)]
    )
    with pytest.raises(sqlite3.OperationalError, match="integer overflow"):
        sqlite3.connect(path).execute("SELECT SUM(cost_picodollars) FROM calls").fetchone()
    assert summed(path, "model") == {
        "big": (3, Decimal("10000000.0000078"), 0),
        "m": (1, Decimal("0.30000000000000004"), 0),
    }
    assert summed(path) == {"": (4, Decimal("10000000.30000780000000004"), 0)}
    assert report_total(capsys, path)["cost_usd"] == 10000000.3000078


def _v1_ledger(path: Path) -> None:
    """A file of schema version 1 holding `SPANS`' rows as version 1 wrote them."""
    write(path.with_suffix(".v2.db"), SPANS)
    rows = (
        sqlite3.connect(path.with_suffix(".v2.db")).execute("SELECT * FROM calls ORDER BY rowid").fetchall()
    )
    connection = sqlite3.connect(path)
    connection.executescript(V1_SCHEMA)
    with connection:
        connection.executemany(V1_INSERT, [row[:22] for row in rows])
    connection.close()


def test_a_version_1_file_is_read_as_it_is_read_only(capsys, tmp_path):
    path = tmp_path / "old.db"
    _v1_ledger(path)
    before = path.read_bytes()
    path.chmod(0o444)
    tmp_path.chmod(0o555)  # no journal or WAL file may be made beside it either
    try:
        assert summed(path, "feature")["a"] == (4, Decimal("0.30007860000000004"), 0)
        assert report_total(capsys, path)["calls"] == 7
        assert main(["export", "--ledger", str(path), "--format", "focus"]) == 0
        rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
        assert sum(Decimal(row["BilledCost"]) for row in rows) == TOTAL
        assert main(["export", "--ledger", str(path), "--format", "csv"]) == 0
        assert len(capsys.readouterr().out.splitlines()) == 8
    finally:
        tmp_path.chmod(0o755)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("old.db")) == ["old.db"]


def test_a_writer_migrates_a_version_1_file_and_fills_the_column_in(capsys, tmp_path):
    path = tmp_path / "old.db"
    _v1_ledger(path)
    write(path, [span(7, "m", 0.0000078, offset=1)])
    connection = sqlite3.connect(path)
    assert connection.execute("SELECT version FROM tokenbudget_ledger").fetchall() == [(SCHEMA_VERSION,)]
    assert [row[0] for row in connection.execute("SELECT cost_picodollars FROM calls ORDER BY rowid")] == [
        7_800_000, 7_800_000, None, None, None, 10_000_000, 63_000_000, 7_800_000,
    ]  # fmt: skip
    connection.close()
    assert summed(path) == {"": (8, Decimal("0.60009640000000008"), 1)}
    # A second writer finds it migrated and leaves it be.
    LedgerWriter(f"sqlite:///{path}").close()
    assert summed(path) == {"": (8, Decimal("0.60009640000000008"), 1)}


def _python_focus(path: Path, tag_keys: list[str] | None) -> str:
    out = io.StringIO()
    export.write(
        export.focus_lines(focus.rows(ledger_source.read(str(path)), tag_keys=tag_keys)), output=None, out=out
    )
    return out.getvalue()


def test_focus_from_sqlite_equals_focus_from_the_records_and_ids_are_tags_only_when_named(capsys, tmp_path):
    path = tmp_path / "spend.db"
    write(path, SPANS)
    assert main(["export", "--ledger", str(path), "--format", "focus"]) == 0
    default = capsys.readouterr().out
    assert default == _python_focus(path, None)
    rows = list(csv.DictReader(io.StringIO(default)))
    assert [
        (row["SkuId"], row["Tags"], row["x_Calls"], row["BilledCost"], row["x_UnpricedCalls"]) for row in rows
    ] == [
        ("openai/m", '{"tokenbudget.feature":"a"}', "3", "0.30001560000000004", "0"),
        ("openai/m", '{"tokenbudget.feature":"b"}', "2", "0.30000000000000004", "1"),
        ("openai/n", '{"tokenbudget.feature":"a"}', "1", "0.000063", "0"),
        ("openai/n", '{"tokenbudget.feature":"b","tokenbudget.project":"caf\\u00e9"}', "1", "0.00001", "0"),
    ]  # fmt: skip
    assert main(["export", "--ledger", str(path), "--tags", "user.id,session.id"]) == 0
    named = capsys.readouterr().out
    assert named == _python_focus(path, ["user.id", "session.id"])
    assert [(row["SkuId"], row["Tags"], row["x_Calls"]) for row in csv.DictReader(io.StringIO(named))] == [
        ("openai/m", "{}", "1"),
        ("openai/m", '{"session.id":"s-9"}', "1"),
        ("openai/m", '{"user.id":"u-1"}', "2"),
        ("openai/m", '{"user.id":"u-2"}', "1"),
        ("openai/n", "{}", "2"),
    ]


def test_the_streamed_csv_is_byte_for_byte_the_records_csv(capsys, tmp_path):
    path = tmp_path / "spend.db"
    write(path, SPANS)
    for where in ([], ["--where", "feature=b"], ["--since", "2025-12-01T00:02:00Z"]):
        assert main(["export", "--ledger", str(path), "--format", "csv", *where]) == 0
        streamed = capsys.readouterr().out
        conditions = [tuple(w.split("=", 1)) for w in where[1::2]] if where[:1] == ["--where"] else []
        since = DAY + 120 if where[:1] == ["--since"] else None
        records = [
            r
            for r in ledger_source.read(str(path), since=since)
            if all(r.value_of(k) == v for k, v in conditions)
        ]
        expected = io.StringIO()
        export.write(export.call_lines(records), output=None, out=expected)
        assert streamed == expected.getvalue()
        assert len(streamed.splitlines()) == 1 + len(records) > 1
    lines = list(csv.reader(io.StringIO(streamed)))
    assert lines[1][11] == "0.30000000000000004"
    assert lines[-1][19] == "timeout"


def test_the_streamed_csv_quotes_as_the_csv_writer_does(capsys, tmp_path):
    """Text that needs quoting (a comma, a quote, a line break, a carriage return) in the columns the
    export formats once per distinct run, in an id that is not hex (a foreign writer's), and costs that
    are not a plain decimal: the same bytes as the csv writer's."""
    path = tmp_path / "odd.db"
    odd = [
        span(0, 'm,"quoted"', 1e-05, **{"tokenbudget.feature": "a,b", "error.type": "bad\nline"}),
        span(1, "carriage\rreturn", 1.0, **{"tokenbudget.feature": 'say "hi"'}),
        span(2, "", 2.5e-07, **{"tokenbudget.feature": ""}),
        span(3, "plain", 0.00012, **{"gen_ai.response.model": None}),
    ]
    write(path, odd)
    connection = sqlite3.connect(path)
    with connection:
        connection.execute("UPDATE calls SET span_id = 'x,\"y', trace_id = 'ABC' WHERE rowid = 2")
        connection.execute("UPDATE calls SET cost_usd = '1.500' WHERE rowid = 4")
    connection.close()
    assert main(["export", "--ledger", str(path), "--format", "csv"]) == 0
    streamed = capsys.readouterr().out
    expected = io.StringIO()
    export.write(export.call_lines(ledger_source.read(str(path))), output=None, out=expected)
    assert streamed == expected.getvalue()
    lines = list(csv.reader(io.StringIO(streamed)))
    assert [line[4] for line in lines[1:]] == ['m,"quoted"', "carriage\rreturn", "", "plain"]
    assert [line[11] for line in lines[1:]] == ["0.00001", "1.0", "0.00000025", "1.5"]
    assert (lines[2][17], lines[2][18]) == ("ABC", 'x,"y')
    assert lines[1][19] == "bad\nline"


def focus_figures(path: Path) -> dict[object, dict[str, object]]:
    groups = ledger_source.focus_groups(str(path), tag_keys=None)
    return {key: {name: getattr(group, name) for name in group.__slots__} for key, group in groups.items()}


@pytest.mark.parametrize("readers", [2, 3, 4])
def test_several_readers_sum_exactly_what_one_reads(monkeypatch, tmp_path, readers):
    """A large ledger is summed by several connections, each over its own range of rows; the groups
    they share (a range past SQLite's 64-bit SUM among them) add up to what one reader finds."""
    path = tmp_path / "spend.db"
    big = [span(7 + number, "big", 5e6, **{"tokenbudget.feature": "a"}) for number in range(3)]
    write(path, SPANS + big)
    monkeypatch.setattr(ledger_source, "_ROWS_PER_READER", 1)
    monkeypatch.setattr(ledger_source, "_MAX_READERS", 1)
    keys = [(), ("model",), ("feature", "user"), ("day", "model"), ("hour",)]
    alone = [summed(path, *key) for key in keys]
    alone_focus = focus_figures(path)
    monkeypatch.setattr(ledger_source, "_MAX_READERS", readers)
    monkeypatch.setattr(ledger_source.os, "cpu_count", lambda: readers)
    assert ledger_source._readers(10) == readers
    assert [summed(path, *key) for key in keys] == alone
    assert focus_figures(path) == alone_focus
    assert alone[0] == {"": (10, TOTAL + Decimal(15_000_000), 1)}
    assert alone[3]["2025-12-01,big"] == (3, Decimal(15_000_000), 0)
    assert set(alone[4]) == {"2025-12-01T00:00Z"}


def test_the_streamed_timestamp_is_datetimes_to_the_microsecond():
    """The per-call CSV formats start times itself (each day's date once); it must write what
    datetime writes of the same float seconds, rounding half to even included."""
    starts = [0, 1, 999, 1_000, 1_500, 2_500, 999_999_999, DAY * 10**9 - 1, DAY * 10**9]
    starts += [DAY * 10**9 + offset for offset in (499, 500, 501, 999_999_500, 86_399_999_999_500)]
    starts += [random.Random(seed).randrange(10**18, 2 * 10**18) for seed in range(20_000)]
    dates: dict[int, str] = {}
    for start in starts:
        expected = datetime.fromtimestamp(start / 1e9, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        assert export._timestamp(start, dates) == expected, start
