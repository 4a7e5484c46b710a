"""Every option of `instrument()`, resolved once, with its errors.

`resolve_options` reads `OTEL_INSTRUMENTATION_TOKENBUDGET_CONFIG` (if set) and the keyword arguments,
the latter winning key by key (prices model by model), and checks every value before anything is
patched. Unknown keyword arguments are refused by name: a typo (``budget=``) must not silently leave
the application without the budget it asked for. The call core receives `Options.settings`, the
budgets (`budgets.setup.install_budgets`) receive the `Options` themselves.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from .attribution import KEYWORD_ATTRIBUTES
from .config import DEFAULT_METRIC_ATTRIBUTION_KEYS, Settings
from .errors import ConfigError

if TYPE_CHECKING:
    from .budgets.spec import Budget
    from .budgets.store import SpendStore

CONFIG_ENV: Final = "OTEL_INSTRUMENTATION_TOKENBUDGET_CONFIG"
LEDGER_ENV: Final = "OTEL_INSTRUMENTATION_TOKENBUDGET_LEDGER"
DEFAULT_STORE: Final = "memory"
DEFAULT_MAX_METRIC_GROUPS: Final = 100
ON_STORE_ERROR: Final = ("open", "closed")
OnStoreError = Literal["open", "closed"]
RESERVATIONS: Final = ("expected", "strict")
Reservation = Literal["expected", "strict"]
_STORE_METHODS: Final = ("reserve", "settle", "release", "balances", "close")
# What `instrument()` takes besides the options (`BaseInstrumentor.instrument` consumes its own
# `skip_dep_check` and `raise_exception_on_conflict` before we see them).
PROVIDER_ARGUMENTS: Final = ("tracer_provider", "meter_provider")
CALLBACK_OPTIONS: Final = ("on_threshold", "on_forecast", "on_anomaly", "clock")


@dataclass(frozen=True)
class Options:
    """Everything `instrument()` was asked for, checked."""

    prices: Mapping[str, Mapping[str, Any]]
    metric_attribution_keys: frozenset[str]
    inject_stream_usage: bool
    anthropic_sdk_spans: bool
    base_url_providers: Mapping[str, str]
    baggage_attribution: frozenset[str]
    """Names read from baggage (those of `baggage_budget_keys` included)."""
    budgets: tuple[Budget, ...]
    store: str | SpendStore
    store_source: str
    """Where `store` was given ("instrument()", the file, or "default"), for error messages."""
    on_store_error: OnStoreError
    on_threshold: Callable[[Any], object] | None
    clock: Callable[[], float] | None
    max_metric_groups: int
    on_forecast: Callable[[Any], object] | None = None
    on_anomaly: Callable[[Any], object] | None = None
    reservation: Reservation = "expected"
    """What a call reserves for its output: a high percentile of the model's recent outputs capped by
    `max_tokens` ("expected"), or `max_tokens` itself ("strict"); see `budgets.estimate`."""
    baggage_budget_keys: frozenset[str] = frozenset()
    """Names whose baggage values budgets may match and group on (none by default)."""
    ledger: str | None = None
    """`sqlite:///path[?retention_days=N]`: the spend ledger's file; None: no ledger (the default)."""
    record_error_messages: bool = False

    @property
    def settings(self) -> Settings:
        """What every call needs to know (the budgets' part goes to `budgets.setup`)."""
        return Settings(
            metric_attribution_keys=self.metric_attribution_keys,
            inject_stream_usage=self.inject_stream_usage,
            anthropic_sdk_spans=self.anthropic_sdk_spans,
            base_url_providers=self.base_url_providers,
            baggage_attribution=self.baggage_attribution,
            record_error_messages=self.record_error_messages,
        )


