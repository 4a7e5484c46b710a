"""How every benchmark script hands over its figures: printed, and written as JSON for `run.py`."""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def report(document: Any, path: Path | None) -> None:
    text = json.dumps(document, indent=2)
    print(text)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")


def quartiles(rounds: Sequence[float]) -> tuple[float, float, float]:
    """The 25th percentile, the median and the 75th percentile of a figure's rounds: the median is the
    figure, the two others how far one run of it can be trusted (all three the one value of one round)."""
    if len(rounds) < 2:
        return rounds[0], rounds[0], rounds[0]
    low, middle, high = statistics.quantiles(rounds, n=4)
    return low, middle, high
