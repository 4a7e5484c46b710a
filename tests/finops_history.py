"""Spend histories with a known truth, for the FinOps tests: trend, daily and weekly pattern, noise,
and injected spikes and level shifts whose times the tests know."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

from opentelemetry_instrumentation_tokenbudget.testing.otlp_json import key_values

HOUR = 3600
SHIFT_HOURS = 36
DAY = 86400
START = int(datetime(2026, 9, 7, tzinfo=timezone.utc).timestamp())  # a Monday


def daily_shape(hour: int) -> float:
    """Office hours: low at night, a peak mid-afternoon (mean 1 over the day)."""
    return 1 + 0.8 * math.sin((hour - 9) / 24 * 2 * math.pi)


def weekly_shape(weekday: int) -> float:
    return 0.45 if weekday >= 5 else 1.22


@dataclass
class History:
    """Hourly spend in USD: `expected[i]` the truth without noise or events, `values[i]` what happened."""

    start: int
    expected: list[float]
    values: list[float]
    spikes: list[int] = field(default_factory=list)
    """Hours (indices) where a spike was injected."""
    shifts: list[int] = field(default_factory=list)
    """Hours where a lasting level shift begins."""

    def time_of(self, index: int) -> int:
        return self.start + index * HOUR


def make_history(
    days: int,
    *,
    base_per_hour: float = 2.0,
    trend_per_day: float = 0.01,
    noise: float = 0.1,
    spikes: int = 0,
    shifts: int = 0,
    spike_size: tuple[float, float] = (4, 8),
    shift_factor: float = 2.5,
    seed: int = 7,
) -> History:
    rng = random.Random(seed)
    hours = days * 24
    expected = []
    for index in range(hours):
        day, hour = divmod(index, 24)
        weekday = day % 7
        expected.append(base_per_hour * (1 + trend_per_day * day) * daily_shape(hour) * weekly_shape(weekday))
    values = [value * max(0.0, rng.gauss(1, noise)) for value in expected]
    history = History(START, expected, values)
    # Events after a first fortnight of clean baseline, at least three days apart.
    candidates = list(range(14 * 24, hours - 24, 24 * 3))
    rng.shuffle(candidates)
    for slot in sorted(candidates[:spikes]):
        index = slot + rng.randrange(8, 20)
        history.values[index] += expected[index] * rng.uniform(*spike_size)
        history.spikes.append(index)
    for slot in sorted(candidates[spikes : spikes + shifts]):
        index = slot + rng.randrange(0, 24)
        for later in range(index, min(index + SHIFT_HOURS, hours)):
            history.values[later] *= shift_factor
        history.shifts.append(index)
    return history


@dataclass(frozen=True)
class Call:
    """A call record as the ledger keeps it (the fields the FinOps computations read)."""

    start: float
    provider: str = "openai"
    request_model: str = "gpt-4o"
    operation: str = "chat"
    input_tokens: int = 2000
    output_tokens: int = 400
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: Decimal | None = None
    max_tokens: int | None = None
    prompt_prefix_hash: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)


# gpt-4o at $2.50 / $10 per million tokens: 2000 tokens in and 400 out cost exactly $0.009.
CALL_COST = Decimal("0.009")


def calls_from_history(history: History, features: Sequence[str] = ("search", "chat")) -> list[Call]:
    """Calls whose cost per hour follows `history.values` (to within one call's cost), spread over the
    hour, alternating between `features`; extra spend in a spike hour goes to the feature 'export'."""
    calls: list[Call] = []
    spikes = set(history.spikes)
    for index, value in enumerate(history.values):
        count = round(value / float(CALL_COST))
        base = round(history.expected[index] / float(CALL_COST)) if index in spikes else count
        for number in range(count):
            feature = features[number % len(features)] if number < base else "export"
            calls.append(
                Call(
                    start=history.time_of(index) + (number + 0.5) * HOUR / max(count, 1),
                    cost_usd=CALL_COST,
                    attributes={"tokenbudget.feature": feature},
                )
            )
    return calls


def write_otlp(calls: Sequence[Call], path: Path, per_line: int = 500) -> None:
    """The calls as the Collector's file exporter writes spans: OTLP JSON, `per_line` spans a line."""
    with path.open("w", encoding="utf-8") as file:
        for first in range(0, len(calls), per_line):
            spans = []
            for number, call in enumerate(calls[first : first + per_line], start=first):
                attributes = {
                    "gen_ai.operation.name": call.operation,
                    "gen_ai.provider.name": call.provider,
                    "gen_ai.request.model": call.request_model,
                    "gen_ai.usage.input_tokens": call.input_tokens,
                    "gen_ai.usage.output_tokens": call.output_tokens,
                    **(
                        {"gen_ai.usage.cost.amount": float(call.cost_usd)}
                        if call.cost_usd is not None
                        else {}
                    ),
                    **({"gen_ai.request.max_tokens": call.max_tokens} if call.max_tokens else {}),
                    **dict(call.attributes),
                }
                nanos = str(int(call.start * 1e9))
                spans.append(
                    {
                        "traceId": f"{number + 1:032x}",
                        "spanId": f"{number + 1:016x}",
                        "name": f"{call.operation} {call.request_model}",
                        "kind": 3,
                        "startTimeUnixNano": nanos,
                        "endTimeUnixNano": nanos,
                        "attributes": key_values(attributes),
                    }
                )
            request = {
                "resourceSpans": [{"resource": {}, "scopeSpans": [{"scope": {"name": "x"}, "spans": spans}]}]
            }
            file.write(json.dumps(request) + "\n")


if __name__ == "__main__":
    # Writes the history behind the README's forecast plot:
    #   python -m tests.finops_history history.jsonl
    import sys

    write_otlp(calls_from_history(make_history(43, base_per_hour=0.2)), Path(sys.argv[1]))