def resolve_options(kwargs: Mapping[str, Any], environ: Mapping[str, str] = os.environ) -> Options:
    """Raises `ConfigError` (a ValueError; `BudgetConfigError` for the budgets' options) naming the file
    or `instrument()`, the key and the value."""
    unknown = sorted(set(kwargs) - set(OPTION_NAMES) - set(PROVIDER_ARGUMENTS))
    if unknown:
        raise ConfigError(
            f"instrument(): unknown keyword argument{'s' if len(unknown) > 1 else ''} {', '.join(unknown)};"
            f" expected some of {', '.join(PROVIDER_ARGUMENTS + OPTION_NAMES)}"
        )
    path = environ.get(CONFIG_ENV, "").strip()
    from_file = _read_config_file(path) if path else {}
    given = {key: value for key, value in kwargs.items() if value is not None}

    def pick(key: str, default: Any) -> tuple[Any, str]:
        if key in given:
            return given[key], "instrument()"
        if key in from_file:
            return from_file[key], path
        return default, "default"

    prices = {**from_file.get("prices", {}), **_mapping("prices", given.get("prices", {}), "instrument()")}
    metric_keys, where = pick("metric_attribution_keys", DEFAULT_METRIC_ATTRIBUTION_KEYS)
    inject, inject_where = pick("inject_stream_usage", True)
    sdk_spans, sdk_spans_where = pick("anthropic_sdk_spans", False)
    error_messages, error_messages_where = pick("record_error_messages", False)
    base_urls, base_where = pick("base_url_providers", {})
    local_servers, local_where = pick("local_servers", ())
    baggage, baggage_where = pick("baggage_attribution", False)
    budget_keys = _names("baggage_budget_keys", *pick("baggage_budget_keys", ()))
    budgets, budgets_where = pick("budgets", ())
    store, store_where = pick("store", DEFAULT_STORE)
    on_store_error = _one_of("on_store_error", ON_STORE_ERROR, *pick("on_store_error", "open"))
    reservation = _one_of("reservation", RESERVATIONS, *pick("reservation", "expected"))
    max_groups, groups_where = pick("max_metric_groups", DEFAULT_MAX_METRIC_GROUPS)
    on_threshold = given.get("on_threshold")
    on_forecast = given.get("on_forecast")
    on_anomaly = given.get("on_anomaly")
    clock = given.get("clock")
    ledger, ledger_where = pick("ledger", environ.get(LEDGER_ENV, "").strip() or None)
    if ledger is not None:
        if not isinstance(ledger, str):
            raise ConfigError(f"{ledger_where}: ledger={ledger!r}: expected 'sqlite:///path/spend.db'")
        from .ledger.writer import parse_url

        try:
            parse_url(ledger)
        except ValueError as error:
            raise ConfigError(f"{ledger_where}: {error}") from None

    if isinstance(max_groups, bool) or not isinstance(max_groups, int) or max_groups < 0:
        raise _budget_error(f"{groups_where}: max_metric_groups={max_groups!r}: expected an integer >= 0")
    if not isinstance(inject, bool):
        raise ConfigError(f"{inject_where}: inject_stream_usage={inject!r}: expected true or false")
    if not isinstance(sdk_spans, bool):
        raise ConfigError(f"{sdk_spans_where}: anthropic_sdk_spans={sdk_spans!r}: expected true or false")
    if not isinstance(error_messages, bool):
        raise ConfigError(
            f"{error_messages_where}: record_error_messages={error_messages!r}: expected true or false"
        )
    for name, callback in (
        ("on_threshold", on_threshold),
        ("on_forecast", on_forecast),
        ("on_anomaly", on_anomaly),
    ):
        if callback is not None and not callable(callback):
            raise _budget_error(f"instrument(): {name}={callback!r}: expected a callable")
    if clock is not None and not callable(clock):
        raise _budget_error(f"instrument(): clock={clock!r}: expected a callable returning epoch seconds")
    return Options(
        prices=prices,
        metric_attribution_keys=_names("metric_attribution_keys", metric_keys, where),
        inject_stream_usage=inject,
        anthropic_sdk_spans=sdk_spans,
        base_url_providers={
            **_local_servers(local_servers, local_where),
            **_base_urls(base_urls, base_where),
        },
        baggage_attribution=_baggage(baggage, baggage_where) | budget_keys,
        baggage_budget_keys=budget_keys,
        budgets=_budgets(budgets, budgets_where),
        store=_store(store, store_where),
        store_source=store_where,
        on_store_error=on_store_error,
        on_threshold=on_threshold,
        clock=clock,
        max_metric_groups=max_groups,
        on_forecast=on_forecast,
        on_anomaly=on_anomaly,
        ledger=ledger,
        record_error_messages=error_messages,
        reservation=reservation,
    )


