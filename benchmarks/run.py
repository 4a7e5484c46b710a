"""The whole benchmark suite, in one command: `./run bench` (or `.venv/bin/python benchmarks/run.py`).

1. Creates a virtual environment per peer instrumentation under `.bench-venvs/<name>` (once; again
   when its requirements change), with the provider SDKs and OpenTelemetry pinned to the versions of
   the environment running this script, so that every ratio has the same denominator.
2. Runs the overhead harness for ours and for each peer, each with its environment's Python.
3. Runs the budget, instruction-count, processor, startup, memory and ledger benchmarks with this
   Python.
4. Prints one table, with each target next to its measured figure, and writes every part as JSON
   to `benchmarks/results/` (`summary.json` holds the table).

    ./run bench [--quick] [--only overhead,budgets,instructions,processor,startup,memory,ledger] [--no-peers]

`--quick` is for checking that everything runs (fewer rounds, 100,000 calls for memory); its figures
are not the ones to quote.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
VENVS = ROOT / ".bench-venvs"

# Pinned in every peer environment to what this environment has.
SHARED = [
    "openai",
    "anthropic",
    "httpx2",
    "opentelemetry-api",
    "opentelemetry-sdk",
    "opentelemetry-instrumentation",
    "opentelemetry-semantic-conventions",
]
PEERS: dict[str, list[str]] = {
    "openllmetry": [
        "opentelemetry-instrumentation-openai==0.62.4",
        "opentelemetry-instrumentation-anthropic==0.62.4",
    ],
    # 2.4b0 does not import with the opentelemetry-util-genai on the registry (a missing module), and
    # 2.3b0 calls wrapt.wrap_function_wrapper(module=...), which wrapt 2 rejects; its utils import
    # httpx (the SDK itself now uses httpx2).
    "openai-v2": ["opentelemetry-instrumentation-openai-v2==2.3b0", "wrapt<2", "httpx"],
}
# What each peer's import is measured on (`startup.py --import-only`, with the peer's Python).
PEER_IMPORTS: dict[str, list[str]] = {
    "openai-v2": ["opentelemetry.instrumentation.openai_v2"],
    "openllmetry": ["opentelemetry.instrumentation.openai", "opentelemetry.instrumentation.anthropic"],
}
PARTS = ("overhead", "budgets", "instructions", "processor", "startup", "memory", "ledger")

TARGETS = {
    "non-streaming ratio": 1.05,
    "streaming ratio": 1.05,
    # What ours adds per call over what sdk-floor adds (instrumented minus bare, each against its own
    # bare rounds), in the non-streaming scenario where it is largest: 1.0 is the floor itself.
    "added / sdk-floor's, non-streaming": 1.10,
    # The same in instructions (callgrind, instructions.py --floor): what load does not move.
    "added / sdk-floor's, instructions": 1.10,
    # Ours' ratio minus sdk-floor's on Anthropic messages (the SDK's own tracing is paid by both).
    "anthropic messages ratio - floor": 0.03,
    "processor us per span": 5.0,
    # Budget enforcement: a call with the two budgets of budgets.py minus the same call without them
    # (the median of pairs of short batches with the budgets' guard in and out of the call's path).
    "budgets memory us per call": 10.0,
    "budgets sqlite us per call": 60.0,
    "redis round trips per call": 2.0,
    # What redis budgets add per call beyond their round trips' own time (PINGs on the same loopback).
    "redis us per call over round trips": 20.0,
    "import ms on top of the OTel API": 50.0,
    # The spend ledger on minus off, on the caller's thread (its CPU time: the writer's batches run on
    # their own thread), and the commands over a ledger of 1,000,000 calls (ledger.py).
    "ledger: caller's thread us per call": 5.0,
    "ledger: report of 1M calls, s": 2.0,
    "ledger: export focus of 1M calls, s": 10.0,
}


def _say(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def _pins() -> list[str]:
    return [f"{name}=={metadata.version(name)}" for name in SHARED]


def peer_python(name: str) -> Path:
    """The peer's environment, created or brought up to date."""
    venv = VENVS / name
    python = venv / "bin" / "python"
    requirements = sorted(_pins() + PEERS[name])
    stamp = venv / ".bench-requirements"
    if python.exists() and stamp.exists() and stamp.read_text().splitlines() == requirements:
        return python
    _say(f"creating {venv.relative_to(ROOT)}: {' '.join(requirements)}")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    installed = subprocess.run([*pip, *requirements], capture_output=True, text=True, check=False)
    if installed.returncode != 0:
        # pip's own words only when it failed: its warnings about the machine's index set-up are noise.
        sys.stderr.write(installed.stdout + installed.stderr)
        raise SystemExit(f"could not install {name}'s environment ({venv.relative_to(ROOT)})")
    stamp.write_text("\n".join(requirements) + "\n")
    return python


