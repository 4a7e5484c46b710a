"""The spend ledger: real SDK calls on the fake provider are written to SQLite off the caller's
thread, and `tokenbudget report` reads them back with the exact figures the spans carry."""

from __future__ import annotations

import gc
import json
import os
import sqlite3
import subprocess
import sys
import threading
import weakref
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import anthropic
import httpx2
import openai
import pytest

from opentelemetry_instrumentation_tokenbudget import (
    Budget,
    BudgetExceededError,
    ConfigError,
    cost_attributes,
)
from opentelemetry_instrumentation_tokenbudget.cli.main import main
from opentelemetry_instrumentation_tokenbudget.finops.sources import ledger as ledger_source
from opentelemetry_instrumentation_tokenbudget.ledger.record import COLUMNS, picodollars, row_from_span
from opentelemetry_instrumentation_tokenbudget.ledger.writer import LedgerWriter
from opentelemetry_instrumentation_tokenbudget.testing import FakeProvider
from tests.test_budgets_fork import _fork, _run

MESSAGES = [{"role": "user", "content": "Say this is a test"}]


def openai_client(provider: FakeProvider) -> openai.OpenAI:
    http = httpx2.Client(transport=provider.transport())
    return openai.OpenAI(api_key="test", base_url="http://fake/v1", http_client=http, max_retries=0)


def anthropic_client(provider: FakeProvider) -> anthropic.Anthropic:
    http = httpx2.Client(transport=provider.transport())
    return anthropic.Anthropic(api_key="test", base_url="http://fake", http_client=http, max_retries=0)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def calls(instrument, telemetry, tmp_path):
    """Three calls on two models and two features; the ledger closed (flushed) by uninstrument()."""
    path = tmp_path / "spend.db"
    instrumentor = instrument(ledger=f"sqlite:///{path}")
    provider = FakeProvider()
    with cost_attributes(feature="search", user="u-1"):
        openai_client(provider).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        openai_client(provider).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    with cost_attributes(feature="summary", variant="b"):
        anthropic_client(provider).messages.create(model="claude-haiku-4-5", max_tokens=64, messages=MESSAGES)
    instrumentor.uninstrument()
    return path, telemetry.our_spans()


def test_one_row_per_call_with_the_spans_figures(calls):
    path, spans = calls
    records = ledger_source.read(str(path))
    assert len(records) == 3 == len(spans)
    by_span = {f"{span.context.span_id:016x}": span for span in spans}
    for record in records:
        attributes = by_span[record.span_id].attributes
        assert record.trace_id == f"{by_span[record.span_id].context.trace_id:032x}"
        assert record.input_tokens == attributes["gen_ai.usage.input_tokens"]
        assert record.output_tokens == attributes["gen_ai.usage.output_tokens"]
        assert record.cost_usd == Decimal(repr(attributes["gen_ai.usage.cost.amount"]))
        assert record.price_source == attributes["tokenbudget.price.source"]
        assert record.response_model == attributes["gen_ai.response.model"]
    first = records[0]
    assert (first.provider, first.operation, first.request_model) == ("openai", "chat", "gpt-4o-mini")
    assert (first.input_tokens, first.output_tokens) == (8, 11)
    assert first.cost_usd == Decimal("0.0000078")  # 8 x 0.15 + 11 x 0.60 USD per million
    assert dict(first.attributes) == {"tokenbudget.feature": "search", "user.id": "u-1"}
    assert first.cost_parts == {"input": 0.0000012, "output": 0.0000066}
    assert records[2].attributes == {"tokenbudget.feature": "summary", "variant": "b"}
    assert (records[2].error_type, records[2].refused, records[2].estimated) == (None, False, False)
    assert records[2].duration_s is not None
    assert records[2].duration_s > 0


