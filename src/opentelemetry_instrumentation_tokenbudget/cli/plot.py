"""`forecast --plot` (the window's cumulative spend, the projection, its interval and the limit) and
`report --plot` (spend over time by group)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..finops.forecast import Forecast
from ..finops.report import key_reader
from ..finops.series import Series
from ..finops.spend_record import SpendRecord

_BLUE = "#1f77b4"
_RED = "#d62728"


def _curves(
    series: Series, result: Forecast, now: float
) -> tuple[list[float], list[float], list[float], list[float]]:
    """(times, cumulative spend) seen from the window's start to now, and projected from now on."""
    start = result.window.start
    end = result.window.end or now
    seen_times, seen = [float(start)], [0.0]
    cumulative = 0.0
    for index in range(max(series.index_of(start), 0), min(series.index_of(now) + 1, len(series.values))):
        cumulative += series.values[index]
        seen_times.append(min(float(series.time_of(index + 1)), now))
        seen.append(cumulative)
    ahead_times, ahead = [now], [result.spent]
    running = result.spent
    next_edge = (int(now // series.step) + 1) * series.step
    for offset, value in enumerate(result.path):
        running += value
        ahead_times.append(float(min(next_edge + offset * series.step, end)))
        ahead.append(running)
    return seen_times, seen, ahead_times, ahead


def plot_forecast(path: Path, series: Series, result: Forecast, window: str, now: float) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.dates import AutoDateLocator, DateFormatter, date2num
    except ImportError:
        raise SystemExit(
            "tokenbudget forecast --plot: needs matplotlib"
            " (pip install 'opentelemetry-instrumentation-tokenbudget[plot]')"
        ) from None

    def when(instants: list[float]) -> Any:
        return date2num([datetime.fromtimestamp(t, timezone.utc) for t in instants])  # type: ignore[no-untyped-call]

    seen_times, seen, ahead_times, ahead = _curves(series, result, now)
    figure, axes = plt.subplots(figsize=(9, 4.5), dpi=110)
    axes.plot(when(seen_times), seen, color=_BLUE, linewidth=2, label="spent")
    axes.plot(when(ahead_times), ahead, color=_BLUE, linestyle="--", label=f"projection ({result.method})")
    # The interval fans out from now in proportion to the projected rest of the window.
    rest = max(result.forecast - result.spent, 1e-12)
    low = [result.spent + (v - result.spent) * (result.low - result.spent) / rest for v in ahead]
    high = [result.spent + (v - result.spent) * (result.high - result.spent) / rest for v in ahead]
    axes.fill_between(when(ahead_times), low, high, color=_BLUE, alpha=0.15, label="80% interval")
    if result.limit is not None:
        axes.axhline(result.limit, color=_RED, linewidth=1.2, label=f"limit \\${result.limit:g}")
    if result.exhausted_at is not None:
        at = when([result.exhausted_at.timestamp()])[0]
        axes.axvline(at, color=_RED, linestyle=":", linewidth=1)
        axes.annotate(
            f"limit reached ~{result.exhausted_at:%d %b %H:%M} UTC",
            (at, result.limit or 0),
            textcoords="offset points",
            xytext=(-150, 8),
            fontsize=8,
            color=_RED,
        )
    axes.axvline(when([now])[0], color="grey", linewidth=0.8)
    axes.set_xlim(*when([float(result.window.start), float(result.window.end or now)]))
    axes.set_ylabel("USD, cumulative in the window")
    day = datetime.fromtimestamp(result.window.start, timezone.utc)
    axes.set_title(
        f"{window} from {day:%Y-%m-%d} (UTC): spent \\${result.spent:,.2f}, projected"
        f" \\${result.forecast:,.2f} [{result.low:,.2f}, {result.high:,.2f}]"
    )
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", fontsize=8)
    axes.xaxis.set_major_locator(AutoDateLocator())  # type: ignore[no-untyped-call]
    axes.xaxis.set_major_formatter(DateFormatter("%d %b %H:%M", tz=timezone.utc))  # type: ignore[no-untyped-call]
    figure.autofmt_xdate()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def plot_spend(path: Path, records: Sequence[SpendRecord], by: Sequence[str]) -> None:
    """`report --plot`: spend per day (per hour when the records span under two days) by group."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit(
            "tokenbudget report --plot: needs matplotlib"
            " (pip install 'opentelemetry-instrumentation-tokenbudget[plot]')"
        ) from None
    span = (records[-1].start - records[0].start) if records else 0.0
    bucket = key_reader("hour" if span < 2 * 86400 else "day")
    readers = [key_reader(key) for key in by]
    spend: dict[str, dict[str, float]] = {}
    for record in records:
        group = ",".join(read(record) for read in readers) or "all"
        per_time = spend.setdefault(group, {})
        moment = bucket(record)
        per_time[moment] = per_time.get(moment, 0.0) + float(record.cost_usd or 0)
    moments = sorted({moment for per_time in spend.values() for moment in per_time})
    figure, axes = plt.subplots(figsize=(9, 4.5), dpi=110)
    bottom = [0.0] * len(moments)
    for group, per_time in sorted(spend.items(), key=lambda item: -sum(item[1].values())):
        heights = [per_time.get(moment, 0.0) for moment in moments]
        axes.bar(moments, heights, bottom=bottom, label=group)
        bottom = [low + height for low, height in zip(bottom, heights, strict=True)]
    axes.set_ylabel("USD")
    axes.set_title(f"spend by {', '.join(by) or 'all'}")
    axes.legend(loc="upper left", fontsize=8)
    axes.tick_params(axis="x", labelrotation=45, labelsize=7)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
