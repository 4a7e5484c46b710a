"""The part of ``tokenbudget run`` that runs inside the command's Python processes.

``tokenbudget run`` puts a directory holding a ``sitecustomize`` on ``PYTHONPATH`` (as
``opentelemetry-instrument`` does), so every Python process of the command, its subprocesses
included, calls `start` before the program's own code. `start` turns the instrumentation on with:

- the ledger the parent named (``OTEL_INSTRUMENTATION_TOKENBUDGET_LEDGER``), where each call is one row
  that the parent reports on when the command ends;
- with ``--max-cost``, a blocking `Budget` of that amount kept in a SQLite spend store in the run's
  directory, so that the processes share one limit and the call that would pass it is refused before
  it is sent; each refusal is appended to ``refusals.jsonl`` there for the parent to count.

Budgets of the user's own configuration file are kept, next to the gate's. An OpenTelemetry SDK
tracer provider is installed when the program has none yet (the ledger reads the calls' spans).
Nothing here may break the program: a failure is logged and the program runs uninstrumented.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Final

RUN_DIR_ENV: Final = "TOKENBUDGET_RUN_DIR"
MAX_COST_ENV: Final = "TOKENBUDGET_RUN_MAX_COST"
GATE_BUDGET: Final = "tokenbudget run --max-cost"
REFUSALS_FILE: Final = "refusals.jsonl"
SPEND_STORE_FILE: Final = "spend.db"

_logger = logging.getLogger(__name__)


def start() -> None:
    directory = os.environ.get(RUN_DIR_ENV)
    if not directory:
        return
    try:
        _start(Path(directory), os.environ.get(MAX_COST_ENV))
    except Exception:
        _logger.warning("tokenbudget run: could not instrument this process", exc_info=True)


def _start(directory: Path, max_cost: str | None) -> None:
    from opentelemetry import trace

    from . import TokenBudgetInstrumentor
    from .options import CONFIG_ENV

    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        try:
            from opentelemetry.sdk.trace import TracerProvider
        except ImportError:
            _logger.warning("tokenbudget run: opentelemetry-sdk is not installed; the ledger stays empty")
        else:
            trace.set_tracer_provider(TracerProvider())
    options: dict[str, Any] = {}
    if max_cost is not None:
        from .budgets import Budget

        budgets = [Budget(GATE_BUDGET, max_cost)]
        path = os.environ.get(CONFIG_ENV, "").strip()
        store = f"sqlite:///{directory / SPEND_STORE_FILE}"
        if path:
            from .budgets.config_file import read_config_file

            theirs = read_config_file(path)
            budgets = [*theirs.get("budgets", ()), *budgets]
            if theirs.get("store", "memory") not in ("memory", "memory://"):
                store = theirs["store"]
        options = {"budgets": budgets, "store": store}
    instrumentor = TokenBudgetInstrumentor()
    instrumentor.instrument(**options)
    installed = getattr(instrumentor, "_budgets", None)
    if installed is not None:
        installed.guard.on_refusal = lambda error: _record_refusal(directory, error)


def _record_refusal(directory: Path, error: Exception) -> None:
    line = json.dumps({"budget": getattr(error, "budget", ""), "pid": os.getpid(), "message": str(error)})
    # One short append per refusal: O_APPEND keeps the lines of several processes whole.
    with (directory / REFUSALS_FILE).open("a", encoding="utf-8") as file:
        file.write(line + "\n")
