"""Per-call overhead of an instrumentation, as a ratio against the bare SDK call.

The harness (`harness.py`) drives the real OpenAI and Anthropic SDKs over an in-process transport.
Rounds alternate bare and instrumented, and the figure is the median of the per-round ratios
instrumented/bare, so drift of the machine cancels out. Each half-round lasts about `--seconds`.

Two ways to alternate, the same measure:

- `in-process` (the default): instrument, measure, uninstrument, in one process;
- `processes`: each half-round in a fresh process, bare or instrumented from the start, for
  instrumentations whose instrument/uninstrument cycle does not come back (no spans after the second
  `instrument()`). `auto` tries the first and falls back to the second when the span check fails.

    python benchmarks/overhead.py [--instrumentor ours|openllmetry|openai-v2] [--mode auto]
        [--rounds 15] [--seconds 0.3] [--json benchmarks/results/overhead.json]

Run it with the Python of the environment where the instrumentation is installed; `run.py` does that
for the peers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import harness


def _child(instrumentor: str | None, calls: dict[str, int]) -> dict[str, Any]:
    command = [
        sys.executable,
        __file__,
        "--one-round",
        json.dumps({"instrumentor": instrumentor, "calls": calls}),
    ]
    # A fixed hash seed: the layout of dicts and sets would otherwise differ from one process to the next
    # and add its own spread to the ratios.
    environment = {**os.environ, "PYTHONHASHSEED": "0"}
    output = subprocess.run(command, check=True, capture_output=True, text=True, env=environment).stdout
    return json.loads(output.strip().splitlines()[-1])


def measure_in_processes(name: str, rounds: int, target_seconds: float) -> list[dict[str, Any]]:
    instrumentor = harness.INSTRUMENTORS[name]()
    every = harness.scenarios()
    calls = {
        scenario: harness.calls_for(call, target_seconds)
        for scenario, call in every.items()
        if scenario in instrumentor.covers
    }
    bare: dict[str, list[float]] = {scenario: [] for scenario in calls}
    instrumented: dict[str, list[float]] = {scenario: [] for scenario in calls}
    totals: dict[str, list[int]] = {scenario: [0, 0, 0] for scenario in calls}
    for _ in range(rounds):
        for scenario, row in _child(None, calls).items():
            bare[scenario].append(row["seconds"])
        for scenario, row in _child(name, calls).items():
            instrumented[scenario].append(row["seconds"])
            totals[scenario] = [t + c for t, c in zip(totals[scenario], row["counts"], strict=True)]
    results = []
    for scenario in harness.SCENARIOS:
        if scenario not in calls:
            results.append({"scenario": scenario, "ratio_median": None})
            continue
        counts = totals[scenario]
        results.append(
            harness.summarize(
                scenario,
                bare[scenario],
                instrumented[scenario],
                calls[scenario],
                (counts[0], counts[1], counts[2]),
            )
        )
    return results


def measure(name: str, mode: str, rounds: int, target_seconds: float) -> tuple[str, list[dict[str, Any]]]:
    if mode in ("auto", "in-process"):
        try:
            return "in-process", harness.measure_in_process(
                harness.INSTRUMENTORS[name](), rounds, target_seconds
            )
        except harness.SpanCheckError as error:
            if mode == "in-process":
                raise
            print(f"{name}: {error} after re-instrumenting; measuring in separate processes", file=sys.stderr)
    return "processes", measure_in_processes(name, rounds, target_seconds)


def print_table(name: str, mode: str, results: list[dict[str, Any]]) -> None:
    print(f"{name} ({mode})")
    print(
        f"  {'scenario':40} {'bare us':>9} {'instr. us':>10} {'ratio':>7} {'p25-p75':>13}"
        f" {'tokens':>7} {'cost':>5}"
    )
    for row in results:
        if row["ratio_median"] is None:
            print(f"  {row['scenario']:40} {'n/a':>9}")
            continue
        print(
            f"  {row['scenario']:40} {row['bare_us']:>9.1f} {row['instrumented_us']:>10.1f}"
            f" {row['ratio_median']:>7.3f} {row['ratio_p25']:>6.3f}-{row['ratio_p75']:.3f}"
            f" {row['spans_with_tokens']:>7.0%} {row['spans_with_cost']:>5.0%}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--instrumentor", choices=sorted(harness.INSTRUMENTORS), default="ours")
    parser.add_argument("--mode", choices=["auto", "in-process", "processes"], default="auto")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--seconds", type=float, default=0.3, help="length of each half-round")
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "overhead.json")
    parser.add_argument("--one-round", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_round:
        spec = json.loads(args.one_round)
        name = spec["instrumentor"]
        instrumentor = harness.INSTRUMENTORS[name]() if name else None
        print(json.dumps(harness.measure_one_process(instrumentor, spec["calls"])))
        return
    mode, results = measure(args.instrumentor, args.mode, args.rounds, args.seconds)
    print_table(args.instrumentor, mode, results)
    document = {
        "instrumentor": args.instrumentor,
        "mode": mode,
        "python": sys.version.split()[0],
        "packages": _versions(),
        "results": results,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(document, indent=2) + "\n")
    print(f"written to {args.json}")


def _versions() -> dict[str, str]:
    from importlib import metadata

    names = [
        "openai",
        "anthropic",
        "httpx2",
        "wrapt",
        "opentelemetry-api",
        "opentelemetry-sdk",
        "opentelemetry-instrumentation-tokenbudget",
        "opentelemetry-instrumentation-openai",
        "opentelemetry-instrumentation-anthropic",
        "opentelemetry-instrumentation-openai-v2",
    ]
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


if __name__ == "__main__":
    main()