def test_report_by_model_json(capsys, calls):
    path, _ = calls
    code, out, _ = run(capsys, "report", "--ledger", f"sqlite:///{path}", "--by", "model", "--format", "json")
    assert code == 0
    document = json.loads(out)
    assert document["by"] == ["model"]
    assert document["total"]["calls"] == 3
    assert [group["key"] for group in document["groups"]] == [
        {"model": "claude-haiku-4-5"},
        {"model": "gpt-4o-mini"},
    ]
    mini = document["groups"][1]
    assert mini == {
        "key": {"model": "gpt-4o-mini"},
        "calls": 2,
        "input_tokens": 16,
        "output_tokens": 22,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "cost_usd": 0.0000156,
        "unpriced_calls": 0,
        "estimated_calls": 0,
    }


def test_report_by_feature_csv_where_and_top(capsys, calls):
    path, _ = calls
    code, out, _ = run(
        capsys, "report", "--ledger", str(path), "--by", "feature,user", "--where", "feature=search",
        "--format", "csv",
    )  # fmt: skip
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 2
    assert lines[0] == (
        "key,calls,input_tokens,output_tokens,cache_read_tokens,cache_write_tokens,cost_usd,"
        "unpriced_calls,estimated_calls"
    )
    assert lines[1] == '"feature=search,user=u-1",2,16,22,0,0,0.00001560,0,0'
    code, out, _ = run(
        capsys, "report", "--ledger", str(path), "--by", "feature", "--top", "1", "--format", "json"
    )
    assert [group["key"] for group in json.loads(out)["groups"]] == [{"feature": "summary"}]


