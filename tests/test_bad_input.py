"""Bad input to `tokenbudget report` and `export`, from every source: one line on stderr that names the
thing, exit code 2, nothing on stdout and no output file; `--skip-bad` skips and counts malformed OTLP
lines. (An unreachable Prometheus: tests/test_report_prometheus.py.)"""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import pytest

from opentelemetry_instrumentation_tokenbudget.cli.main import main

from .test_cli_finops import small_file


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    good = small_file(tmp_path)
    malformed = tmp_path / "malformed.jsonl"
    malformed.write_text(good.read_text() + "{not json\n" + good.read_text())
    foreign_json = tmp_path / "foreign.json"
    foreign_json.write_text(json.dumps({"resourceMetrics": []}) + "\n")
    binary = tmp_path / "image.png"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    foreign_db = tmp_path / "other.db"
    sqlite3.connect(foreign_db).execute("CREATE TABLE t (x)").connection.close()
    return {
        "good": good,
        "malformed": malformed,
        "foreign_json": foreign_json,
        "binary": binary,
        "foreign_db": foreign_db,
        "missing": tmp_path / "missing.jsonl",
        "tmp": tmp_path,
    }


CASES = [
    # (source arguments, other arguments, what the line says)
    (["--otlp", "{missing}"], [], "{missing}: cannot read it"),
    (["--otlp", "{binary}"], [], "{binary}: cannot read it"),
    (["--otlp", "{foreign_json}"], [], "{foreign_json}:1: not an OTLP JSON trace request"),
    (["--otlp", "{malformed}"], [], "{malformed}:2: not an OTLP JSON trace request"),
    (["--otlp", "{good}", "{malformed}"], [], "{malformed}:2: not an OTLP JSON trace request"),
    (["--ledger", "{foreign_db}"], [], "{foreign_db}: not a tokenbudget ledger"),
    (["--ledger", "{good}"], [], "{good}: cannot read it as a ledger"),
    (["--ledger", "{missing}"], [], "{missing}: no such ledger file"),
    (["--ledger", "postgres://db/spend"], [], "postgres://db/spend"),
    (["--otlp", "{good}"], ["--since", "last tuesday"], "'last tuesday': expected a duration"),
    (["--otlp", "{good}"], ["--where", "feature"], "--where 'feature': expected KEY=VALUE"),
]


@pytest.mark.parametrize(("source", "other", "message"), CASES)
@pytest.mark.parametrize("command", ["report", "export"])
def test_one_line_exit_2_nothing_written(capsys, files, command, source, other, message):  # noqa: PLR0917
    names = {name: str(path) for name, path in files.items()}
    output = files["tmp"] / "out.csv"
    argv = [command, *(part.format(**names) for part in source), *other]
    if command == "export":
        argv += ["-o", str(output)]
    code, out, err = run(capsys, *argv)
    assert (code, out) == (2, ""), err
    assert err.count("\n") == 1
    assert err.startswith(f"tokenbudget {command}: ")
    assert message.format(**names) in err
    assert not output.exists()
    assert [path.name for path in files["tmp"].iterdir() if path.name.startswith(".out.csv")] == []


@pytest.mark.parametrize(
    "source", [["--otlp", "{good}"], ["--prometheus", "http://127.0.0.1:9"], ["--ledger", "{missing}"]]
)
def test_an_unknown_by_key_is_refused_before_reading(capsys, files, source):
    names = {name: str(path) for name, path in files.items()}
    code, out, err = run(capsys, "report", *(part.format(**names) for part in source), "--by", "colour")
    assert (code, out) == (2, "")
    assert err.startswith("tokenbudget report: --by 'colour': unknown key; use an attribute name or one of")
    assert err.count("\n") == 1


def test_skip_bad_skips_and_counts_malformed_lines(capsys, files):
    code, out, err = run(
        capsys, "report", "--otlp", str(files["malformed"]), "--skip-bad", "--format", "json"
    )
    assert code == 0
    assert err == "tokenbudget: skipped 1 malformed line(s)\n"
    # The good file's 5 calls; its second copy repeats the same spans (same ids), counted once.
    assert json.loads(out)["total"]["calls"] == 5
    output = files["tmp"] / "focus.csv"
    code, out, err = run(capsys, "export", "--otlp", str(files["malformed"]), "--skip-bad", "-o", str(output))
    assert (code, out, err) == (0, "", "tokenbudget: skipped 1 malformed line(s)\n")
    rows = list(csv.DictReader(output.open()))
    # user.id is no tag unless named (--tags): one group.
    assert [(row["Tags"], row["x_Calls"], row["x_UnpricedCalls"]) for row in rows] == [
        ('{"tokenbudget.feature":"search"}', "5", "1"),
    ]


def test_plot_needs_calls_not_aggregates(capsys, files):
    code, out, err = run(
        capsys, "report", "--prometheus", "http://127.0.0.1:9", "--plot", str(files["tmp"] / "p.png")
    )
    assert (code, out) == (2, "")
    assert "--plot: needs calls (--ledger or --otlp)" in err
