"""`tokenbudget forecast | anomalies | whatif | advise` over OTLP JSON files (the Collector's file
exporter format) holding histories of known truth; bad input exits 2 with one line."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from opentelemetry_instrumentation_tokenbudget.cli.main import main
from opentelemetry_instrumentation_tokenbudget.finops import anomalies as an

from .finops_history import (
    HOUR,
    SHIFT_HOURS,
    Call,
    calls_from_history,
    make_history,
    write_otlp,
)


@pytest.fixture(scope="module")
def history_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("otlp") / "history.jsonl"
    write_otlp(calls_from_history(make_history(43, base_per_hour=0.2)), path)
    return path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_forecast_json_with_its_backtest_and_the_limit(capsys, history_file, tmp_path):
    plot = tmp_path / "forecast.png"
    code, out, _ = run(
        capsys, "forecast", "--otlp", str(history_file), "--window", "day", "--at", "2026-10-19T10:30:00Z",
        "--limit", "6.57", "--format", "json", "--plot", str(plot),
    )  # fmt: skip
    assert code == 0
    document = json.loads(out)
    # The same figures as the computation itself (test_finops_forecast): the file loses nothing.
    assert document["window"] == {"start": "2026-10-19T00:00:00Z", "end": "2026-10-20T00:00:00Z"}
    assert document["method"] == "seasonal-naive"
    assert document["backtest"]["windows"] == 28
    assert document["backtest"]["mape"]["seasonal-naive"] == {
        "all": 0.0348,
        "0.25": 0.0492,
        "0.5": 0.0385,
        "0.75": 0.0169,
    }
    assert document["groups"] == [
        {
            "key": {},
            "spent_usd": 1.728,
            "forecast_usd": 8.01,
            "low_usd": 7.981511733,
            "high_usd": 8.841550388,
            "limit_usd": 6.57,
            "exhausted_at": "2026-10-19T19:36:40Z",
            "method": "seasonal-naive",
        }
    ]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_forecast_table_by_feature(capsys, history_file):
    code, out, _ = run(capsys, "forecast", "--otlp", str(history_file), "--window", "day", "--by", "feature",
                       "--at", "2026-10-19T10:30:00Z")  # fmt: skip
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "window 2026-10-19T00:00:00Z .. 2026-10-20T00:00:00Z, method seasonal-naive"
    assert lines[5] == "seasonal-naive  0.0348   0.0492  0.0385   0.0169"
    assert [line.split()[0] for line in lines[-2:]] == ["feature=search", "feature=chat"]


def test_anomalies_find_the_injected_events_and_their_driver(capsys, tmp_path):
    made = make_history(
        56, base_per_hour=0.2, spikes=6, shifts=3, spike_size=(1.5, 4), shift_factor=1.8, seed=0
    )
    path = tmp_path / "spiky.jsonl"
    write_otlp(calls_from_history(made), path)
    code, out, _ = run(capsys, "anomalies", "--otlp", str(path), "--since", "2026-09-21", "--until",
                       "2026-11-02", "--drivers", "feature", "--format", "json")  # fmt: skip
    assert code == 0
    found = json.loads(out)["anomalies"]
    events = [(made.time_of(i), made.time_of(i + 1)) for i in made.spikes]
    events += [(made.time_of(i), made.time_of(i + SHIFT_HOURS)) for i in made.shifts]

    def epoch(text: str) -> float:
        from datetime import datetime

        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()

    anomalies = [an.Anomaly(epoch(a["start"]), epoch(a["end"]), a["key"], 0, 0, 0) for a in found]
    precision, recall = an.score_against_truth(anomalies, events)
    # 7 of the 9 events, as the computation itself finds on this history (test_finops_anomalies).
    assert (round(precision, 4), round(recall, 4)) == (1.0, 0.7778)
    spike = next(a for a in found if epoch(a["start"]) == made.time_of(made.spikes[1]))
    assert spike["drivers"][0]["key"] == {"feature": "export"}
    assert epoch(spike["end"]) - epoch(spike["start"]) == HOUR


def small_file(tmp_path: Path) -> Path:
    t0 = 1_795_000_000.0
    calls = [
        Call(
            start=t0 + i,
            cost_usd=Decimal("0.009"),
            max_tokens=4096,
            attributes={"tokenbudget.feature": "search", "user.id": "u-1"},
        )
        for i in range(4)
    ] + [Call(start=t0 + 10, cost_usd=None, attributes={"tokenbudget.feature": "search"})]
    path = tmp_path / "small.jsonl"
    write_otlp(calls, path)
    return path


def test_whatif_and_advise(capsys, tmp_path):
    path = small_file(tmp_path)
    code, out, _ = run(
        capsys, "whatif", "--otlp", str(path), "--model", "gpt-4o=gpt-4o-mini", "--format", "json"
    )
    assert code == 0
    assert json.loads(out)["groups"] == [
        {
            "key": {"feature": "search"},
            "calls": 4,
            "current_usd": 0.036,
            "projected_usd": 0.00216,
            "projected_high_usd": None,
            "saving_usd": 0.03384,
            "unpriced_calls": 1,
        }
    ]
    code, out, _ = run(
        capsys, "advise", "--otlp", str(path), "--since", "2026-11-01", "--until", "2026-12-01"
    )
    assert code == 0
    assert out.splitlines()[2].split() == [
        "cheaper-model",
        "feature=search,model=gpt-4o",
        "4",
        "0.0360",
        "0.00216000",
        "0.0338",
    ]
    assert "1. serve feature 'search' with gpt-4o-mini instead of gpt-4o" in out
    assert "max_tokens=4096 and its largest output was 400 tokens: max_tokens=800" in out


def test_bad_input_is_one_line_and_exit_2(capsys, tmp_path):
    path = small_file(tmp_path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(path.read_text() + "{not json\n")
    code, out, err = run(capsys, "advise", "--otlp", str(bad))
    assert (code, out) == (2, "")
    assert err == (
        f"tokenbudget advise: {bad}:2: not an OTLP JSON trace request (ExportTraceServiceRequest);"
        " --skip-bad skips such lines\n"
    )
    code, _, err = run(capsys, "whatif", "--otlp", str(bad), "--skip-bad", "--model", "gpt-4o=gpt-4o-mini")
    assert (code, err) == (0, "tokenbudget: skipped 1 malformed line(s)\n")
    code, _, err = run(capsys, "forecast", "--otlp", str(path), "--by", "colour")
    assert code == 2
    assert err.startswith(
        "tokenbudget forecast: --by 'colour': unknown key; use an attribute name or one of model,"
    )
    code, _, err = run(capsys, "forecast", "--otlp", str(tmp_path / "missing.jsonl"))
    assert code == 2
    assert err.startswith(f"tokenbudget forecast: {tmp_path / 'missing.jsonl'}: cannot read it")
