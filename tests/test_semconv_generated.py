"""The generated convention code is current, valid, and keeps the names the instrumentation imports."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from enum import Enum
from pathlib import Path

import pytest

from opentelemetry_instrumentation_tokenbudget import semconv
from tests.semconv_registry import REGISTRY

ROOT = Path(__file__).resolve().parent.parent
GENERATOR = ROOT / "semconv" / "generate.py"
CONSTANTS = Path("src/opentelemetry_instrumentation_tokenbudget/semconv.py")
REGISTRY_MODULE = Path("tests/semconv_registry.py")
README = Path("semconv/README.md")


def run(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *map(str, args)], cwd=cwd, capture_output=True, text=True, check=False, timeout=300
    )


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of what the generator reads and writes, to break without touching the real tree."""
    shutil.copytree(ROOT / "semconv", tmp_path / "semconv", ignore=shutil.ignore_patterns("__pycache__"))
    for path in (CONSTANTS, REGISTRY_MODULE):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / path, tmp_path / path)
    return tmp_path


def test_generated_files_are_current() -> None:
    result = run(GENERATOR, "--check")
    assert result.returncode == 0, f"run `python semconv/generate.py`:\n{result.stdout}{result.stderr}"


def test_check_names_each_stale_file_and_regenerating_fixes_it(checkout: Path) -> None:
    registry = checkout / "semconv/registry/tokenbudget/registry.yaml"
    text = registry.read_text(encoding="utf-8")
    edited = text.replace(
        "brief: The name of a spend budget, as the user configured it.",
        "brief: The name of a budget, as configured.",
    )
    assert edited != text
    registry.write_text(edited, encoding="utf-8")

    stale = run(checkout / "semconv/generate.py", "--check", "--root", checkout)
    assert stale.returncode == 1, stale.stdout + stale.stderr
    assert f"stale: {CONSTANTS.as_posix()}" in stale.stdout
    assert f"stale: {README.as_posix()}" in stale.stdout
    # Briefs are not part of the machine-readable registry, so that file is still current.
    assert f"stale: {REGISTRY_MODULE.as_posix()}" not in stale.stdout
    assert '+"""The name of a budget, as configured."""' in stale.stdout

    assert run(checkout / "semconv/generate.py", "--root", checkout).returncode == 0
    assert run(checkout / "semconv/generate.py", "--check", "--root", checkout).returncode == 0


def test_a_hand_edit_of_a_generated_table_is_stale(checkout: Path) -> None:
    readme = checkout / README
    readme.write_text(
        readme.read_text(encoding="utf-8").replace("| `{cost}` |", "| `{USD}` |", 1), encoding="utf-8"
    )
    stale = run(checkout / "semconv/generate.py", "--check", "--root", checkout)
    assert stale.returncode == 1
    assert stale.stdout.splitlines()[0] == f"stale: {README.as_posix()}"


def test_an_invalid_registry_is_refused_with_every_problem(checkout: Path) -> None:
    registry = checkout / "semconv/registry/tokenbudget/registry.yaml"
    registry.write_text(
        registry.read_text(encoding="utf-8")
        + """
  - key: tokenbudget.cost
    type: double
    brief: A name that is also a namespace.
    examples: [1.0]
    stability: development
""",
        encoding="utf-8",
    )
    spans = checkout / "semconv/registry/tokenbudget/spans.yaml"
    spans.write_text(
        spans.read_text(encoding="utf-8").replace(
            "- ref: tokenbudget.cost.output", "- ref: tokenbudget.cost.total"
        ),
        encoding="utf-8",
    )
    result = run(checkout / "semconv/generate.py", "--check", "--root", checkout)
    assert result.returncode == 2
    assert (
        "attribute 'tokenbudget.cost' is used as a namespace by attribute 'tokenbudget.cost.input'"
        in result.stderr
    )
    assert "unknown attribute 'tokenbudget.cost.total' in this registry's namespaces" in result.stderr
    assert "attribute 'tokenbudget.cost' is defined but no group or signal uses it" in result.stderr


GENERATED_PYTHON = (CONSTANTS, REGISTRY_MODULE, Path("semconv/generate.py"))


@pytest.mark.skipif(importlib.util.find_spec("ruff") is None, reason="ruff is not installed")
def test_generated_python_passes_ruff() -> None:
    lint = run("-m", "ruff", "check", "--no-cache", *GENERATED_PYTHON)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    formatted = run("-m", "ruff", "format", "--check", "--no-cache", *GENERATED_PYTHON)
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy is not installed")
def test_generated_python_passes_mypy_strict(tmp_path: Path) -> None:
    # The project's configuration is strict already; --strict keeps this test meaningful if it changes.
    result = run("-m", "mypy", "--strict", "--cache-dir", tmp_path / "mypy", *GENERATED_PYTHON)
    assert result.returncode == 0, result.stdout + result.stderr


