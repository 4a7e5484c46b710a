"""`tokenbudget report --prometheus URL`: the report document from a Prometheus server's aggregates,
one range of queries per day or hour when the report is by `day` or `hour`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any, Final

from ..finops.report import TIME_KEYS, Aggregate, report_aggregates
from ..finops.sources.prometheus import aggregates

DEFAULT_RANGE_S: Final = 30 * 86400
MAX_BUCKETS: Final = 1000
_BUCKET_S: Final = {"day": 86400, "hour": 3600}


class RangeError(ValueError):
    """A report that would take too many queries; the message says how to narrow it."""


def prometheus_report(
    url: str,
    *,
    by: Sequence[str],
    where: Sequence[tuple[str, str]],
    since: float,
    until: float,
    top: int | None,
    iso: Any,
) -> dict[str, Any]:
    time_keys = [key for key in by if key in TIME_KEYS]
    bucket_s = min((_BUCKET_S[key] for key in time_keys), default=None)
    if bucket_s is None:
        groups = aggregates(url, by=by, where=where, since=since, until=until)
    else:
        if len(set(time_keys)) > 1:
            raise RangeError("--by day,hour: choose one of day and hour")
        first = since - since % bucket_s
        if (until - first) / bucket_s > MAX_BUCKETS:
            raise RangeError(f"--by {time_keys[0]}: more than {MAX_BUCKETS} of them; narrow --since")
        groups = {}
        start = first
        while start < until:
            label = datetime.fromtimestamp(start, timezone.utc).strftime(TIME_KEYS[time_keys[0]])
            part: dict[tuple[str, ...], Aggregate] = aggregates(
                url, by=by, where=where, since=max(start, since), until=min(start + bucket_s, until),
                bucket_key=label,
            )  # fmt: skip
            groups.update(part)
            start += bucket_s
    return report_aggregates(groups, by=by, top=top, since=iso(since), until=iso(until))