def test_report_table_and_day_key(capsys, calls):
    path, _ = calls
    code, out, _ = run(capsys, "report", "--ledger", str(path), "--by", "day,provider")
    assert code == 0
    assert "anthropic" in out
    assert "openai" in out
    assert "total" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--by", "colour"], "--by 'colour': unknown key"),
        (["--top", "0"], "--top 0: expected a number of groups >= 1"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(capsys, calls, argv, message):
    path, _ = calls
    code, out, err = run(capsys, "report", "--ledger", str(path), *argv)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert message in err


def test_a_foreign_or_missing_file_is_one_line_exit_2(capsys, tmp_path):
    foreign = tmp_path / "other.db"
    sqlite3.connect(foreign).execute("CREATE TABLE t (x)").connection.close()
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    for path, message in (
        (foreign, "not a tokenbudget ledger"),
        (text, "cannot read it as a ledger"),
        (tmp_path / "missing.db", "no such ledger file"),
    ):
        code, out, err = run(capsys, "report", "--ledger", str(path))
        assert (code, out) == (2, ""), err
        assert err.count("\n") == 1
        assert message in err
        assert str(path) in err


def test_the_ledger_is_off_unless_asked_and_bad_urls_are_refused(instrument, tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match=r"ledger='postgres://x': expected 'sqlite:///path/spend\.db'"):
        instrument(ledger="postgres://x")
    with pytest.raises(ConfigError, match="unknown parameter 'keep'"):
        instrument(ledger=f"sqlite:///{tmp_path}/x.db?keep=3")
    assert list(tmp_path.iterdir()) == []


def test_environment_variable_turns_it_on(instrument, tmp_path, monkeypatch):
    path = tmp_path / "env.db"
    monkeypatch.setenv("OTEL_INSTRUMENTATION_TOKENBUDGET_LEDGER", f"sqlite:///{path}")
    instrumentor = instrument()
    openai_client(FakeProvider()).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    instrumentor.uninstrument()
    assert len(ledger_source.read(str(path))) == 1


def test_no_write_on_the_callers_thread_and_bounded_queue(telemetry, tmp_path, caplog):
    """`add` only queues: the file gets the rows when the writer flushes; a burst beyond the bound
    drops the oldest and counts them."""
    tracer = telemetry.tracer_provider.get_tracer("t")
    writer = LedgerWriter(f"sqlite:///{tmp_path / 'w.db'}", max_queued=10)
    writer._stop.set()  # the background flush stopped, so that the test decides when rows are written
    writer._thread.join()
    for number in range(25):
        span = tracer.start_span("chat m", attributes={"gen_ai.operation.name": "chat", "n": number})
        span.end()
        writer.add(span)
    assert writer.written == 0
    assert writer.dropped == 15
    writer.flush()
    writer.flush()  # nothing dropped since: said once
    writer.close()
    assert [r.getMessage().split(": ", 1)[1] for r in caplog.records if "dropped" in r.getMessage()] == [
        "15 call(s) dropped so far (more than 10 waiting to be written)"
    ]
    records = ledger_source.read(str(tmp_path / "w.db"))
    assert [record.attributes["n"] for record in records] == [str(n) for n in range(15, 25)]


def test_the_queue_lets_the_span_go_and_an_unreadable_span_loses_nothing(telemetry, tmp_path):
    """The writer queues what the row needs, not the span: a queued span would keep its objects alive
    for the garbage collector to walk on the caller's thread until the next batch. Something that is
    no span is skipped on the caller's thread without an exception."""
    tracer = telemetry.tracer_provider.get_tracer("t")
    writer = LedgerWriter(f"sqlite:///{tmp_path / 'w.db'}")
    writer._stop.set()  # the background flush stopped, so that the test decides when rows are written
    writer._thread.join()
    span = tracer.start_span("chat m", attributes={"gen_ai.operation.name": "chat", "n": 1})
    span.end()
    released = weakref.ref(span)
    writer.add(span)
    writer.add(object())
    del span
    gc.collect()
    assert released() is None
    assert len(writer._queue) == 1
    writer.close()
    assert [record.attributes["n"] for record in ledger_source.read(str(tmp_path / "w.db"))] == ["1"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork on this platform")
def test_a_forked_child_writes_its_own_calls_once(instrument, tmp_path):
    """A prefork server's worker: the child has no writer thread of the parent's, the writer's lock
    was held at the fork, a call of the parent was still queued. The child writes its own calls with a
    connection of its own; the parent's queued call is written once, by the parent."""
    path = tmp_path / "fork.db"
    instrumentor = instrument(ledger=f"sqlite:///{path}")
    writer = instrumentor._runtime.ledger
    writer._stop.set()  # the parent's background flush stopped: its call stays queued at the fork
    writer._thread.join()
    client = openai_client(FakeProvider())
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert len(writer._queue) == 1
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with writer._lock:
            held.set()
            release.wait(30)

    def child_work() -> bool:
        child_client = openai_client(FakeProvider())
        for _ in range(3):
            child_client.chat.completions.create(model="gpt-4.1-nano", messages=MESSAGES)
        instrumentor.uninstrument()  # the child's writer flushes and closes
        return True

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(10)
    try:
        code = _run(*_fork(child_work))
    finally:
        release.set()
        holder.join(10)
    assert code == 0
    instrumentor.uninstrument()
    records = ledger_source.read(str(path))
    assert sorted(record.request_model for record in records) == ["gpt-4.1-nano"] * 3 + ["gpt-4o-mini"]
    assert len({record.span_id for record in records}) == 4


def test_a_reader_that_stops_early_ends_the_export_without_a_traceback(telemetry, tmp_path):
    """`tokenbudget export --format csv | head -1`: more lines than the pipe holds, the reader gone."""
    tracer = telemetry.tracer_provider.get_tracer("t")
    path = tmp_path / "big.db"
    writer = LedgerWriter(f"sqlite:///{path}")
    for number in range(2000):
        span = tracer.start_span("chat m", attributes={"gen_ai.operation.name": "chat", "n": number})
        span.end()
        writer.add(span)
    writer.close()
    command = [sys.executable, "-m", "opentelemetry_instrumentation_tokenbudget.cli.main"]
    process = subprocess.Popen(
        [*command, "export", "--ledger", str(path), "--format", "csv"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    assert process.stdout.readline().startswith(b"start,duration_s,")
    process.stdout.close()
    assert (process.wait(60), process.stderr.read()) == (1, b"")


def test_many_threads_and_two_writers_on_one_file(telemetry, tmp_path):
    tracer = telemetry.tracer_provider.get_tracer("t")
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    writers = [LedgerWriter(url), LedgerWriter(url)]

    def burst(writer: LedgerWriter) -> None:
        for _ in range(500):
            span = tracer.start_span("chat m", attributes={"gen_ai.operation.name": "chat"})
            span.end()
            writer.add(span)

    threads = [threading.Thread(target=burst, args=(writers[n % 2],)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for writer in writers:
        writer.close()
    assert len(ledger_source.read(url)) == 2000


def test_retention_deletes_older_rows(telemetry, tmp_path):
    tracer = telemetry.tracer_provider.get_tracer("t")
    url = f"sqlite:///{tmp_path / 'r.db'}"
    writer = LedgerWriter(url)
    old = tracer.start_span("chat m", attributes={"gen_ai.operation.name": "chat"}, start_time=10**18)
    old.end(end_time=10**18 + 1)
    writer.add(old)
    new = tracer.start_span("chat m", attributes={"gen_ai.operation.name": "chat"})
    new.end()
    writer.add(new)
    writer.close()
    assert len(ledger_source.read(url)) == 2
    LedgerWriter(url + "?retention_days=30").close()
    assert len(ledger_source.read(url)) == 1


def test_path_of_accepts_a_url_or_a_path(tmp_path: Path):
    assert ledger_source.path_of(f"sqlite:///{tmp_path}/a.db") == tmp_path / "a.db"
    assert ledger_source.path_of("a.db") == Path("a.db")


def test_the_configuration_files_ledger_key(instrument, tmp_path, monkeypatch):
    path = tmp_path / "from-toml.db"
    config = tmp_path / "tokenbudget.toml"
    config.write_text(f'ledger = "sqlite:///{path}"\n')
    monkeypatch.setenv("OTEL_INSTRUMENTATION_TOKENBUDGET_CONFIG", str(config))
    instrumentor = instrument()
    openai_client(FakeProvider()).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    instrumentor.uninstrument()
    assert [record.request_model for record in ledger_source.read(str(path))] == ["gpt-4o-mini"]


@pytest.mark.parametrize("count", [1, 31, 32, 33, 70, 2 * 4096 + 5])
def test_a_batch_of_any_size_is_written_whole_and_in_order(telemetry, tmp_path, count):
    """Rows are inserted several to a statement: every size of batch lands whole, each row in its place."""
    tracer = telemetry.tracer_provider.get_tracer("t")
    writer = LedgerWriter(f"sqlite:///{tmp_path / 'b.db'}")
    writer._stop.set()
    writer._thread.join()
    for number in range(count):
        attributes = {
            "gen_ai.operation.name": "chat",
            "gen_ai.usage.input_tokens": number,
            "tokenbudget.cost.input": number / 1e6,
            "tokenbudget.feature": f"f-{number % 3}",
            "n": number,
        }
        span = tracer.start_span("chat m", attributes=attributes)
        span.end()
        writer.add(span)
    writer.flush()
    assert writer.written == count
    writer.close()
    records = ledger_source.read(str(tmp_path / "b.db"))
    assert [record.input_tokens for record in records] == list(range(count))
    assert [record.attributes for record in records] == [
        {"n": str(n), "tokenbudget.feature": f"f-{n % 3}"} for n in range(count)
    ]
    assert [record.cost_parts for record in records] == [{"input": n / 1e6} for n in range(count)]


def test_a_span_read_through_its_public_attributes_makes_the_same_row(telemetry):
    """The SDK span's backing dict is read when it is there; any other span, through `attributes`."""
    tracer = telemetry.tracer_provider.get_tracer("t")
    span = tracer.start_span(
        "chat m",
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.response.finish_reasons": ("stop",),
            "gen_ai.usage.cost.amount": 4.8e-06,
            "gen_ai.usage.cost.currency": "USD",
            "gen_ai.usage.cost.source": "local",
            "tokenbudget.price.source": "genai-prices",
            "tokenbudget.cost.output": 3e-06,
            "tokenbudget.cost.estimated": True,
            "user.id": "ü-1",
            "tokenbudget.tenant": "acme",
        },
    )
    span.end()
    other = SimpleNamespace(
        attributes=dict(span.attributes or {}),
        start_time=span.start_time,
        end_time=span.end_time,
        context=span.context,
    )
    row = row_from_span(span)
    assert row == row_from_span(other)
    assert row is not None
    assert row[COLUMNS.index("attribution")] == '{"tokenbudget.tenant": "acme", "user.id": "\\u00fc-1"}'
    assert row[COLUMNS.index("cost_parts")] == '{"output": 3e-06}'
    assert row[COLUMNS.index("cost_usd")] == "4.8e-06"
    assert row[COLUMNS.index("cost_picodollars")] == 4_800_000
    assert row[COLUMNS.index("estimated")] == 1


@pytest.mark.parametrize(
    ("cost_usd", "expected"),
    [
        ("4.8e-06", 4_800_000),
        ("-4.8e-06", -4_800_000),
        ("0.0", 0),
        ("1e-12", 1),
        ("1e-13", None),
        ("0.30000000000000004", None),
        ("9223372.036854775807", 2**63 - 1),
        ("9223372.036854775808", None),
        ("NaN", None),
        ("Infinity", None),
        ("abc", None),
        (None, None),
    ],
)
def test_a_cost_is_whole_picodollars_only_when_it_is_exactly(cost_usd, expected):
    assert picodollars(cost_usd) == expected


def test_a_refused_call_is_a_row_that_no_spend_report_counts(capsys, instrument, telemetry, tmp_path):
    """A refused call sends nothing and makes no span; the ledger keeps it (exactly $0, no tokens), the
    per-call export lists it, and the reports of spend leave it out."""
    path = tmp_path / "spend.db"
    instrumentor = instrument(ledger=f"sqlite:///{path}", budgets=[Budget("hard", "0.00001")])
    provider = FakeProvider()
    client = openai_client(provider)
    tracer = telemetry.tracer_provider.get_tracer("app")
    with cost_attributes(feature="search", user="u-1"), tracer.start_as_current_span("request") as parent:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=11)
        with pytest.raises(BudgetExceededError):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=11)
    instrumentor.uninstrument()
    assert len(provider.requests) == 1
    rows = (
        sqlite3.connect(path)
        .execute(
            "SELECT provider, operation, request_model, input_tokens, output_tokens, cost_usd,"
            " cost_picodollars, price_source, attribution, trace_id, span_id, error_type, refused"
            " FROM calls ORDER BY rowid"
        )
        .fetchall()
    )
    assert len(rows) == 2
    assert rows[0][-1] == 0
    assert rows[1] == (
        "openai",
        "chat",
        "gpt-4o-mini",
        0,
        0,
        "0",
        0,
        None,
        '{"tokenbudget.feature": "search", "user.id": "u-1"}',
        f"{parent.get_span_context().trace_id:032x}",
        "",
        "BudgetExceededError",
        1,
    )
    code, out, _ = run(capsys, "report", "--ledger", str(path), "--format", "json")
    assert code == 0
    assert json.loads(out)["total"]["calls"] == 1
    assert json.loads(out)["total"]["cost_usd"] == 0.0000078
    assert len(ledger_source.read(str(path))) == 1
    code, out, _ = run(capsys, "export", "--ledger", str(path), "--format", "csv")
    lines = out.splitlines()
    assert code == 0
    assert len(lines) == 3
    assert lines[2].endswith(",BudgetExceededError,true")