# The names and values other modules import. A change here is a change of the convention: it must be
# deliberate, made in the registry, and reported.
EXPECTED_CONSTANTS = {
    "GEN_AI_USAGE_COST_AMOUNT": "gen_ai.usage.cost.amount",
    "GEN_AI_USAGE_COST_CURRENCY": "gen_ai.usage.cost.currency",
    "GEN_AI_USAGE_COST_SOURCE": "gen_ai.usage.cost.source",
    "TOKENBUDGET_COST_INPUT": "tokenbudget.cost.input",
    "TOKENBUDGET_COST_CACHE_READ": "tokenbudget.cost.cache_read",
    "TOKENBUDGET_COST_CACHE_WRITE": "tokenbudget.cost.cache_write",
    "TOKENBUDGET_COST_OUTPUT": "tokenbudget.cost.output",
    "TOKENBUDGET_COST_ESTIMATED": "tokenbudget.cost.estimated",
    "TOKENBUDGET_PRICE_SOURCE": "tokenbudget.price.source",
    "TOKENBUDGET_PRICE_VERSION": "tokenbudget.price.version",
    "TOKENBUDGET_PRICE_INFERRED": "tokenbudget.price.inferred",
    "TOKENBUDGET_COST_UNPRICED": "tokenbudget.cost.unpriced",
    "TOKENBUDGET_COST_LIBRARY": "tokenbudget.cost.library",
    "TOKENBUDGET_COST_UPSTREAM": "tokenbudget.cost.upstream",
    "TOKENBUDGET_USAGE_WEB_SEARCHES": "tokenbudget.usage.web_searches",
    "TOKENBUDGET_USAGE_BILLED_UNITS": "tokenbudget.usage.billed_units",
    "TOKENBUDGET_PROJECT": "tokenbudget.project",
    "TOKENBUDGET_FEATURE": "tokenbudget.feature",
    "TOKENBUDGET_TENANT": "tokenbudget.tenant",
    "TOKENBUDGET_BUDGET_NAME": "tokenbudget.budget.name",
    "TOKENBUDGET_BUDGET_GROUP": "tokenbudget.budget.group",
    "TOKENBUDGET_BUDGET_ACTION": "tokenbudget.budget.action",
    "TOKENBUDGET_BUDGET_THRESHOLD": "tokenbudget.budget.threshold",
    "TOKENBUDGET_BUDGET_SPENT": "tokenbudget.budget.spent",
    "TOKENBUDGET_BUDGET_RESERVED": "tokenbudget.budget.reserved",
    "TOKENBUDGET_BUDGET_LIMIT": "tokenbudget.budget.limit",
    "TOKENBUDGET_BUDGET_ESTIMATE": "tokenbudget.budget.estimate",
    "TOKENBUDGET_BUDGET_FORECAST": "tokenbudget.budget.forecast",
    "TOKENBUDGET_PROMPT_PREFIX_HASH": "tokenbudget.prompt.prefix_hash",
    "TOKENBUDGET_OUTCOME_SUCCESS": "tokenbudget.outcome.success",
    "TOKENBUDGET_OUTCOME_SCORE": "tokenbudget.outcome.score",
    "TOKENBUDGET_OUTCOME_EVENT": "tokenbudget.outcome",
    "TOKENBUDGET_BUDGET_EXHAUSTED_AT": "tokenbudget.budget.exhausted_at",
    "TOKENBUDGET_ANOMALY_OBSERVED": "tokenbudget.anomaly.observed",
    "TOKENBUDGET_ANOMALY_EXPECTED": "tokenbudget.anomaly.expected",
    "TOKENBUDGET_ANOMALY_SCORE": "tokenbudget.anomaly.score",
    "TOKENBUDGET_ANOMALY_DRIVER": "tokenbudget.anomaly.driver",
    "TOKENBUDGET_ANOMALY_DRIVER_EXCESS": "tokenbudget.anomaly.driver_excess",
    "TOKENBUDGET_BUDGET_THRESHOLD_CROSSED_EVENT": "tokenbudget.budget.threshold_crossed",
    "TOKENBUDGET_BUDGET_REFUSED_EVENT": "tokenbudget.budget.refused",
    "TOKENBUDGET_BUDGET_FORECAST_EXCEEDED_EVENT": "tokenbudget.budget.forecast_exceeded",
    "TOKENBUDGET_BUDGET_ANOMALY_EVENT": "tokenbudget.budget.anomaly",
    "GEN_AI_CLIENT_OPERATION_COST": "gen_ai.client.operation.cost",
    "GEN_AI_CLIENT_OPERATION_COST_UNIT": "{cost}",  # #443's unit; the provisional `{USD}` is gone
    "TOKENBUDGET_CLIENT_UNPRICED_CALLS": "tokenbudget.client.unpriced_calls",
    "TOKENBUDGET_CLIENT_UNPRICED_CALLS_UNIT": "{call}",
    # Renamed from `tokenbudget.budget.spend`: the naming rules call it `usage` next to limit and
    # utilization; the constant keeps its name.
    "TOKENBUDGET_BUDGET_SPEND": "tokenbudget.budget.usage",
    "TOKENBUDGET_BUDGET_SPEND_UNIT": "{USD}",
    "TOKENBUDGET_BUDGET_LIMIT_METRIC": "tokenbudget.budget.limit",
    "TOKENBUDGET_BUDGET_LIMIT_UNIT": "{USD}",
    "TOKENBUDGET_BUDGET_UTILIZATION": "tokenbudget.budget.utilization",
    "TOKENBUDGET_BUDGET_UTILIZATION_UNIT": "1",
    "TOKENBUDGET_BUDGET_REFUSALS": "tokenbudget.budget.refusals",
    "TOKENBUDGET_BUDGET_REFUSALS_UNIT": "{call}",
    "TOKENBUDGET_BUDGET_THRESHOLD_CROSSINGS": "tokenbudget.budget.threshold_crossings",
    "TOKENBUDGET_BUDGET_THRESHOLD_CROSSINGS_UNIT": "{crossing}",
    "TOKENBUDGET_BUDGET_FORECAST_METRIC": "tokenbudget.budget.forecast",
    "TOKENBUDGET_BUDGET_FORECAST_UNIT": "{USD}",
    "TOKENBUDGET_BUDGET_FORECAST_WARNINGS": "tokenbudget.budget.forecast_warnings",
    "TOKENBUDGET_BUDGET_FORECAST_WARNINGS_UNIT": "{warning}",
    "TOKENBUDGET_BUDGET_ANOMALIES": "tokenbudget.budget.anomalies",
    "TOKENBUDGET_BUDGET_ANOMALIES_UNIT": "{anomaly}",
}
EXPECTED_ENUMS = {
    "GenAiUsageCostSourceValues": {"PROVIDER": "provider", "LOCAL": "local"},
    "TokenbudgetPriceSourceValues": {
        "GENAI_PRICES": "genai-prices",
        "USER": "user",
        "LOCAL_MODEL": "local_model",
    },
    "TokenbudgetBudgetActionValues": {"BLOCK": "block", "WARN": "warn"},
}


