"""The FinOps commands give the same answers whatever the source: one history of known truth, written
as the Collector's OTLP JSON file and as our SQLite ledger (by the ledger's own writer, from real SDK
spans), read back by `forecast`, `anomalies`, `advise` and `report` with identical JSON output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind

from opentelemetry_instrumentation_tokenbudget.cli.main import main
from opentelemetry_instrumentation_tokenbudget.ledger.writer import LedgerWriter

from .finops_history import Call, calls_from_history, make_history, write_otlp

AT = "2026-10-12T10:30:00Z"


def _span(number: int, call: Call) -> ReadableSpan:
    attributes: dict[str, object] = {
        "gen_ai.operation.name": call.operation,
        "gen_ai.provider.name": call.provider,
        "gen_ai.request.model": call.request_model,
        "gen_ai.usage.input_tokens": call.input_tokens,
        "gen_ai.usage.output_tokens": call.output_tokens,
        **dict(call.attributes),
    }
    if call.cost_usd is not None:
        attributes["gen_ai.usage.cost.amount"] = float(call.cost_usd)
    nanos = int(call.start * 1e9)
    return ReadableSpan(
        name=f"{call.operation} {call.request_model}",
        context=SpanContext(number + 1, number + 1, is_remote=False),
        kind=SpanKind.CLIENT,
        attributes=attributes,  # type: ignore[arg-type]
        start_time=nanos,
        end_time=nanos,
    )


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    calls = calls_from_history(make_history(36, base_per_hour=0.05, spikes=3, shifts=1))
    folder = tmp_path_factory.mktemp("sources")
    otlp = folder / "history.jsonl"
    write_otlp(calls, otlp)
    ledger = folder / "spend.db"
    writer = LedgerWriter(f"sqlite:///{ledger}")
    for number, call in enumerate(calls):
        writer.add(_span(number, call))
    writer.close()
    return otlp, ledger


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> object:
    assert main([*argv, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(
    "command",
    [
        ("forecast", "--window", "day", "--at", AT, "--limit", "6.57"),
        ("anomalies", "--since", "2026-09-07", "--until", AT),
        ("advise", "--since", "2026-09-07", "--until", AT),
        ("report", "--since", "2026-09-07", "--until", AT, "--by", "feature,day"),
    ],
    ids=lambda command: command[0],
)
def test_the_ledger_and_the_otlp_file_give_the_same_answer(
    capsys: pytest.CaptureFixture[str], sources: tuple[Path, Path], command: tuple[str, ...]
) -> None:
    otlp, ledger = sources
    from_otlp = _json(capsys, *command, "--otlp", str(otlp))
    from_ledger = _json(capsys, *command, "--ledger", f"sqlite:///{ledger}")

    assert from_ledger == from_otlp
    # And says something: two sources that both read nothing would agree too.
    assert isinstance(from_otlp, dict)
    found = {"forecast": "groups", "anomalies": "anomalies", "advise": "advice", "report": "groups"}
    assert from_otlp[found[command[0]]], from_otlp


def test_the_ledger_and_the_otlp_file_give_the_same_focus_export(
    capsys: pytest.CaptureFixture[str], sources: tuple[Path, Path]
) -> None:
    """The ledger's FOCUS rows are summed by SQLite (integer picodollars), the OTLP file's in Python."""
    otlp, ledger = sources
    exported = []
    for source in (["--otlp", str(otlp)], ["--ledger", str(ledger)]):
        assert main(["export", *source, "--until", AT]) == 0
        exported.append(capsys.readouterr().out)
    assert exported[0] == exported[1]
    assert len(exported[0].splitlines()) > 10
