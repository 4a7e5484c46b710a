"""A Prometheus server's HTTP API (the `examples/collector` stack): aggregates for `report`, not calls.

The metrics are the instrumentation's, under the names the Collector's `prometheus` exporter (and the
Python Prometheus reader) give them: calls from the duration histogram's count, tokens from the token
histogram's sum by `gen_ai_token_type`, cost from the cost histogram's sum, unpriced calls from their
counter. Attributes become labels with every character other than a letter, digit or `_` replaced by
`_` (`tokenbudget.feature` -> `tokenbudget_feature`). Cache tokens and estimated costs are on spans
only: from this source they are 0.

The figure of a series over [since, until) is its last value in the range minus its value at `since`:
exact (no extrapolation, as `increase()` does) for a series born in the range, whose value at `since`
is none; a series whose value went down restarted, and counts from 0.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Final

from ..report import Aggregate
from ..spend_record import KEY_ALIASES, UNSET
from .otlp_json import SourceError

CALLS: Final = "gen_ai_client_operation_duration_seconds_count"
TOKENS: Final = "gen_ai_client_token_usage_sum"
COST: Final = "gen_ai_client_operation_cost_sum"
UNPRICED: Final = "tokenbudget_client_unpriced_calls_total"
TOKEN_TYPE: Final = "gen_ai_token_type"  # noqa: S105 (a label name)
_NOT_A_LABEL_CHARACTER: Final = re.compile(r"[^a-zA-Z0-9_]")


def label_of(key: str) -> str:
    """The Prometheus label that carries the attribute an alias or attribute name stands for."""
    return _NOT_A_LABEL_CHARACTER.sub("_", KEY_ALIASES.get(key, key))


class Prometheus:
    def __init__(self, url: str, *, timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s

    def query(self, expr: str, at: float) -> list[dict[str, Any]]:
        query = urllib.parse.urlencode({"query": expr, "time": f"{at:.3f}"})
        address = f"{self.url}/api/v1/query?{query}"
        if not address.startswith(("http://", "https://")):
            raise SourceError(f"--prometheus {self.url}: expected an http:// or https:// URL")
        try:
            with urllib.request.urlopen(address, timeout=self.timeout_s) as response:  # noqa: S310
                body = json.load(response)
        except urllib.error.HTTPError as error:
            raise SourceError(f"--prometheus {self.url}: HTTP {error.code} on its query API") from None
        except (OSError, ValueError) as error:
            reason = getattr(error, "reason", error)
            raise SourceError(f"--prometheus {self.url}: cannot query it ({reason})") from None
        if not isinstance(body, dict) or body.get("status") != "success":
            raise SourceError(f"--prometheus {self.url}: not a Prometheus query API answer")
        data = body.get("data", {})
        if data.get("resultType") != "vector":
            raise SourceError(f"--prometheus {self.url}: unexpected {data.get('resultType')!r} answer")
        return list(data.get("result", ()))

    def deltas(
        self, metric: str, matchers: str, since: float, until: float
    ) -> list[tuple[Mapping[str, str], float]]:
        """Per series: its increase over [since, until), as the module docstring says."""
        selector = f"{metric}{{{matchers}}}"
        window_ms = max(1, round((until - since) * 1000))
        last = self.query(f"last_over_time({selector}[{window_ms}ms])", until)
        first = {_identity(s["metric"]): float(s["value"][1]) for s in self.query(selector, since)}
        result = []
        for series in last:
            value = float(series["value"][1])
            before = first.get(_identity(series["metric"]))
            if before is None or before > value:  # born in the range, or restarted
                result.append((series["metric"], value))
            else:
                result.append((series["metric"], value - before))
        return result


def _identity(labels: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


def _matchers(where: Sequence[tuple[str, str]]) -> str:
    return ",".join(f"{label_of(key)}={json.dumps(value)}" for key, value in where)


def aggregates(
    url: str,
    *,
    by: Sequence[str],
    where: Sequence[tuple[str, str]],
    since: float,
    until: float,
    bucket_key: str | None = None,
) -> dict[tuple[str, ...], Aggregate]:
    """The figures over [since, until) per group of `by` (labels); `bucket_key` ("day" or "hour" in `by`)
    is filled by the caller, which queries each bucket on its own."""
    server = Prometheus(url)
    matchers = _matchers(where)
    groups: dict[tuple[str, ...], Aggregate] = {}

    def group(labels: Mapping[str, str]) -> Aggregate:
        key = tuple(
            bucket_key or UNSET if k in ("day", "hour") else labels.get(label_of(k), UNSET) for k in by
        )
        found = groups.get(key)
        if found is None:
            found = groups[key] = Aggregate()
        return found

    for labels, value in server.deltas(CALLS, matchers, since, until):
        group(labels).calls += round(value)
    for labels, value in server.deltas(TOKENS, matchers, since, until):
        kind = labels.get(TOKEN_TYPE)
        if kind == "input":
            group(labels).input_tokens += round(value)
        elif kind == "output":
            group(labels).output_tokens += round(value)
    for labels, value in server.deltas(COST, matchers, since, until):
        # A double summed by the SDK: its shortest repr is the decimal closest to what it holds.
        group(labels).cost_usd += Decimal(repr(value))
    for labels, value in server.deltas(UNPRICED, matchers, since, until):
        group(labels).unpriced_calls += round(value)
    return {key: figures for key, figures in groups.items() if figures.calls or figures.cost_usd}
