"""Output of the commands: a table for people, JSON and CSV for machines."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

FORMATS = ("table", "json", "csv")


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def to_json(document: Mapping[str, Any]) -> str:
    return json.dumps(_plain(document), indent=2)


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, Mapping):
        return ",".join(f"{key}={item}" for key, item in value.items()) or "(all)"
    if isinstance(value, float):
        if value and abs(value) < 0.01:
            return f"{value:.8f}"
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:,.2f}"
    if isinstance(value, Decimal):
        return cell(float(value))
    return str(value)


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    cells = [[cell(row.get(column)) for column in columns] for row in rows]
    widths = [
        max([len(column)] + [len(line[index]) for line in cells]) for index, column in enumerate(columns)
    ]
    lines = ["  ".join(column.ljust(width) for column, width in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * width for width in widths))
    for line in cells:
        lines.append(
            "  ".join(
                value.rjust(width) if value[:1].isdigit() or value[:1] == "-" else value.ljust(width)
                for value, width in zip(line, widths, strict=True)
            )
        )
    return "\n".join(lines)


def to_csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([cell(row.get(column)) if row.get(column) is not None else "" for column in columns])
    return buffer.getvalue()
