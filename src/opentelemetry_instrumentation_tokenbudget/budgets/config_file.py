"""The TOML file that `OTEL_INSTRUMENTATION_TOKENBUDGET_CONFIG` names, for auto-instrumentation, which
cannot pass arguments to `instrument()`.

```toml
store = "sqlite:////var/lib/app/spend.db"      # "memory" (default) | "sqlite:///…" | "redis://…"
on_store_error = "open"                         # or "closed"
reservation = "expected"                        # or "strict" (reserve max_tokens)
max_metric_groups = 100
metric_attribution_keys = ["tokenbudget.project", "tokenbudget.feature"]
baggage_attribution = true                      # or a list of attribute names
baggage_budget_keys = ["tokenbudget.tenant"]    # baggage values that budgets may group and match on

[[budgets]]
name = "per-user"
limit_usd = 0.5
window = "day"
timezone = "Europe/Paris"
group_by = ["user.id"]
max_groups = 1000
match = { "tokenbudget.feature" = "search" }
action = "warn"
thresholds = [0.5, 0.8, 1.0]

[prices."my-finetune"]
input_mtok = 0.3
output_mtok = 1.2
```

The file is read when `instrument()` runs. Any mistake is a `ConfigFileError` naming the file, the key
and the value, raised before anything is patched.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from ..options import CONFIG_ENV
from ..pricing import PriceBook
from .spec import Budget, BudgetConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


BUDGET_KEYS: Final = (
    "name",
    "limit_usd",
    "window",
    "timezone",
    "match",
    "group_by",
    "max_groups",
    "action",
    "thresholds",
)
TOP_LEVEL_KEYS: Final = (
    "store",
    "on_store_error",
    "reservation",
    "max_metric_groups",
    "metric_attribution_keys",
    "baggage_attribution",
    "baggage_budget_keys",
    "inject_stream_usage",
    "anthropic_sdk_spans",
    "base_url_providers",
    "local_servers",
    "budgets",
    "prices",
    "ledger",
    "record_error_messages",
)


class ConfigFileError(BudgetConfigError):
    """The configuration file is missing, not TOML, or holds a value that is not valid."""


def read_config_file(path: str) -> dict[str, Any]:
    """The file's settings as `instrument()` keyword arguments (budgets as `Budget` objects)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigFileError(f"{path} (named by {CONFIG_ENV}): cannot read it: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise ConfigFileError(
            f"{path} (named by {CONFIG_ENV}): not UTF-8 text (byte {error.object[error.start]:#04x}"
            f" at offset {error.start}); TOML files are UTF-8"
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigFileError(f"{path}: not valid TOML: {error}") from None
    return parse_config(data, path)


def parse_config(data: Mapping[str, Any], path: str) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for key, value in data.items():
        if key not in TOP_LEVEL_KEYS:
            raise ConfigFileError(f"{path}: unknown key {key!r}; expected one of {', '.join(TOP_LEVEL_KEYS)}")
        if key == "budgets":
            options[key] = _budgets(path, value)
        elif key == "prices":
            options[key] = _prices(path, value)
        else:
            # Checked by `setup`, with the rules and messages of instrument()'s keyword arguments.
            options[key] = value
    return options


def _budgets(path: str, value: object) -> list[Budget]:
    if not isinstance(value, list) or not all(isinstance(table, dict) for table in value):
        raise ConfigFileError(f"{path}: budgets: expected [[budgets]] tables, got {value!r}")
    budgets: list[Budget] = []
    for number, table in enumerate(value, start=1):
        where = f"{path}: [[budgets]] #{number}"
        budgets.append(budget_from_table(table, where, ConfigFileError))
    return budgets


def budget_from_table(
    table: Mapping[str, Any], where: str, error: type[BudgetConfigError] = BudgetConfigError
) -> Budget:
    """A `Budget` from a mapping with the keys of a [[budgets]] table."""
    unknown = [key for key in table if key not in BUDGET_KEYS]
    if unknown:
        raise error(f"{where}: unknown key {unknown[0]!r}; expected some of {', '.join(BUDGET_KEYS)}")
    for required in ("name", "limit_usd"):
        if required not in table:
            raise error(f"{where}: missing key {required!r}")
    options = dict(table)
    try:
        return Budget(options.pop("name"), options.pop("limit_usd"), **options)
    except BudgetConfigError as problem:
        raise error(f"{where}: {problem}") from None


def _prices(path: str, value: object) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(spec, dict) for spec in value.values()):
        raise ConfigFileError(f'{path}: prices: expected [prices."model"] tables, got {value!r}')
    try:
        PriceBook(value)
    except ValueError as problem:
        raise ConfigFileError(f"{path}: {problem}") from None
    return value
