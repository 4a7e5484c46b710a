"""`tokenbudget run`: run a command with the instrumentation on, report its LLM cost, gate on it.

The command runs with a ``sitecustomize`` on ``PYTHONPATH`` (see `cost_gate`), so each of its Python
processes records its calls in one ledger (a temporary SQLite file, or ``--ledger``) and, with
``--max-cost``, shares one hard budget kept in a SQLite spend store: the call that would pass it is
refused before it is sent. When the command ends the cost report is printed (on stderr: stdout stays
the command's) and the gate decides the exit code:

- 3 when the total is above ``--max-cost``, a call was refused by the budget ``--max-cost``
  installed, or the cost of a group is above the ``--baseline``'s by more than ``--max-increase``
  percent (a group absent from the baseline counts as an increase from $0);
- otherwise the command's own exit code;
- 2 for bad input (a one-line error; the command is not run).

``--write-baseline FILE`` writes the run's cost per group as a small JSON file meant to be committed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Final

from ..cost_gate import GATE_BUDGET, MAX_COST_ENV, REFUSALS_FILE, RUN_DIR_ENV
from ..errors import format_usd
from ..finops.report import FIGURES, KEY_NAMES, report
from ..finops.sources import ledger as ledger_source
from ..finops.sources.otlp_json import SourceError
from ..options import LEDGER_ENV
from . import render

GATE_FAILED: Final = 3
BAD_INPUT: Final = 2
BASELINE_VERSION: Final = 1
DEFAULT_BY: Final = ("model",)
DEFAULT_MAX_INCREASE: Final = Decimal(10)
SITE_DIR: Final = Path(__file__).resolve().parent.parent / "_run_site"


class RunUsageError(Exception):
    """Bad input: one line, exit code 2."""


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "run",
        help="run a command with the instrumentation on; exit 3 when its LLM cost fails the gate",
        description=(__doc__ or "").split("\n\n")[0],
    )
    parser.add_argument(
        "--max-cost", metavar="USD", help="hard limit on the run's cost (refused before sending)"
    )
    parser.add_argument("--baseline", type=Path, metavar="FILE", help="cost per group of a previous run")
    parser.add_argument(
        "--max-increase",
        metavar="PCT",
        help="allowed increase of a group's cost over the baseline (default 10)",
    )
    parser.add_argument("--write-baseline", type=Path, metavar="FILE", help="write this run's cost per group")
    parser.add_argument(
        "--by", help=f"group by these keys (default model): {', '.join(KEY_NAMES)} or attributes"
    )
    parser.add_argument(
        "--ledger", metavar="URL", help="keep the calls in this ledger (default: a temporary one)"
    )
    parser.add_argument("--report-json", type=Path, metavar="FILE", help="write the report and the verdict")
    parser.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARGS...]")


def main(args: argparse.Namespace) -> int:
    try:
        gate = _Gate(args)
    except RunUsageError as error:
        print(f"tokenbudget run: {error}", file=sys.stderr)
        return BAD_INPUT
    return gate.run()


def _amount(option: str, value: str | None) -> Decimal | None:
    if value is None:
        return None
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise RunUsageError(f"{option} {value!r}: expected a number") from None
    if not amount.is_finite() or amount < 0:
        raise RunUsageError(f"{option} {value!r}: expected a finite number >= 0")
    return amount


def _by(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    keys = tuple(key.strip() for key in value.split(",") if key.strip())
    for key in keys:
        if key not in KEY_NAMES and "." not in key:
            raise RunUsageError(
                f"--by {key!r}: unknown key; use an attribute name or one of {', '.join(KEY_NAMES)}"
            )
    return keys


def _group_name(key: dict[str, str]) -> str:
    return ",".join(f"{name}={value}" for name, value in key.items()) or "total"


def read_baseline(path: Path) -> tuple[tuple[str, ...], dict[str, Decimal]]:
    """The baseline's keys and cost per group (named as `_group_name` does)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        if document.get("version") != BASELINE_VERSION:
            raise ValueError(f"expected version {BASELINE_VERSION}")
        by = tuple(str(key) for key in document["by"])
        costs = {_group_name(group["key"]): Decimal(str(group["cost_usd"])) for group in document["groups"]}
    except OSError as error:
        raise RunUsageError(f"--baseline {path}: {error.strerror or error}") from None
    except (ValueError, KeyError, TypeError, AttributeError, InvalidOperation) as error:
        raise RunUsageError(f"--baseline {path}: not a tokenbudget baseline ({error!s})") from None
    return by, costs


