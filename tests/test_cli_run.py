"""`tokenbudget run`: a command's Python processes instrumented through sitecustomize, over the fake
provider's loopback server (the OpenAI SDK's own HTTP client); the gate's exit codes and output.

Each call (gpt-4o-mini, a 400-character prompt, max_tokens=10) costs 19.65 microdollars and is
estimated at 21 before sending: a --max-cost of 0.0001 admits five calls (19.65 * 4 + 21 <= 100).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from opentelemetry_instrumentation_tokenbudget.testing import FakeProviderServer

CALLS = """
import subprocess
import sys

import openai

from opentelemetry_instrumentation_tokenbudget import BudgetExceededError

url, calls, children = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
client = openai.OpenAI(api_key="test", base_url=url, max_retries=0)
try:
    for _ in range(calls):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x" * 400}], max_tokens=10
        )
except BudgetExceededError as refused:
    print("refused:", refused.budget)
for _ in range(children):
    subprocess.run([sys.executable, __file__, url, str(calls), "0"], check=True)
sys.exit(int(sys.argv[4]) if len(sys.argv) > 4 else 0)
"""


@pytest.fixture
def server() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as running:
        yield running


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "calls.py"
    path.write_text(CALLS)
    return path


def tokenbudget(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "opentelemetry_instrumentation_tokenbudget.cli.main", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        check=False,
    )


def test_max_cost_stops_a_runaway_script_and_its_subprocesses(
    server: FakeProviderServer, script: Path, tmp_path: Path
) -> None:
    # The script makes up to 1000 calls, then starts two copies of itself that do the same: one
    # budget in a shared SQLite store spans the three processes.
    result = tokenbudget(
        "run", "--max-cost", "0.0001", "--report-json", "verdict.json", "--",
        sys.executable, str(script), server.base_url_openai, "1000", "2",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 3, result.stderr
    assert len(server.provider.requests) == 5
    assert result.stdout.splitlines() == ["refused: tokenbudget run --max-cost"] * 3
    assert (
        "tokenbudget run: gate failed: 3 calls refused before sending by the budget of --max-cost $0.0001;"
        " 5 requests reached the provider"
    ) in result.stderr.splitlines()
    verdict = json.loads((tmp_path / "verdict.json").read_text())
    assert verdict["exit_code"] == 0
    assert verdict["refused_calls"] == 3
    assert verdict["report"]["total"]["calls"] == 5
    assert verdict["report"]["total"]["cost_usd"] == 0.00009825
    assert verdict["gate"]["passed"] is False


def test_the_commands_exit_code_passes_through_and_the_report_is_printed(
    server: FakeProviderServer, script: Path, tmp_path: Path
) -> None:
    result = tokenbudget(
        "run", "--max-cost", "1", "--", sys.executable, str(script), server.base_url_openai, "2", "0", "7",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 7, result.stderr
    assert len(server.provider.requests) == 2
    lines = result.stderr.splitlines()
    assert (
        lines[0] == f"tokenbudget run: {sys.executable} {script} {server.base_url_openai} 2 0 7 exited with 7"
    )
    assert any(line.startswith("model=gpt-4o-mini") and "0.0000393" in line for line in lines), lines
    assert "gate failed" not in result.stderr


def test_a_baseline_regression_fails_the_gate(
    server: FakeProviderServer, script: Path, tmp_path: Path
) -> None:
    url = server.base_url_openai
    written = tokenbudget(
        "run", "--write-baseline", "baseline.json", "--", sys.executable, str(script), url, "2", "0",
        cwd=tmp_path,
    )  # fmt: skip
    assert written.returncode == 0, written.stderr
    assert json.loads((tmp_path / "baseline.json").read_text()) == {
        "version": 1,
        "by": ["model"],
        "total_usd": "0.0000393",
        "groups": [{"key": {"model": "gpt-4o-mini"}, "calls": 2, "cost_usd": "0.0000393"}],
    }
    same = tokenbudget(
        "run", "--baseline", "baseline.json", "--", sys.executable, str(script), url, "2", "0", cwd=tmp_path
    )
    assert same.returncode == 0, same.stderr
    worse = tokenbudget(
        "run", "--baseline", "baseline.json", "--max-increase", "20", "--",
        sys.executable, str(script), url, "3", "0",
        cwd=tmp_path,
    )  # fmt: skip
    assert worse.returncode == 3
    assert (
        "tokenbudget run: gate failed: model=gpt-4o-mini: $0.00005895 against the baseline's $0.0000393"
        " (+50.0%), more than --max-increase 20%"
    ) in worse.stderr.splitlines()


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--max-cost", "lots"], "--max-cost 'lots': expected a number"),
        (["--max-cost", "-1"], "--max-cost '-1': expected a finite number >= 0"),
        (["--max-increase", "5"], "--max-increase needs --baseline FILE"),
        (["--baseline", "absent.json"], "--baseline absent.json: No such file or directory"),
        (["--baseline", "bad.json"], "--baseline bad.json: not a tokenbudget baseline (expected version 1)"),
        (["--by", "colour"], "--by 'colour': unknown key; use an attribute name or one of"),
        (["--ledger", "redis://x"], "--ledger redis://x: expected sqlite:///path/spend.db or a file's path"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], error: str, tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text('{"version": 0}')
    result = tokenbudget("run", *args, "--", "true", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"tokenbudget run: {error}")


@pytest.mark.parametrize(
    ("command", "error"),
    [
        ([], "no command given: tokenbudget run [OPTIONS] -- COMMAND [ARGS...]"),
        (["--", "no-such-command-here"], "no-such-command-here: command not found"),
    ],
)
def test_a_missing_command_is_bad_input(command: list[str], error: str, tmp_path: Path) -> None:
    result = tokenbudget("run", *command, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"tokenbudget run: {error}"]