def test_the_names_the_instrumentation_imports_are_kept() -> None:
    constants = {name: getattr(semconv, name) for name in EXPECTED_CONSTANTS}
    assert constants == EXPECTED_CONSTANTS
    for class_name, members in EXPECTED_ENUMS.items():
        enum = getattr(semconv, class_name)
        assert issubclass(enum, Enum)
        assert {member.name: member.value for member in enum} == members


def test_nothing_unexpected_is_generated() -> None:
    public = {name for name in vars(semconv) if name.isupper() or name.endswith("Values")}
    assert public == set(EXPECTED_CONSTANTS) | set(EXPECTED_ENUMS)


METRIC_CONSTANTS = {
    "GEN_AI_CLIENT_OPERATION_COST",
    "TOKENBUDGET_CLIENT_UNPRICED_CALLS",
    "TOKENBUDGET_BUDGET_SPEND",
    "TOKENBUDGET_BUDGET_LIMIT_METRIC",
    "TOKENBUDGET_BUDGET_UTILIZATION",
    "TOKENBUDGET_BUDGET_REFUSALS",
    "TOKENBUDGET_BUDGET_THRESHOLD_CROSSINGS",
    "TOKENBUDGET_BUDGET_FORECAST_METRIC",
    "TOKENBUDGET_BUDGET_FORECAST_WARNINGS",
    "TOKENBUDGET_BUDGET_ANOMALIES",
}


def test_the_machine_readable_registry_matches_the_constants() -> None:
    attribute_constants = {
        name
        for name in EXPECTED_CONSTANTS
        if not name.endswith(("_EVENT", "_UNIT")) and name not in METRIC_CONSTANTS
    }
    assert set(REGISTRY["attributes"]) == {EXPECTED_CONSTANTS[name] for name in attribute_constants}
    assert set(REGISTRY["events"]) == {v for k, v in EXPECTED_CONSTANTS.items() if k.endswith("_EVENT")}
    assert {name: spec["unit"] for name, spec in REGISTRY["metrics"].items()} == {
        EXPECTED_CONSTANTS[name]: EXPECTED_CONSTANTS[name.removesuffix("_METRIC") + "_UNIT"]
        for name in METRIC_CONSTANTS
    }
    for enum, key in (
        (semconv.GenAiUsageCostSourceValues, semconv.GEN_AI_USAGE_COST_SOURCE),
        (semconv.TokenbudgetPriceSourceValues, semconv.TOKENBUDGET_PRICE_SOURCE),
        (semconv.TokenbudgetBudgetActionValues, semconv.TOKENBUDGET_BUDGET_ACTION),
    ):
        assert REGISTRY["attributes"][key]["type"] == "enum"
        assert REGISTRY["attributes"][key]["members"] == tuple(member.value for member in enum)
