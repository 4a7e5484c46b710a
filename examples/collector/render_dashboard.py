"""Draw the dashboard's panels from their query results, as a PNG (Grafana itself is not available where
the tests run). Each panel shows the result of its queries at one instant: one bar per series, or one
number for single-value panels. tests/test_collector_example.py calls `render` with the results it got
from a real Prometheus; `TOKENBUDGET_UPDATE_SCREENSHOT=1` makes it refresh dashboard.png here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PanelResult:
    title: str
    unit: str
    series: Sequence[tuple[str, float]]


def _format(value: float, unit: str) -> str:
    if math.isnan(value):
        return "NaN"
    if unit == "currencyUSD":
        return f"${value:.6f}" if abs(value) < 1 else f"${value:,.2f}"
    if unit == "percentunit":
        return f"{value:.1%}"
    if unit == "s":
        return f"{value * 1000:.1f} ms"
    return f"{value:,.4g}"


def render(panels: Sequence[PanelResult], path: Path, *, subtitle: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = 4
    rows = -(-len(panels) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(22, 4.2 * rows), facecolor="#111217")
    figure.suptitle(
        "LLM spend and budgets (tokenbudget)\n" + subtitle, color="#d8d9da", fontsize=15, x=0.01, ha="left"
    )
    for index, axis in enumerate(axes.flat):
        axis.set_facecolor("#181b1f")
        for spine in axis.spines.values():
            spine.set_color("#2c3235")
        if index >= len(panels):
            axis.set_visible(False)
            continue
        panel = panels[index]
        axis.set_title(panel.title, color="#d8d9da", fontsize=11, loc="left")
        axis.tick_params(colors="#9fa7b3", labelsize=8)
        series = [(label or "(none)", value) for label, value in panel.series]
        if not series:
            axis.text(
                0.5, 0.5, "No data", color="#9fa7b3", ha="center", va="center", transform=axis.transAxes
            )
            axis.set_xticks([])
            axis.set_yticks([])
        elif (
            len(series) == 1
            and panel.unit in ("currencyUSD", "percentunit")
            and series[0][0]
            in (
                "spend",
                "hit ratio",
                "saved",
            )
        ):
            axis.text(
                0.5,
                0.45,
                _format(series[0][1], panel.unit),
                color="#73bf69",
                fontsize=26,
                ha="center",
                va="center",
                transform=axis.transAxes,
            )
            axis.set_xticks([])
            axis.set_yticks([])
        else:
            labels = [label[:38] for label, _ in series]
            values = [0.0 if math.isnan(value) else value for _, value in series]
            positions = range(len(series))
            axis.barh(list(positions), values, color="#5794f2")
            axis.set_yticks(list(positions), labels)
            axis.invert_yaxis()
            peak = max(values) if values else 0.0
            for position, (_, value) in zip(positions, series, strict=True):
                axis.text(
                    (0.0 if math.isnan(value) else value) + peak * 0.01,
                    position,
                    _format(value, panel.unit),
                    color="#d8d9da",
                    fontsize=8,
                    va="center",
                )
            axis.set_xlim(0, peak * 1.35 if peak > 0 else 1)
    figure.tight_layout(rect=(0, 0, 1, 0.95))
    figure.savefig(path, dpi=70, facecolor=figure.get_facecolor())
    plt.close(figure)