def _run(python: Path | str, script: str, *arguments: str) -> None:
    where = "main" if python == sys.executable else Path(python).parent.parent.name
    _say(f"{where}: {script} {' '.join(arguments)}")
    subprocess.run([str(python), str(HERE / script), *arguments], check=True, cwd=ROOT)


def _load(name: str) -> Any:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else None


def run(parts: set[str], quick: bool, peers: bool) -> None:
    RESULTS.mkdir(exist_ok=True)
    if "overhead" in parts:
        rounds, seconds = ("5", "0.1") if quick else ("15", "0.3")
        interpreters: dict[str, Path | str] = {
            "ours": sys.executable,
            "ours-api-only": sys.executable,
            "sdk-floor": sys.executable,
        }
        if peers:
            interpreters.update({name: peer_python(name) for name in PEERS})
        for name, python in interpreters.items():
            _run(
                python,
                "overhead.py",
                "--instrumentor",
                name,
                "--rounds",
                rounds,
                "--seconds",
                seconds,
                "--json",
                str(RESULTS / f"overhead-{name}.json"),
            )
    if "budgets" in parts:
        rounds, calls, pairs = ("3", "100", "20") if quick else ("10", "200", "200")
        _run(
            sys.executable,
            "budgets.py",
            "--rounds",
            rounds,
            "--calls",
            calls,
            "--pairs",
            pairs,
            "--json",
            str(RESULTS / "budgets.json"),
        )
    if "instructions" in parts:
        # Per-call counts of a few dozen calls are as exact as of thousands: instructions do not vary.
        calls = "20" if quick else "100"
        _run(
            sys.executable, "instructions.py", "--calls", calls, "--json", str(RESULTS / "instructions.json")
        )
        _run(
            sys.executable,
            "instructions.py",
            "--floor",
            "--calls",
            calls,
            "--json",
            str(RESULTS / "instructions-floor.json"),
        )
    if "processor" in parts:
        _run(
            sys.executable,
            "processor.py",
            "--passes",
            "3" if quick else "7",
            "--json",
            str(RESULTS / "processor.json"),
        )
    if "startup" in parts:
        runs = "5" if quick else "15"
        _run(sys.executable, "startup.py", "--runs", runs, "--json", str(RESULTS / "startup.json"))
        if peers:
            for name, modules in PEER_IMPORTS.items():
                _run(
                    peer_python(name),
                    "startup.py",
                    "--import-only",
                    "--modules",
                    ",".join(modules),
                    "--runs",
                    runs,
                    "--json",
                    str(RESULTS / f"import-{name}.json"),
                )
    if "memory" in parts:
        calls = "100000" if quick else "1000000"
        _run(sys.executable, "memory.py", "--calls", calls, "--json", str(RESULTS / "memory.json"))
    if "ledger" in parts:
        calls, rows, spans = ("1000", "100000", "100000") if quick else ("3000", "1000000", "300000")
        _run(
            sys.executable,
            "ledger.py",
            "--calls",
            calls,
            "--rows",
            rows,
            "--burst",
            spans,
            "--json",
            str(RESULTS / "ledger.json"),
        )
        _run(
            sys.executable,
            "instructions.py",
            "--ledger",
            "--calls",
            "20" if quick else "100",
            "--json",
            str(RESULTS / "instructions-ledger.json"),
        )


