"""What `forecast`, `anomalies`, `whatif` and `advise` compute, as documents: the JSON shapes of the
command, which the table and CSV renderers flatten."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from ..finops import anomalies as anomaly_methods
from ..finops import forecast as forecast_methods
from ..finops.advice import advise
from ..finops.series import Point, Series, bucket_spend, zeros
from ..finops.spend_record import SpendRecord, key_of
from ..finops.whatif import reprice

HOUR = 3600


def iso(instant: float | datetime | None) -> str | None:
    if instant is None:
        return None
    moment = instant if isinstance(instant, datetime) else datetime.fromtimestamp(instant, timezone.utc)
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _usd(amount: float) -> float:
    """Sums of floats: nine decimals (thousandths of a microdollar) are all they mean."""
    return round(amount, 9)


def _frozen(key: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(key.items())


def group_series(
    records: Sequence[SpendRecord], by: tuple[str, ...], step: int, start: float, end: float
) -> tuple[Series, dict[tuple[tuple[str, str], ...], Series]]:
    """The total series and one per group (by the `by` keys), over [start, end)."""
    points = [Point(r.start, r.cost_usd, _frozen(key_of(r, by))) for r in records if r.cost_usd is not None]
    groups = bucket_spend(points, step, start, end)
    everything = bucket_spend([Point(p.at, p.cost, ()) for p in points], step, start, end)
    return everything.get((), zeros(step, start, end)), groups


def forecast(
    records: Sequence[SpendRecord],
    *,
    window: forecast_methods.WindowName,
    by: tuple[str, ...],
    now: float,
    limit: float | None,
    method: str | None,
) -> tuple[dict[str, Any], Series, forecast_methods.Forecast]:
    cadence = forecast_methods.CADENCES[window]
    # From the start of the first record's window at least, so that the burn rate counts the quiet
    # hours before the first call of the current window.
    first = min([r.start for r in records] + [float(forecast_methods.window_at(window, now).start)])
    total, groups = group_series(records, by, cadence.step, first, now)
    trial = forecast_methods.backtest(total, window, now)
    chosen = method or trial.best()
    overall = forecast_methods.forecast(total, window, now, method=chosen, limit=limit, judged_by=trial)
    rows: list[dict[str, Any]] = []
    for key, series in sorted(groups.items()) if by else [((), total)]:
        own = trial if not by else forecast_methods.backtest(series, window, now, methods=(chosen,))
        result = forecast_methods.forecast(series, window, now, method=chosen, limit=limit, judged_by=own)
        rows.append(
            {
                "key": dict(key),
                "spent_usd": _usd(result.spent),
                "forecast_usd": _usd(result.forecast),
                "low_usd": _usd(result.low),
                "high_usd": _usd(result.high),
                "limit_usd": limit,
                "exhausted_at": iso(result.exhausted_at),
                "method": result.method,
            }
        )
    rows.sort(key=lambda row: -float(row["forecast_usd"]))
    document = {
        "window": {"start": iso(overall.window.start), "end": iso(overall.window.end)},
        "method": chosen,
        "backtest": trial.as_dict(),
        "groups": rows,
    }
    return document, total, overall


def anomalies(
    records: Sequence[SpendRecord],
    *,
    since: float,
    until: float,
    by: tuple[str, ...],
    drivers: tuple[str, ...],
    sensitivity: float,
) -> dict[str, Any]:
    first = min((r.start for r in records), default=since)
    _, groups = group_series(records, by, HOUR, min(first, since), until)
    found: list[anomaly_methods.Anomaly] = []
    for key, series in groups.items():
        members = [r for r in records if _frozen(key_of(r, by)) == key]
        parts: dict[tuple[tuple[str, str], ...], Series] = {}
        for driver in drivers:
            if driver in by:
                continue
            _, per_value = group_series(members, (driver,), HOUR, series.start, series.end)
            parts.update(per_value)
        start_index = max(series.index_of(since), 0)
        found.extend(
            anomaly_methods.find_anomalies(
                series, dict(key), start_index, sensitivity=sensitivity, drivers=parts
            )
        )
    found.sort(key=lambda anomaly: (anomaly.start, -anomaly.score))
    return {
        "since": iso(since),
        "until": iso(until),
        "anomalies": [
            {
                "start": iso(anomaly.start),
                "end": iso(anomaly.end),
                "key": dict(anomaly.key),
                "observed_usd": _usd(anomaly.observed),
                "expected_usd": _usd(anomaly.expected),
                "score": round(anomaly.score, 2),
                "drivers": [{"key": dict(d.key), "excess_usd": _usd(d.excess)} for d in anomaly.drivers],
            }
            for anomaly in found
        ],
    }


def whatif(
    records: Sequence[SpendRecord], *, source: str, target: str, by: tuple[str, ...]
) -> dict[str, Any]:
    rows = reprice(records, source, target, lambda record: key_of(record, by))
    return {
        "from": source,
        "to": target,
        "caveat": rows[0].caveat if rows else None,
        "groups": [
            {
                "key": dict(row.key),
                "calls": row.calls,
                "current_usd": row.current_usd,
                "projected_usd": row.projected_usd,
                "projected_high_usd": row.projected_high_usd,
                "saving_usd": row.saving_usd,
                "unpriced_calls": row.unpriced_calls,
            }
            for row in rows
        ],
    }


def advice(records: Sequence[SpendRecord], *, since: float, until: float) -> dict[str, Any]:
    chosen = [r for r in records if since <= r.start < until]
    found = advise(chosen)
    span = (
        max((r.start for r in chosen), default=until) - min((r.start for r in chosen), default=until)
    ) / 86400
    return {
        "since": iso(since),
        "until": iso(until),
        "period_days": round(span, 3),
        "advice": [
            {
                "kind": item.kind,
                "scope": dict(item.scope),
                "calls": item.calls,
                "current_usd": item.current_usd,
                "projected_usd": item.projected_usd,
                "saving_usd": item.saving_usd,
                "action": item.action,
                "caveat": item.caveat,
            }
            for item in found
        ],
    }


def total_usd(records: Sequence[SpendRecord]) -> Decimal:
    return sum((r.cost_usd for r in records if r.cost_usd is not None), Decimal(0))