class _Gate:
    def __init__(self, args: argparse.Namespace) -> None:
        argv = list(args.argv)
        if argv and argv[0] == "--":
            argv = argv[1:]
        if not argv:
            raise RunUsageError("no command given: tokenbudget run [OPTIONS] -- COMMAND [ARGS...]")
        self.argv = argv
        self.max_cost = _amount("--max-cost", args.max_cost)
        self.max_increase = _amount("--max-increase", args.max_increase)
        by = _by(args.by)
        self.baseline: dict[str, Decimal] | None = None
        if args.baseline is not None:
            baseline_by, self.baseline = read_baseline(args.baseline)
            if by is not None and by != baseline_by:
                raise RunUsageError(
                    f"--by {','.join(by)}: the baseline {args.baseline} is by {','.join(baseline_by)}"
                )
            by = baseline_by
        elif self.max_increase is not None:
            raise RunUsageError("--max-increase needs --baseline FILE")
        self.by = by if by is not None else DEFAULT_BY
        self.ledger = args.ledger
        if self.ledger is not None:
            try:
                ledger_source.path_of(self.ledger)
            except SourceError as error:
                raise RunUsageError(str(error)) from None
        self.write_baseline: Path | None = args.write_baseline
        self.report_json: Path | None = args.report_json
        if shutil.which(argv[0]) is None and not Path(argv[0]).is_file():
            raise RunUsageError(f"{argv[0]}: command not found")

    def run(self) -> int:
        directory = Path(tempfile.mkdtemp(prefix="tokenbudget-run-"))
        try:
            return self._run(directory)
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    def _run(self, directory: Path) -> int:
        import os

        ledger = self.ledger or f"sqlite:///{directory / 'ledger.db'}"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(SITE_DIR), env.get("PYTHONPATH"))))
        env[RUN_DIR_ENV] = str(directory)
        env[LEDGER_ENV] = ledger
        if self.max_cost is not None:
            env[MAX_COST_ENV] = str(self.max_cost)
        started = time.time()
        try:
            code = subprocess.call(self.argv, env=env)
        except OSError as error:
            print(f"tokenbudget run: {self.argv[0]}: {error.strerror or error}", file=sys.stderr)
            return BAD_INPUT
        try:
            records = ledger_source.read(ledger, since=started - 1) if _exists(ledger) else []
        except SourceError as error:
            print(f"tokenbudget run: {error}", file=sys.stderr)
            return BAD_INPUT
        document = report(records, by=self.by)
        refusals = _refusals(directory / REFUSALS_FILE)
        failures = self._failures(document, refusals)
        self._print(document, code, refusals, failures)
        if self.write_baseline is not None:
            self.write_baseline.write_text(
                render.to_json(_baseline(document, self.by)) + "\n", encoding="utf-8"
            )
        if self.report_json is not None:
            verdict = {
                "command": self.argv,
                "exit_code": code,
                "refused_calls": refusals,
                "gate": {"passed": not failures, "failures": failures},
                "report": document,
            }
            self.report_json.write_text(render.to_json(verdict) + "\n", encoding="utf-8")
        return GATE_FAILED if failures else code

    def _failures(self, document: dict[str, Any], refusals: int) -> list[str]:
        failures: list[str] = []
        total: Decimal = document["total"]["cost_usd"]
        calls = document["total"]["calls"]
        if self.max_cost is not None:
            if total > self.max_cost:
                failures.append(f"total {format_usd(total)} is above --max-cost {format_usd(self.max_cost)}")
            if refusals:
                failures.append(
                    f"{refusals} call{'s' if refusals > 1 else ''} refused before sending by the budget of"
                    f" --max-cost {format_usd(self.max_cost)}; {calls} request{'s' if calls != 1 else ''}"
                    " reached the provider"
                )
        if self.baseline is not None:
            percent = self.max_increase if self.max_increase is not None else DEFAULT_MAX_INCREASE
            allowed = 1 + percent / 100
            for group in document["groups"]:
                name = _group_name(group["key"])
                cost: Decimal = group["cost_usd"]
                before = self.baseline.get(name, Decimal(0))
                if cost > before * allowed:
                    change = f"+{(cost / before - 1) * 100:.1f}%" if before else "new"
                    failures.append(
                        f"{name}: {format_usd(cost)} against the baseline's {format_usd(before)} ({change}),"
                        f" more than --max-increase {_plain(percent)}%"
                    )
        return failures

    def _print(self, document: dict[str, Any], code: int, refusals: int, failures: list[str]) -> None:
        out = sys.stderr
        rows = [{"key": _group_name(group["key"]), **group} for group in document["groups"]]
        print(f"tokenbudget run: {' '.join(self.argv)} exited with {code}", file=out)
        print(render.table([*rows, {"key": "total", **document["total"]}], ("key", *FIGURES)), file=out)
        if refusals:
            print(f"tokenbudget run: {refusals} call(s) refused by {GATE_BUDGET!r}", file=out)
        for failure in failures:
            print(f"tokenbudget run: gate failed: {failure}", file=out)
        if failures:
            print(f"tokenbudget run: exit {GATE_FAILED} (the command's own exit code was {code})", file=out)


def _exists(ledger: str) -> bool:
    return ledger_source.path_of(ledger).is_file()


def _refusals(path: Path) -> int:
    try:
        with path.open(encoding="utf-8") as file:
            return sum(1 for line in file if line.strip())
    except FileNotFoundError:
        return 0


def _baseline(document: dict[str, Any], by: Sequence[str]) -> dict[str, Any]:
    return {
        "version": BASELINE_VERSION,
        "by": list(by),
        "total_usd": _plain(document["total"]["cost_usd"]),
        "groups": [
            {"key": group["key"], "calls": group["calls"], "cost_usd": _plain(group["cost_usd"])}
            for group in document["groups"]
        ],
    }


def _plain(amount: Decimal) -> str:
    """Exact and without trailing zeros or an exponent: 0.0000393."""
    return f"{amount.normalize():f}"