def summary() -> dict[str, Any]:
    overhead = {
        name: _load(f"overhead-{name}.json") for name in ("ours", "ours-api-only", "sdk-floor", *PEERS)
    }
    budgets, processor, startup, memory, instructions, instructions_floor, ledger, instructions_ledger = (
        _load(f"{part}.json")
        for part in (
            "budgets",
            "processor",
            "startup",
            "memory",
            "instructions",
            "instructions-floor",
            "ledger",
            "instructions-ledger",
        )
    )
    rows = []
    for name, document in overhead.items():
        if document is None:
            continue
        for row in document["results"]:
            rows.append({"instrumentor": name, "mode": document["mode"], **row})
    measured: dict[str, float | None] = dict.fromkeys(TARGETS)
    # The least any instrumentation can measure: for the ratios, sdk-floor's (what the OTel SDK alone
    # charges for the telemetry, harness.SdkFloor); for the import, the instrumentation base.
    floor: dict[str, float | None] = dict.fromkeys(TARGETS)
    for name, into in (("ours", measured), ("sdk-floor", floor)):
        measured_rows = [r for r in rows if r["instrumentor"] == name and r["ratio_median"] is not None]
        if measured_rows:
            into["non-streaming ratio"] = max(
                r["ratio_median"] for r in measured_rows if "stream" not in r["scenario"]
            )
            into["streaming ratio"] = max(
                r["ratio_median"] for r in measured_rows if "stream" in r["scenario"]
            )
    measured["added / sdk-floor's, non-streaming"] = _added_over_floor(rows)
    ratios = {
        r["instrumentor"]: r["ratio_median"]
        for r in rows
        if r["scenario"] == "anthropic messages" and r["ratio_median"] is not None
    }
    if "ours" in ratios and "sdk-floor" in ratios:
        measured["anthropic messages ratio - floor"] = round(ratios["ours"] - ratios["sdk-floor"], 3)
    if instructions_floor:
        measured["added / sdk-floor's, instructions"] = max(
            figures["ours_added_over_floor_added"] for figures in instructions_floor["scenarios"].values()
        )
    if processor:
        measured["processor us per span"] = processor["caller_us_per_span"]
    # Targets whose rounds spread across the limit: one run cannot tell whether they are met.
    spreads: dict[str, tuple[float, float]] = {}
    if budgets:
        budget_measures, spreads = _budget_measures(budgets)
        measured.update(budget_measures)
    if startup:
        # Ours in total, the instrumentation base included: what the target is about.
        measured["import ms on top of the OTel API"] = startup["import"]["on_top_of_otel_api_ms"]
        # What every instrumentation imports first (BaseInstrumentor), whatever its own modules.
        floor["import ms on top of the OTel API"] = startup["import"].get("instrumentation_base_ms")
    if ledger:
        measured["ledger: caller's thread us per call"] = ledger["caller"]["caller_cpu_added_us_per_call"]
        low, high = ledger["caller"]["caller_cpu_added_us_p25_p75"]
        spreads["ledger: caller's thread us per call"] = (low, high)
        reports = [value for name, value in ledger["commands"].items() if name.startswith("report_")]
        measured["ledger: report of 1M calls, s"] = max(reports)
        measured["ledger: export focus of 1M calls, s"] = ledger["commands"]["export_focus_s"]
    imports = {"ours": startup["import"] if startup else None}
    imports.update({name: _load(f"import-{name}.json") for name in PEER_IMPORTS})
    return {
        "overhead": rows,
        "targets": {
            name: {
                "target": target,
                "measured": measured[name],
                "met": _met(measured[name], target, spreads.get(name)),
                "spread": spreads.get(name),
                "floor": floor[name],
            }
            for name, target in TARGETS.items()
        },
        "budgets": budgets,
        "instructions": instructions,
        "instructions_floor": instructions_floor,
        "processor": processor,
        "startup": startup,
        "imports": {name: document for name, document in imports.items() if document},
        "memory": memory,
        "ledger": ledger,
        "instructions_ledger": instructions_ledger,
        "versions": {name: document["packages"] for name, document in overhead.items() if document},
    }


def _budget_measures(
    budgets: dict[str, Any],
) -> tuple[dict[str, float | None], dict[str, tuple[float, float]]]:
    """Budget enforcement per call (with the budgets minus without, the median of the rounds' own
    differences), redis beyond its round trips, and each one's spread over the rounds (p25, p75)."""
    added = budgets["added_us"]
    measures: dict[str, float | None] = {}
    spreads: dict[str, tuple[float, float]] = {}
    for store in ("memory", "sqlite"):
        name = f"budgets {store} us per call"
        measures[name] = added[store]["median"]
        spreads[name] = (added[store]["p25"], added[store]["p75"])
    trips = budgets["redis"]
    measures["redis round trips per call"] = trips["round_trips_per_call"]
    # Beyond the round trips' own time (PINGs on the same loopback).
    own = trips["round_trips_per_call"] * trips["round_trip_us"]
    name = "redis us per call over round trips"
    measures[name] = round(added["redis"]["median"] - own, 1)
    spreads[name] = (round(added["redis"]["p25"] - own, 1), round(added["redis"]["p75"] - own, 1))
    return measures, spreads


def _added_over_floor(rows: list[dict[str, Any]]) -> float | None:
    """The largest, over the non-streaming scenarios both measured, of (ours - 1) / (sdk-floor - 1)."""
    ratios: dict[tuple[str, str], float] = {
        (r["instrumentor"], r["scenario"]): r["ratio_median"]
        for r in rows
        if r["ratio_median"] is not None and "stream" not in r["scenario"]
    }
    found = [
        (ours - 1) / (floor - 1)
        for (name, scenario), ours in ratios.items()
        if name == "ours" and (floor := ratios.get(("sdk-floor", scenario))) is not None and floor > 1
    ]
    return round(max(found), 3) if found else None


