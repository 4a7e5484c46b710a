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

Next to the package's import, and measured the same way (the processes take turns), the import of
the instrumentation base every instrumentation needs (`opentelemetry.instrumentation.instrumentor`,
`instrumentation_base_ms`), and the package's own share: in each process the base is imported
first, untimed, then the package is timed (`own_ms_on_top_of_base`).

`--import-only --modules a,b` measures only the import of those modules (imported together, in one
statement) and of the base. This script imports nothing but the standard library and `report.py` at
module level, so it runs under a peer's environment too (`run.py` does, for the peers' import JSON).

    python benchmarks/startup.py [--runs 15] [--json benchmarks/results/startup.json]
    python benchmarks/startup.py --import-only --modules opentelemetry.instrumentation.openai_v2 [--json P]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from report import report

PACKAGE = "opentelemetry_instrumentation_tokenbudget"
OTEL_API = ("opentelemetry.trace", "opentelemetry.metrics")
# BaseInstrumentor, which every instrumentation subclasses (it pulls wrapt, packaging, importlib.metadata).
INSTRUMENTATION_BASE = "opentelemetry.instrumentation.instrumentor"
# Reported with their versions in every import measurement, when installed.
_DISTRIBUTIONS = ("opentelemetry-api", "opentelemetry-instrumentation", "wrapt", "packaging")


def _import_code(modules: Sequence[str], untimed: Sequence[str] = ()) -> str:
    """A process that imports the OTel API and `untimed`, then prints the time `modules` take."""
    before = [*OTEL_API, *untimed]
    return f"""
import sys, time
import {", ".join(before)}
start = time.perf_counter()
import {", ".join(modules)}
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


def _sample(codes: Sequence[str], runs: int) -> list[tuple[list[float], bool]]:
    """Per code: the seconds it printed in each of `runs` fresh processes, and whether any of them had
    imported genai_prices. One warm-up process per code first (not counted: it compiles the bytecode);
    then the codes take turns, so that a slower moment of the machine weighs on all of them alike."""
    for code in codes:
        _python("-c", code)
    samples: list[tuple[list[float], bool]] = [([], False) for _ in codes]
    for _ in range(runs):
        for index, code in enumerate(codes):
            # The last line: an import may print to stdout before.
            elapsed, prices = _python("-c", code).stdout.strip().splitlines()[-1].split()
            seconds, loaded = samples[index]
            seconds.append(float(elapsed))
            samples[index] = (seconds, loaded or prices == "True")
    return samples


def _ms(seconds: float) -> float:
    return round(seconds * 1e3, 1)


def _heaviest(modules: Sequence[str]) -> dict[str, Any]:
    """One `-X importtime` run: the modules `modules` add to the OTel API, the heaviest by self time."""
    api_only = _importtime_table(_python("-X", "importtime", "-c", f"import {', '.join(OTEL_API)}").stderr)
    with_modules = _importtime_table(_python("-X", "importtime", "-c", _import_code(modules)).stderr)
    added = {name: times for name, times in with_modules.items() if name not in api_only}
    heaviest = sorted(added.items(), key=lambda item: item[1][0], reverse=True)[:12]
    by_package: dict[str, int] = {}
    for name, (own, _) in added.items():
        # opentelemetry.* is one namespace of many distributions: group it one level deeper.
        parts = name.split(".")
        top = ".".join(parts[:2]) if parts[0] == "opentelemetry" else parts[0]
        by_package[top] = by_package.get(top, 0) + own
    heaviest_packages = sorted(by_package.items(), key=lambda item: item[1], reverse=True)[:12]
    return {
        "modules_added": len(added),
        "heaviest_packages_self_ms": {name: round(own / 1e3, 2) for name, own in heaviest_packages},
        "heaviest_modules_self_ms": {name: round(own / 1e3, 2) for name, (own, _) in heaviest},
    }


def _versions(modules: Sequence[str], heaviest_packages: Sequence[str]) -> dict[str, str]:
    """Versions of the OTel API, of the instrumentation base and its dependencies, of the distribution
    of each module (found by its name: `a.b_c` -> `a-b-c`, then `a`), and of the distributions of the
    heaviest packages outside the opentelemetry namespace (the standard library has none)."""
    names = list(_DISTRIBUTIONS)
    for module in modules:
        parts = module.split(".")
        for length in range(len(parts), 0, -1):
            candidate = "-".join(parts[:length]).replace("_", "-")
            with contextlib.suppress(metadata.PackageNotFoundError):
                metadata.version(candidate)
                names.append(candidate)
                break
    owners = metadata.packages_distributions()
    for package in heaviest_packages:
        if not package.startswith("opentelemetry"):
            names.extend(owners.get(package, []))
    versions = {}
    for name in dict.fromkeys(names):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions


def measure_import(modules: Sequence[str], runs: int) -> dict[str, Any]:
    """The import of `modules` (one statement) on top of the OTel API, median over `runs` processes;
    next to it the instrumentation base alone on top of the OTel API, and `modules` on top of both."""
    (total, prices), (base, _), (own, _) = _sample(
        [
            _import_code(modules),
            _import_code([INSTRUMENTATION_BASE]),
            _import_code(modules, [INSTRUMENTATION_BASE]),
        ],
        runs,
    )
    result: dict[str, Any] = {
        "modules": list(modules),
        "on_top_of_otel_api_ms": _ms(statistics.median(total)),
        "min_max_ms": [_ms(min(total)), _ms(max(total))],
        "instrumentation_base_ms": _ms(statistics.median(base)),
        "own_ms_on_top_of_base": _ms(statistics.median(own)),
        "runs": runs,
    }
    if PACKAGE in modules:
        result["genai_prices_imported_at_import"] = prices
    heaviest = _heaviest(modules)
    packages = _versions(modules, list(heaviest["heaviest_packages_self_ms"]))
    return {**result, **heaviest, "packages": packages}


def import_time(runs: int) -> dict[str, Any]:
    """The package's import (`startup.json`'s "import")."""
    return measure_import([PACKAGE], runs)


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
    results: dict[str, Any] = {}
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
    parser.add_argument(
        "--json",
        type=Path,
        help="where to write the results (default: benchmarks/results/startup.json; with --import-only,"
        " nowhere: printed only)",
    )
    parser.add_argument(
        "--import-only",
        action="store_true",
        help="measure only the import of --modules (and of the instrumentation base); runs under any"
        " environment with the OTel API and opentelemetry-instrumentation, e.g. a peer's",
    )
    parser.add_argument(
        "--modules", default=PACKAGE, help="with --import-only: comma-separated modules, imported together"
    )
    parser.add_argument("--child", choices=["bare", "instrumented"], help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        _first_call_child(options.child == "instrumented")
        return
    if options.import_only:
        modules = [module.strip() for module in options.modules.split(",") if module.strip()]
        if not modules:
            parser.error("--modules: no module given")
        report(measure_import(modules, options.runs), options.json)
        return
    results = {"import": import_time(options.runs), "first_call": first_call(max(options.runs // 3, 3))}
    report(results, options.json or Path(__file__).parent / "results" / "startup.json")


if __name__ == "__main__":
    main()
