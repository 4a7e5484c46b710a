"""`tokenbudget`: what the recorded spend says, and what to do about it.

Subcommands (each has ``--help``):

- ``forecast``: spend so far in the current day, week or month, projected to its end with an
  interval, the method's backtest error on the source's own history, and when a limit is reached.
- ``anomalies``: hours whose spend left the expected band, and what drove the excess.
- ``whatif``: the recorded usage repriced under another model.
- ``advise``: ranked savings with their scope, figures and caveat.
- ``outcomes``: cost per success per variant, from ``record_outcome`` (A/B tests).

Sources: ``--otlp FILE...``, the OpenTelemetry Collector's `file` exporter output (OTLP JSON lines).
Exit codes: 0 done, 2 bad input (a one-line error names it; nothing is written).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Final

from ..finops import anomalies as anomaly_methods
from ..finops import focus
from ..finops import forecast as forecast_methods
from ..finops.outcomes import OutcomeRecord, cost_per_success
from ..finops.report import FIGURES, KEY_NAMES, report, report_aggregates
from ..finops.sources import ledger as ledger_source
from ..finops.sources import otlp_json
from ..finops.spend_record import KEY_ALIASES, SpendRecord
from . import aggregates, commands, export, render
from . import run as gate

BAD_INPUT: Final = 2
_DURATION = re.compile(r"^(\d+)([hdw])$")
_SECONDS = {"h": 3600, "d": 86400, "w": 7 * 86400}


class UsageError(Exception):
    """Bad input: printed as one line, exit code 2."""


def _instant(value: str, now: float) -> float:
    match = _DURATION.match(value.strip())
    if match:
        return now - int(match.group(1)) * _SECONDS[match.group(2)]
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"{value!r}: expected a duration such as 30d, 12h, 2w or a date such as 2026-12-01"
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


def _keys(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    keys = tuple(key.strip() for key in value.split(",") if key.strip())
    for key in keys:
        if key not in KEY_ALIASES and "." not in key:
            raise UsageError(
                f"--by {key!r}: unknown key; use an attribute name or one of {', '.join(KEY_ALIASES)}"
            )
    return keys


def _common(
    parser: argparse.ArgumentParser, formats: Sequence[str] = render.FORMATS, prometheus: bool = False
) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--otlp",
        nargs="+",
        type=Path,
        metavar="FILE",
        help="Collector file exporter output (OTLP JSON lines)",
    )
    source.add_argument(
        "--ledger", metavar="URL", help="the spend ledger (sqlite:///path/spend.db, or its path)"
    )
    if prometheus:
        source.add_argument(
            "--prometheus", metavar="URL", help="a Prometheus server's HTTP API (aggregates; no --plot)"
        )
    parser.add_argument("--skip-bad", action="store_true", help="skip (and count) malformed lines")
    parser.add_argument("--format", choices=formats, default=formats[0])
    parser.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="only the calls whose KEY has VALUE (repeatable)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tokenbudget", description=__doc__.splitlines()[0] if __doc__ else None
    )
    sub = parser.add_subparsers(dest="command", required=True)

    report_parser = sub.add_parser("report", help="calls, tokens and cost, in total and per group")
    _common(report_parser, prometheus=True)
    report_parser.add_argument("--since", help="a duration back from now (7d, 12h, 2w) or a date")
    report_parser.add_argument("--until", help="a date (default now)")
    report_parser.add_argument(
        "--by", help=f"group by these keys (comma-separated): {', '.join(KEY_NAMES)} or attribute names"
    )
    report_parser.add_argument("--top", type=int, metavar="N", help="only the N most expensive groups")
    report_parser.add_argument(
        "--plot", type=Path, metavar="FILE.png", help="spend over time by group (needs the 'plot' extra)"
    )

    forecast = sub.add_parser("forecast", help="projected end-of-window spend, with its backtest")
    _common(forecast)
    forecast.add_argument("--window", choices=forecast_methods.WINDOWS, default="month")
    forecast.add_argument("--by", help="group by these keys (comma-separated)")
    forecast.add_argument("--limit", type=float, help="a limit in USD per group: when is it reached?")
    forecast.add_argument("--method", choices=forecast_methods.METHODS, help="default: the backtest's best")
    forecast.add_argument("--at", help="forecast as of this time (default now)")
    forecast.add_argument("--plot", type=Path, metavar="FILE.png", help="draw it (needs the 'plot' extra)")

    anomalies = sub.add_parser("anomalies", help="hours whose spend left the expected band")
    _common(anomalies)
    anomalies.add_argument("--since", default="30d")
    anomalies.add_argument("--until")
    anomalies.add_argument("--by", help="find anomalies per group of these keys")
    anomalies.add_argument("--drivers", default="model,feature,user", help="keys that may explain an excess")
    anomalies.add_argument(
        "--sensitivity", default="medium", help="low, medium, high, or a number of robust standard deviations"
    )

    whatif = sub.add_parser("whatif", help="the recorded usage repriced under another model")
    _common(whatif)
    whatif.add_argument("--model", required=True, metavar="FROM=TO")
    whatif.add_argument("--by", default="feature")

    outcomes = sub.add_parser("outcomes", help="cost per success per variant (A/B tests)")
    _common(outcomes)
    outcomes.add_argument("--by", default="variant")

    advise = sub.add_parser("advise", help="ranked savings")
    _common(advise)
    advise.add_argument("--since", default="30d")
    advise.add_argument("--until")

    export.add_parser(sub, lambda parser: _common(parser, formats=export.FORMATS))
    gate.add_parser(sub)
    return parser


def _records(
    args: argparse.Namespace, err: Any, outcomes: list[OutcomeRecord] | None = None
) -> list[SpendRecord]:
    stats = otlp_json.ReadStats()
    if getattr(args, "prometheus", None) is not None:
        return []  # aggregates, read by the report itself
    if args.command == "export" and args.ledger is not None:
        return []  # summed by SQLite or streamed from it, by the export itself
    if args.command == "report" and args.ledger is not None and args.plot is None:
        return []  # summed by SQLite, by the report itself
    try:
        if args.ledger is not None:
            records = ledger_source.read(args.ledger)
        else:
            records = otlp_json.read(args.otlp, skip_bad=args.skip_bad, stats=stats, outcomes=outcomes)
    except otlp_json.SourceError as error:
        raise UsageError(str(error)) from None
    if stats.skipped_lines:
        print(f"tokenbudget: skipped {stats.skipped_lines} malformed line(s)", file=err)
    for key, value in _conditions(args.where):
        records = [record for record in records if record.value_of(key) == value]
    return records


def _conditions(where: Sequence[str]) -> list[tuple[str, str]]:
    conditions = []
    for condition in where:
        key, sep, value = condition.partition("=")
        if not sep:
            raise UsageError(f"--where {condition!r}: expected KEY=VALUE")
        conditions.append((key, value))
    return conditions


def _sensitivity(value: str) -> float:
    if value in anomaly_methods.SENSITIVITY:
        return anomaly_methods.SENSITIVITY[value]
    try:
        number = float(value)
    except ValueError:
        raise UsageError(f"--sensitivity {value!r}: expected low, medium, high or a number") from None
    if number <= 0:
        raise UsageError(f"--sensitivity {value!r}: must be above 0")
    return number


_FORECAST_COLUMNS: Final = (
    "key",
    "spent_usd",
    "forecast_usd",
    "low_usd",
    "high_usd",
    "limit_usd",
    "exhausted_at",
)
_ANOMALY_COLUMNS: Final = ("start", "end", "key", "observed_usd", "expected_usd", "score", "drivers")
_WHATIF_COLUMNS: Final = (
    "key",
    "calls",
    "current_usd",
    "projected_usd",
    "projected_high_usd",
    "saving_usd",
    "unpriced_calls",
)
_OUTCOME_COLUMNS: Final = (
    "key",
    "calls",
    "cost_usd",
    "outcomes",
    "successes",
    "success_rate",
    "cost_per_success_usd",
    "mean_score",
)
_ADVICE_COLUMNS: Final = ("kind", "scope", "calls", "current_usd", "projected_usd", "saving_usd")


def run(args: argparse.Namespace, out: Any, err: Any) -> int:
    now = time.time()
    outcomes: list[OutcomeRecord] = []
    if args.command == "report":
        _report_keys(args.by)  # an unknown key is refused before a source is read
    records = _records(args, err, outcomes)
    until = _instant(args.until, now) if getattr(args, "until", None) else now
    if args.command == "report":
        _report(args, records, now, until, out)
    elif args.command == "export":
        _export(args, records, now, until, out)
    elif args.command == "forecast":
        at = _instant(args.at, now) if args.at else now
        document, total, overall = commands.forecast(
            records, window=args.window, by=_keys(args.by), now=at, limit=args.limit, method=args.method
        )
        if args.plot is not None:
            from .plot import plot_forecast

            plot_forecast(args.plot, total, overall, args.window, at)
        _print(
            out, args.format, document, rows=("groups", _FORECAST_COLUMNS), header=_forecast_header(document)
        )
    elif args.command == "anomalies":
        document = commands.anomalies(
            records,
            since=_instant(args.since, now),
            until=until,
            by=_keys(args.by),
            drivers=_keys(args.drivers),
            sensitivity=_sensitivity(args.sensitivity),
        )
        shown = document if args.format == "json" else {**document, "anomalies": _flat(document["anomalies"])}
        _print(out, args.format, shown, rows=("anomalies", _ANOMALY_COLUMNS))
    elif args.command == "whatif":
        source, sep, target = args.model.partition("=")
        if not sep or not source or not target:
            raise UsageError(f"--model {args.model!r}: expected FROM=TO, e.g. gpt-4o=gpt-4o-mini")
        document = commands.whatif(records, source=source, target=target, by=_keys(args.by))
        caveat = document["caveat"]
        footer = f"caveat: {caveat}" if caveat else f"no priced call of {source}"
        _print(out, args.format, document, rows=("groups", _WHATIF_COLUMNS), footer=footer)
    elif args.command == "outcomes":
        by = _keys(args.by)
        chosen = [o for o in outcomes if all(o.value_of(k) == v for k, v in _conditions(args.where))]
        document = {"by": list(by), "groups": cost_per_success(records, chosen, by)}
        _print(out, args.format, document, rows=("groups", _OUTCOME_COLUMNS))
    else:
        document = commands.advice(records, since=_instant(args.since, now), until=until)
        footer = "\n".join(
            f"{number}. {item['action']}\n   caveat: {item['caveat']}"
            for number, item in enumerate(document["advice"], start=1)
        )
        _print(out, args.format, document, rows=("advice", _ADVICE_COLUMNS), footer=footer)
    return 0


def _report(args: argparse.Namespace, records: list[SpendRecord], now: float, until: float, out: Any) -> None:
    by = _report_keys(args.by)
    since = _instant(args.since, now) if args.since else None
    if args.top is not None and args.top < 1:
        raise UsageError(f"--top {args.top}: expected a number of groups >= 1")
    in_range = [r for r in records if (since is None or r.start >= since) and r.start < until]
    if args.prometheus is not None:
        if args.plot is not None:
            raise UsageError("--plot: needs calls (--ledger or --otlp); Prometheus has aggregates")
        try:
            document = aggregates.prometheus_report(
                args.prometheus, by=by, where=_conditions(args.where), top=args.top, iso=_iso,
                since=since if since is not None else until - aggregates.DEFAULT_RANGE_S, until=until,
            )  # fmt: skip
        except (otlp_json.SourceError, aggregates.RangeError) as error:
            raise UsageError(str(error)) from None
    elif args.ledger is not None and args.plot is None:
        try:
            groups = ledger_source.summed(
                args.ledger, by, where=_conditions(args.where), since=since, until=until
            )
        except otlp_json.SourceError as error:
            raise UsageError(str(error)) from None
        document = report_aggregates(groups, by=by, top=args.top, since=_iso(since), until=_iso(until))
    else:
        document = report(in_range, by=by, top=args.top, since=_iso(since), until=_iso(until))
    if args.plot is not None:
        from .plot import plot_spend

        plot_spend(args.plot, in_range, by)
    _print(
        out,
        args.format,
        document,
        rows=("groups", _report_columns(document)),
        footer=render.table([{"key": "total", **document["total"]}], ("key", *FIGURES)),
    )


def _export(args: argparse.Namespace, records: list[SpendRecord], now: float, until: float, out: Any) -> None:
    since = _instant(args.since, now) if args.since else None
    tag_keys = export.tag_keys_of(args.tags)
    text: Iterable[str]
    if args.ledger is not None:
        try:
            if args.format == "focus":
                groups = ledger_source.focus_groups(
                    args.ledger, tag_keys=tag_keys, where=_conditions(args.where), since=since, until=until
                )
                text = export.csv_text(export.focus_lines(focus.rows_of(groups)))
            else:
                calls = ledger_source.calls(
                    args.ledger, where=_conditions(args.where), since=since, until=until
                )
                text = export.ledger_call_lines(calls)
        except otlp_json.SourceError as error:
            raise UsageError(str(error)) from None
    else:
        in_range = [r for r in records if (since is None or r.start >= since) and r.start < until]
        if args.format == "focus":
            text = export.csv_text(export.focus_lines(focus.rows(in_range, tag_keys=tag_keys)))
        else:
            text = export.csv_text(export.call_lines(in_range))
    try:
        export.write_text(text, output=args.output, out=out)
    except (export.ExportError, otlp_json.SourceError) as error:
        raise UsageError(str(error)) from None


def _report_keys(value: str | None) -> tuple[str, ...]:
    keys = tuple(key.strip() for key in (value or "").split(",") if key.strip())
    for key in keys:
        if key not in KEY_NAMES and "." not in key:
            raise UsageError(
                f"--by {key!r}: unknown key; use an attribute name or one of {', '.join(KEY_NAMES)}"
            )
    return keys


def _report_columns(document: dict[str, Any]) -> tuple[str, ...]:
    return ("key", *FIGURES)


def _iso(instant: float | None) -> str | None:
    if instant is None:
        return None
    return datetime.fromtimestamp(instant, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _forecast_header(document: dict[str, Any]) -> str:
    backtest = document["backtest"]
    window = document["window"]
    lines = [
        f"window {window['start']} .. {window['end']}, method {document['method']}",
        f"backtest over {backtest['windows']} past window(s): MAPE of the window's total forecast",
    ]
    cutoffs = [f"{cutoff:g}" for cutoff in backtest["cutoffs"]]
    rows = [
        {"method": method, "all": values["all"], **{f"at {c}": values[c] for c in cutoffs}}
        for method, values in backtest["mape"].items()
    ]
    if rows:
        lines.append(render.table(rows, ["method", "all", *(f"at {c}" for c in cutoffs)]))
    else:
        lines.append("  (no complete past window: the burn rate, with an interval from this window's spread)")
    return "\n".join(lines) + "\n"


def _flat(anomalies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            **row,
            "drivers": "; ".join(f"{render.cell(d['key'])} +{d['excess_usd']:.6f}" for d in row["drivers"]),
        }
        for row in anomalies
    ]


def _print(
    out: Any,
    fmt: str,
    document: dict[str, Any],
    *,
    rows: tuple[str, Sequence[str]],
    header: str = "",
    footer: str = "",
) -> None:
    key, columns = rows
    if fmt == "json":
        print(render.to_json(document), file=out)
    elif fmt == "csv":
        print(render.to_csv(document[key], columns), end="", file=out)
    else:
        if header:
            print(header, file=out)
        print(render.table(document[key], columns), file=out)
        if footer:
            print(footer, file=out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "run":
        return gate.main(args)
    try:
        return run(args, sys.stdout, sys.stderr)
    except UsageError as error:
        print(f"tokenbudget {args.command}: {error}", file=sys.stderr)
        return BAD_INPUT
    except BrokenPipeError:
        # The reader went away (`tokenbudget export ... | head`): stop without a traceback, as the
        # shell's own tools do. Python flushes standard output again at exit: it goes nowhere now.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