def _met(value: float | None, target: float, spread: tuple[float, float] | None = None) -> bool | None:
    """Whether `value` is within `target`; None when unmeasured, or when the middle half of the rounds
    (`spread`) lies on both sides of the target."""
    if value is None:
        return None
    if spread is not None and spread[0] <= target < spread[1]:
        return None
    return value <= target


def print_summary(document: dict[str, Any]) -> None:
    print()
    print(
        f"{'instrumentation':14} {'scenario':40} {'bare us':>9} {'instr. us':>10} {'ratio':>6}"
        f" {'p25-p75':>12} {'tokens':>6} {'cost':>5}"
    )
    for row in document["overhead"]:
        if row["ratio_median"] is None:
            print(f"{row['instrumentor']:14} {row['scenario']:40} {'n/a':>9}")
            continue
        print(
            f"{row['instrumentor']:14} {row['scenario']:40} {row['bare_us']:>9.1f}"
            f" {row['instrumented_us']:>10.1f} {row['ratio_median']:>6.3f}"
            f" {row['ratio_p25']:>5.3f}-{row['ratio_p75']:.3f}"
            f" {row['spans_with_tokens']:>6.0%} {row['spans_with_cost']:>5.0%}"
        )
    print()
    print(f"{'target':36} {'limit':>8} {'measured':>9}  met  {'floor':>9}")
    for name, entry in document["targets"].items():
        value = "-" if entry["measured"] is None else f"{entry['measured']:.3f}"
        met = {True: "yes", False: "NO", None: "-"}[entry["met"]]
        floor = entry.get("floor")
        floor_value = "-" if floor is None else f"{floor:.3f}"
        print(f"{name:36} {entry['target']:>8} {value:>9}  {met:3}  {floor_value:>9}")
    print()
    for line in _budget_lines(document) + _instruction_lines(document) + _ledger_lines(document):
        print(line)
    processor = document["processor"]
    if processor:
        print(
            f"processor, us per span: caller {processor['caller_us_per_span']} (alone"
            f" {processor['caller_alone_us_per_span']}), settled {processor['total_us_per_span']}"
            f" (settle alone {processor['settle_alone_us_per_span']})"
        )
    startup = document["startup"]
    if startup:
        imported = startup["import"]
        print(
            f"import: {imported['on_top_of_otel_api_ms']} ms on top of the OTel API;"
            f" instrument(): {startup['first_call']['instrument_ms']} ms"
        )
    if document.get("imports"):
        print(_imports_line(document["imports"]))
    if startup:
        for scenario, figures in startup["first_call"].items():
            if isinstance(figures, dict):
                print(
                    f"first call, {scenario}: {figures['instrumented_first_ms']} ms instrumented,"
                    f" {figures['bare_first_ms']} ms bare, then {figures['instrumented_following_ms']} /"
                    f" {figures['bare_following_ms']} ms"
                )
    memory = document["memory"]
    if memory:
        points = ", ".join(f"{p['calls']:,}: {p['rss_mib']} MiB" for p in memory["checkpoints"])
        print(
            f"memory (RSS) after calls: {points}; growth {memory['rss_growth_mib']} MiB,"
            f" allocated blocks {memory['allocated_blocks_growth']:+,},"
            f" GC objects {memory['gc_objects_growth']:+,}"
        )


def _ledger_lines(document: dict[str, Any]) -> list[str]:
    lines = []
    ledger = document.get("ledger")
    if ledger:
        caller, commands, burst = ledger["caller"], ledger["commands"], ledger["burst"]
        lines.append(
            f"ledger on minus off, us per call: caller's thread {caller['caller_cpu_added_us_per_call']},"
            f" process CPU {caller['process_cpu_added_us_per_call']}, wall {caller['wall_added_us_per_call']}"
            f" (of {caller['wall_us_per_call_off']})"
        )
        spread = caller["caller_cpu_added_us_p25_p75"]
        lines[-1] += (
            f"; the caller's thread, the rounds' own differences p25 to p75: {spread[0]} to {spread[1]}"
        )
        lines.append(
            f"ledger of {commands['rows']:,} calls, s: report by model {commands['report_by_model_s']},"
            f" by feature {commands['report_by_feature_s']},"
            f" by day,model {commands['report_by_day_model_s']};"
            f" export focus {commands['export_focus_s']}, csv {commands['export_csv_s']}"
        )
        lines.append(
            f"ledger burst of {burst['spans_added']:,} spans: peak queued {burst['peak_queued']:,} (bound"
            f" {burst['max_queued']:,}), written {burst['written']:,}, dropped {burst['dropped']:,},"
            f" peak traced {burst['peak_traced_mib']} MiB"
        )
    counted = document.get("instructions_ledger")
    if counted:
        lines.append(
            f"ledger, instructions per call: caller's thread {counted['caller_adds_per_call']:+,},"
            f" writer {counted['writer_per_call']:,}"
        )
    return lines


