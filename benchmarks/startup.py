"""Import time of the package, and the latency of the first instrumented call.

Each figure is the median over `--runs` fresh processes (`PYTHONHASHSEED=0`, bytecode already
compiled: the first run is a warm-up that is not counted).

- Import: in each process the OTel API (`opentelemetry.trace`, `opentelemetry.metrics`) is imported
  first, then the package is timed on its own: that is the cost "on top of the OTel API" (target
  <= 50 ms). One `-X importtime` run names the modules that weigh most, and says whether
  `genai_prices` (the price data, meant to load on the first call) was imported.
- First call: the first `chat.completions.create` (then the first `messages.create`) of a process,
  against the in-process transport of `harness.py`, instrumented and bare, next to the median of the
  50 calls that follow. The difference between the instrumented and the bare first call is what the
  instrumentation adds to it (price data loading included).

    python benchmarks/startup.py [--runs 15] [--json benchmarks/results/startup.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from report import report

PACKAGE = "opentelemetry_instrumentation_tokenbudget"
_IMPORT_CODE = f"""
import sys, time
import opentelemetry.trace, opentelemetry.metrics
start = time.perf_counter()
import {PACKAGE}
print(time.perf_counter() - start, "genai_prices" in sys.modules)
"""


def _python(*arguments: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONHASHSEED": "0"}
    environment.pop("PYTHONDONTWRITEBYTECODE", None)
    return subprocess.run(
        [sys.executable, *arguments], check=True, capture_output=True, text=True, env=environment
    )


def _importtime_table(stderr: str) -> dict[str, tuple[int, int]]:
    """module -> (self us, cumulative us) from `-X importtime` output."""
    table = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, cumulative, name = (part.strip() for part in line[len("import time:") :].split("|"))
        table[name] = (int(own), int(cumulative))
    return table


def import_time(runs: int) -> dict[str, Any]:
    _python("-c", _IMPORT_CODE)
    seconds = []
    loads_prices = False
    for _ in range(runs):
        elapsed, prices = _python("-c", _IMPORT_CODE).stdout.split()
        seconds.append(float(elapsed))
        loads_prices = loads_prices or prices == "True"
    api_only = _importtime_table(
        _python("-X", "importtime", "-c", "import opentelemetry.trace, opentelemetry.metrics").stderr
    )
    with_package = _importtime_table(_python("-X", "importtime", "-c", _IMPORT_CODE).stderr)
    added = {name: times for name, times in with_package.items() if name not in api_only}
    heaviest = sorted(added.items(), key=lambda item: item[1][0], reverse=True)[:12]
    by_package: dict[str, int] = {}
    for name, (own, _) in added.items():
        # opentelemetry.* is one namespace of many distributions: group it one level deeper.
        parts = name.split(".")
        top = ".".join(parts[:2]) if parts[0] == "opentelemetry" else parts[0]
        by_package[top] = by_package.get(top, 0) + own
    heaviest_packages = sorted(by_package.items(), key=lambda item: item[1], reverse=True)[:12]
    return {
        "on_top_of_otel_api_ms": round(statistics.median(seconds) * 1e3, 1),
        "min_max_ms": [round(min(seconds) * 1e3, 1), round(max(seconds) * 1e3, 1)],
        "runs": runs,
        "genai_prices_imported_at_import": loads_prices,
        "modules_added": len(added),
        "heaviest_packages_self_ms": {name: round(own / 1e3, 2) for name, own in heaviest_packages},
        "heaviest_modules_self_ms": {name: round(own / 1e3, 2) for name, (own, _) in heaviest},
    }


def _first_call_child(instrumented: bool) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    import harness

    from opentelemetry_instrumentation_tokenbudget import TokenBudgetInstrumentor

    tele = harness.telemetry()
    start = time.perf_counter()
    if instrumented:
        TokenBudgetInstrumentor().instrument(
            tracer_provider=tele.tracer_provider, meter_provider=tele.meter_provider
        )
    loaded_prices = "genai_prices" in sys.modules
    # instrument() imports the SDK modules it wraps, which a bare first call would import lazily.
    out: dict[str, Any] = {"instrument": {"first": time.perf_counter() - start, "following": 0.0}}
    if instrumented and loaded_prices:
        print("genai_prices was imported by instrument(), not by the first call", file=sys.stderr)
    every = harness.scenarios()
    for name in (harness.OPENAI_CHAT, harness.ANTHROPIC_MESSAGES):
        call = every[name]
        start = time.perf_counter()
        call()
        first = time.perf_counter() - start
        following = []
        for _ in range(50):
            start = time.perf_counter()
            call()
            following.append(time.perf_counter() - start)
        out[name] = {"first": first, "following": statistics.median(following)}
    spans, _, with_cost = tele.drain()
    if instrumented:
        assert spans == with_cost == 102, (spans, with_cost)
    print(json.dumps(out))


def first_call(runs: int) -> dict[str, Any]:
    samples: dict[str, dict[str, dict[str, list[float]]]] = {}
    _python(__file__, "--child", "bare")
    for _ in range(runs):
        for kind in ("bare", "instrumented"):
            row = json.loads(_python(__file__, "--child", kind).stdout.strip().splitlines()[-1])
            for scenario, times in row.items():
                into = samples.setdefault(scenario, {}).setdefault(kind, {"first": [], "following": []})
                into["first"].append(times["first"])
                into["following"].append(times["following"])
    results = {}
    for scenario, kinds in samples.items():
        figures = {
            f"{kind}_{which}_ms": round(statistics.median(values[which]) * 1e3, 2)
            for kind, values in kinds.items()
            for which in ("first", "following")
        }
        figures["added_to_first_call_ms"] = round(
            figures["instrumented_first_ms"] - figures["bare_first_ms"], 2
        )
        results[scenario] = figures
    results["instrument_ms"] = results.pop("instrument")["instrumented_first_ms"]
    return {"runs": runs, **results}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "startup.json")
    parser.add_argument("--child", choices=["bare", "instrumented"], help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        _first_call_child(options.child == "instrumented")
        return
    results = {"import": import_time(options.runs), "first_call": first_call(max(options.runs // 3, 3))}
    report(results, options.json)


if __name__ == "__main__":
    main()