def _one_of(key: str, allowed: tuple[str, ...], value: Any, where: str) -> Any:
    if value not in allowed:
        expected = " or ".join(repr(choice) for choice in allowed)
        raise _budget_error(f"{where}: {key}={value!r}: expected {expected}")
    return value


def _mapping(key: str, value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: {key}={value!r}: expected a mapping")
    return value


def _names(key: str, value: object, where: str) -> frozenset[str]:
    if isinstance(value, str) or not isinstance(value, (list, tuple, set, frozenset)):
        raise ConfigError(f"{where}: {key}={value!r}: expected a list of attribute names")
    if not all(isinstance(name, str) and name for name in value):
        raise ConfigError(f"{where}: {key}={value!r}: expected a list of attribute names")
    return frozenset(value)


def _base_urls(value: object, where: str) -> Mapping[str, str]:
    mapping = _mapping("base_url_providers", value, where)
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()):
        raise ConfigError(f"{where}: base_url_providers={value!r}: expected base URL = provider name")
    return dict(mapping)


def _local_servers(value: object, where: str) -> Mapping[str, str]:
    """Base URL prefixes of the user's own model servers, named as `base_url_providers` would name
    them: free unless the user priced their models."""
    if (
        isinstance(value, str)
        or not isinstance(value, (list, tuple))
        or not all(isinstance(v, str) for v in value)
    ):
        raise ConfigError(f"{where}: local_servers={value!r}: expected a list of base URLs")
    if not value:
        return {}
    from .pricing.endpoints import local_server_name

    return {prefix: local_server_name(prefix) for prefix in value}


def _baggage(value: object, where: str) -> frozenset[str]:
    if value is True:
        return frozenset(KEYWORD_ATTRIBUTES.values())
    if value is False:
        return frozenset()
    return _names("baggage_attribution", value, where)


def _budgets(value: object, where: str) -> tuple[Budget, ...]:
    if isinstance(value, (list, tuple)) and not value:
        return ()
    # Imported only when budgets are given: an application without budgets never loads them.
    from .budgets.config_file import budget_from_table
    from .budgets.spec import Budget

    if isinstance(value, (str, Budget, Mapping)) or not isinstance(value, (list, tuple)):
        raise _budget_error(f"{where}: budgets={value!r}: expected a list of Budget")
    budgets: list[Budget] = []
    for number, item in enumerate(value, start=1):
        if isinstance(item, Budget):
            budgets.append(item)
        elif isinstance(item, Mapping):
            budgets.append(budget_from_table(item, f"{where}: budgets #{number}"))
        else:
            raise _budget_error(f"{where}: budgets #{number}={item!r}: expected a Budget")
    names = [budget.name for budget in budgets]
    for name in names:
        if names.count(name) > 1:
            # One ledger per name: two budgets sharing it would count each call twice in one entry.
            raise _budget_error(f"{where}: budgets: the name {name!r} is used twice")
    return tuple(budgets)


def _store(value: object, where: str) -> str | SpendStore:
    if isinstance(value, str):
        return value
    if all(callable(getattr(value, method, None)) for method in _STORE_METHODS):
        return value  # type: ignore[return-value]  # checked structurally just above
    raise _budget_error(
        f"{where}: store={value!r}: expected a URL ('memory', 'sqlite:///path.db', 'redis://host:6379/0')"
        " or an object implementing SpendStore"
    )


OPTION_NAMES: Final = (
    "prices",
    "metric_attribution_keys",
    "inject_stream_usage",
    "anthropic_sdk_spans",
    "base_url_providers",
    "local_servers",
    "baggage_attribution",
    "baggage_budget_keys",
    "budgets",
    "store",
    "on_store_error",
    "reservation",
    "on_threshold",
    "on_forecast",
    "on_anomaly",
    "clock",
    "max_metric_groups",
    "ledger",
    "record_error_messages",
)


def _budget_error(message: str) -> ConfigError:
    from .budgets.spec import BudgetConfigError

    return BudgetConfigError(message)


def _read_config_file(path: str) -> dict[str, Any]:
    from .budgets.config_file import read_config_file

    return read_config_file(path)