def _budget_lines(document: dict[str, Any]) -> list[str]:
    budgets = document["budgets"]
    if not budgets:
        return []
    per_call = budgets["per_call_us"]
    lines = ["budgets, us per call: " + ", ".join(f"{name} {value}" for name, value in per_call.items())]
    lines.append(
        "budgets, added us per call (median of the differences of pairs of batches, p25 to p75): "
        + ", ".join(
            f"{name} {added['median']} ({added['p25']} to {added['p75']})"
            for name, added in budgets["added_us"].items()
        )
    )
    trips = budgets.get("redis")
    if trips and "bare_socket_round_trip_us" in trips:
        client_us = round(trips["round_trip_us"] - trips["bare_socket_round_trip_us"], 1)
        lines.append(
            f"redis: {trips['round_trips_per_call']} round trips per call; a PING takes"
            f" {trips['round_trip_us']} us through redis-py, {trips['bare_socket_round_trip_us']} us on a"
            f" bare socket: the client's own {client_us} us per command"
        )
    return lines


def _instruction_lines(document: dict[str, Any]) -> list[str]:
    lines = []
    instructions = document.get("instructions")
    if instructions:
        counted = instructions["instructions_per_call"]
        by_store = instructions["budgets_add_per_call_by_store"]
        stores = ", ".join(f"{store} {counted[store]:,} (+{added:,})" for store, added in by_store.items())
        lines.append(f"budgets, instructions per call: no budgets {counted['no budgets']:,}, {stores}")
        floor = instructions.get("budgets_flat_floor_add_per_call")
        if floor is not None:
            lines.append(
                f"budgets' flat floor (budgets_floor.py, the same work in memory without the library's"
                f" parts) adds {floor:,}: the memory store's budgets are"
                f" {instructions['budgets_memory_over_flat_floor']}x it"
            )
    floor_counts = document.get("instructions_floor")
    for scenario, figures in (floor_counts or {}).get("scenarios", {}).items():
        counted = figures["instructions_per_call"]
        lines.append(
            f"instructions per call, {scenario}: bare {counted['bare']:,}; sdk-floor adds"
            f" {figures['floor_adds']:,}, ours {figures['ours_adds']:,}"
            f" ({figures['ours_added_over_floor_added']}x)"
        )
    return lines


def _imports_line(imports: dict[str, Any]) -> str:
    """Ours and each peer's import on top of the OTel API, after the instrumentation base (measured in
    our environment; each peer's own share is measured on top of the base of its environment)."""
    parts = []
    base = (imports.get("ours") or {}).get("instrumentation_base_ms")
    if base is not None:
        parts.append(f"base (opentelemetry-instrumentation) {base} ms")
    for name, imported in imports.items():
        part = f"{name} {imported['on_top_of_otel_api_ms']} ms"
        if imported.get("own_ms_on_top_of_base") is not None:
            part += f" (own {imported['own_ms_on_top_of_base']} on top of the base)"
        parts.append(part)
    return "import on top of the OTel API: " + "; ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer rounds: checks that it runs")
    parser.add_argument("--only", default=",".join(PARTS), help="comma-separated parts to run")
    parser.add_argument("--no-peers", action="store_true", help="measure ours only")
    parser.add_argument("--summary-only", action="store_true", help="print the table of the stored results")
    options = parser.parse_args()
    parts = {part.strip() for part in options.only.split(",") if part.strip()}
    unknown = parts - set(PARTS)
    if unknown:
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}; choose among {', '.join(PARTS)}")
    os.environ.setdefault("PYTHONHASHSEED", "0")
    if not options.summary_only:
        run(parts, options.quick, not options.no_peers)
    document = summary()
    (RESULTS / "summary.json").write_text(json.dumps(document, indent=2) + "\n")
    print_summary(document)
    print(f"\nwritten to {RESULTS.relative_to(ROOT)}/")


if __name__ == "__main__":
    main()
