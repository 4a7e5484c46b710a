"""`tokenbudget export`: FOCUS 1.0 rows from a ledger of real SDK calls, checked by the FinOps
Foundation's own `focus-validator`, and one CSV row per call."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest

from opentelemetry_instrumentation_tokenbudget import cost_attributes
from opentelemetry_instrumentation_tokenbudget.cli.main import main
from opentelemetry_instrumentation_tokenbudget.finops import focus
from opentelemetry_instrumentation_tokenbudget.finops.spend_record import SpendRecord
from opentelemetry_instrumentation_tokenbudget.testing import FakeProvider

from .test_ledger import MESSAGES, anthropic_client, openai_client

ROOT = Path(__file__).resolve().parent.parent
VALIDATOR = ROOT / ".venv-focus" / "bin" / "focus-validator"
OVERRIDES = Path(__file__).parent / "data" / "focus-validator-overrides.yaml"
A, B = '{"tokenbudget.feature":"a"}', '{"tokenbudget.feature":"b"}'


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def ledger(instrument, telemetry, tmp_path) -> Path:
    path = tmp_path / "spend.db"
    instrumentor = instrument(ledger=f"sqlite:///{path}")
    provider = FakeProvider()
    with cost_attributes(project="acme", feature="search", user="u-1"):
        openai_client(provider).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        openai_client(provider).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    with cost_attributes(feature="summary", variant="b"):
        anthropic_client(provider).messages.create(model="claude-haiku-4-5", max_tokens=64, messages=MESSAGES)
    instrumentor.uninstrument()
    return path


def validate(path: Path) -> str:
    """focus-validator's verdict on `path` (it exits 0 either way: its output says which)."""
    if not VALIDATOR.exists():
        pytest.skip("focus-validator is not installed in .venv-focus (./run tests installs it)")
    site = subprocess.run(
        [str(VALIDATOR.parent / "python"), "-c", "import focus_validator, os;"
         " print(os.path.dirname(os.path.dirname(focus_validator.__file__)))"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    # It reads its currency codes from a path relative to its own installation directory.
    result = subprocess.run(
        [str(VALIDATOR), "--data-file", str(path), "--validate-version", focus.FOCUS_VERSION,
         "--override-file", str(OVERRIDES)],
        check=False, cwd=site, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return result.stdout + result.stderr


def test_focus_rows_pass_focus_validator(capsys, ledger, tmp_path):
    output = tmp_path / "focus.csv"
    code, out, err = run(capsys, "export", "--ledger", str(ledger), "--format", "focus", "-o", str(output))
    assert (code, out, err) == (0, "", "")
    rows = list(csv.DictReader(output.open()))
    assert len(rows) == 2
    mini = next(row for row in rows if row["SkuId"] == "openai/gpt-4o-mini")
    assert {column: mini[column] for column in (
        "BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "BillingCurrency", "ConsumedQuantity",
        "ConsumedUnit", "PricingQuantity", "PricingUnit", "ServiceCategory", "ServiceName", "Provider",
        "ChargeCategory", "ChargeFrequency", "SubAccountId", "Tags", "x_Calls", "x_InputTokens",
        "x_OutputTokens", "x_UnpricedCalls",
    )} == {
        "BilledCost": "0.0000156", "EffectiveCost": "0.0000156", "ListCost": "0.0000156",
        "ContractedCost": "0.0000156", "BillingCurrency": "USD", "ConsumedQuantity": "38.0",
        "ConsumedUnit": "Tokens", "PricingQuantity": "38.0", "PricingUnit": "Tokens",
        "ServiceCategory": "AI and Machine Learning", "ServiceName": "openai chat", "Provider": "openai",
        "ChargeCategory": "Usage", "ChargeFrequency": "Usage-Based", "SubAccountId": "acme",
        "Tags": '{"tokenbudget.feature":"search","tokenbudget.project":"acme"}',
        "x_Calls": "2", "x_InputTokens": "16", "x_OutputTokens": "22", "x_UnpricedCalls": "0",
    }  # fmt: skip
    haiku = next(row for row in rows if row["SkuId"] != "openai/gpt-4o-mini")
    assert json.loads(haiku["Tags"]) == {"tokenbudget.feature": "summary", "variant": "b"}
    assert haiku["SubAccountId"] == ""
    day = mini["ChargePeriodStart"]
    assert day.endswith("T00:00:00Z")
    assert mini["BillingPeriodStart"] == day[:8] + "01T00:00:00Z"
    # What the two overridden checks mean, on the specification's own column names.
    assert "ResourceId" in rows[0]
    assert all(row["SkuPriceId"] for row in rows)
    assert "Validation succeeded." in validate(output)


def test_focus_validator_fails_a_file_that_breaks_the_specification(capsys, ledger, tmp_path):
    output = tmp_path / "focus.csv"
    assert run(capsys, "export", "--ledger", str(ledger), "-o", str(output))[0] == 0
    output.write_text(output.read_text().replace("AI and Machine Learning", "Tokens"))
    verdict = validate(output)
    assert "ServiceCategory_Enum failed" in verdict
    assert "Validation failed!" in verdict


def test_rows_per_day_provider_model_operation_and_tags():
    day = 1_764_547_200  # 2025-12-01T00:00:00Z
    records = [
        SpendRecord(start=day + 10, provider="openai", request_model="m", input_tokens=3, output_tokens=1,
                    cache_read_tokens=2, cost_usd=Decimal("0.1"), attributes={"tokenbudget.feature": "a"}),
        SpendRecord(start=day + 20, provider="openai", request_model="m", input_tokens=5,
                    cost_usd=None, estimated=True, attributes={"tokenbudget.feature": "a"}),
        SpendRecord(start=day + 86400, provider="openai", request_model="m", input_tokens=7,
                    cost_usd=Decimal("0.2"), attributes={"tokenbudget.feature": "a"}),
        SpendRecord(start=day + 30, provider="openai", request_model="m", operation="embeddings",
                    input_tokens=9, cost_usd=Decimal("0.3"), attributes={"tokenbudget.feature": "b"}),
    ]  # fmt: skip
    rows = list(focus.rows(records))
    assert [
        (r["ChargePeriodStart"], r["ServiceName"], r["Tags"], r["BilledCost"], r["ConsumedQuantity"],
         r["x_Calls"], r["x_UnpricedCalls"], r["x_EstimatedCalls"], r["x_CacheReadTokens"])
        for r in rows
    ] == [
        ("2025-12-01T00:00:00Z", "openai chat", A, Decimal("0.1"), 11, 2, 1, 1, 2),
        ("2025-12-01T00:00:00Z", "openai embeddings", B, Decimal("0.3"), 9, 1, 0, 0, 0),
        ("2025-12-02T00:00:00Z", "openai chat", A, Decimal("0.2"), 7, 1, 0, 0, 0),
    ]  # fmt: skip
    assert rows[2]["BillingPeriodEnd"] == "2026-01-01T00:00:00Z"
    # --tags: only the named keys make groups and tags.
    merged = list(focus.rows(records, tag_keys=["tokenbudget.project"]))
    assert [(r["Tags"], r["x_Calls"]) for r in merged] == [("{}", 2), ("{}", 1), ("{}", 1)]


def test_csv_is_one_row_per_call_and_stdout_by_default(capsys, ledger):
    code, out, _ = run(capsys, "export", "--ledger", str(ledger), "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["request_model"], r["input_tokens"], r["output_tokens"], r["cost_usd"]) for r in rows] == [
        ("gpt-4o-mini", "8", "11", "0.0000078"),
        ("gpt-4o-mini", "8", "11", "0.0000078"),
        ("claude-haiku-4-5", "8", "11", "0.000063"),  # 8 x 1 + 11 x 5 USD per million
    ]
    assert json.loads(rows[0]["attribution"]) == {
        "tokenbudget.feature": "search",
        "tokenbudget.project": "acme",
        "user.id": "u-1",
    }
    assert rows[0]["start"].endswith("Z")
    assert len(rows[0]["span_id"]) == 16


def test_an_unwritable_output_is_one_line_exit_2_and_nothing_written(capsys, ledger, tmp_path):
    target = tmp_path / "missing-dir" / "focus.csv"
    code, out, err = run(capsys, "export", "--ledger", str(ledger), "-o", str(target))
    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert f"-o {target}: cannot write there" in err
    assert not target.parent.exists()
