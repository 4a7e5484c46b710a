"""Turning `instrument()`'s keyword arguments and the configuration file into running budgets.

`resolve_options` reads `OTEL_INSTRUMENTATION_TOKENBUDGET_CONFIG` (if set) and the keyword arguments,
the latter winning key by key (prices model by model), and checks every value before anything is
patched. `install_budgets` opens the store and builds the guard, the span processor and the metrics;
`InstalledBudgets.close` undoes what can be undone at `uninstrument()`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from opentelemetry import trace
from opentelemetry.metrics import Meter

from ..attribution import KEYWORD_ATTRIBUTES
from ..call import Runtime
from ..config import DEFAULT_METRIC_ATTRIBUTION_KEYS
from ..pricing.endpoints import local_server_name
from .anomaly_signal import AnomalyCallback, AnomalySignal
from .budget_metrics import DEFAULT_MAX_METRIC_GROUPS, BudgetGauges, GroupTracker, create_budget_counters
from .config_file import CONFIG_ENV, budget_from_table, read_config_file
from .estimate import CostEstimator
from .forecast_signal import ForecastCallback, ForecastSignal
from .guard import ON_STORE_ERROR, BudgetGuard, OnStoreError
from .spec import Budget, BudgetConfigError
from .store import SpendStore, StoreError
from .store_health import StoreHealth
from .stores import redact
from .thresholds import ThresholdCallback, ThresholdNotifier

_logger = logging.getLogger(__name__)

DEFAULT_STORE: Final = "memory"
_STORE_METHODS: Final = ("reserve", "settle", "release", "balances", "close")


@dataclass(frozen=True)
class Options:
    """Everything `instrument()` was asked for, checked."""

    prices: Mapping[str, Mapping[str, Any]]
    metric_attribution_keys: frozenset[str]
    inject_stream_usage: bool
    anthropic_sdk_spans: bool
    base_url_providers: Mapping[str, str]
    baggage_attribution: frozenset[str]
    budgets: tuple[Budget, ...]
    store: str | SpendStore
    store_source: str
    """Where `store` was given ("instrument()", the file, or "default"), for error messages."""
    on_store_error: OnStoreError
    on_threshold: ThresholdCallback | None
    clock: Callable[[], float] | None
    max_metric_groups: int
    on_forecast: ForecastCallback | None = None
    on_anomaly: AnomalyCallback | None = None


def resolve_options(kwargs: Mapping[str, Any], environ: Mapping[str, str] = os.environ) -> Options:
    """Raises `BudgetConfigError` (a ValueError) naming the file or `instrument()`, the key and the value."""
    path = environ.get(CONFIG_ENV, "").strip()
    from_file = read_config_file(path) if path else {}
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
    base_urls, base_where = pick("base_url_providers", {})
    local_servers, local_where = pick("local_servers", ())
    baggage, baggage_where = pick("baggage_attribution", False)
    budgets, budgets_where = pick("budgets", ())
    store, store_where = pick("store", DEFAULT_STORE)
    on_store_error, policy_where = pick("on_store_error", "open")
    max_groups, groups_where = pick("max_metric_groups", DEFAULT_MAX_METRIC_GROUPS)
    on_threshold = given.get("on_threshold")
    on_forecast = given.get("on_forecast")
    on_anomaly = given.get("on_anomaly")
    clock = given.get("clock")

    if on_store_error not in ON_STORE_ERROR:
        raise BudgetConfigError(
            f"{policy_where}: on_store_error={on_store_error!r}: expected 'open' or 'closed'"
        )
    if isinstance(max_groups, bool) or not isinstance(max_groups, int) or max_groups < 0:
        raise BudgetConfigError(f"{groups_where}: max_metric_groups={max_groups!r}: expected an integer >= 0")
    if not isinstance(inject, bool):
        raise BudgetConfigError(f"{inject_where}: inject_stream_usage={inject!r}: expected true or false")
    if not isinstance(sdk_spans, bool):
        raise BudgetConfigError(
            f"{sdk_spans_where}: anthropic_sdk_spans={sdk_spans!r}: expected true or false"
        )
    for name, callback in (
        ("on_threshold", on_threshold),
        ("on_forecast", on_forecast),
        ("on_anomaly", on_anomaly),
    ):
        if callback is not None and not callable(callback):
            raise BudgetConfigError(f"instrument(): {name}={callback!r}: expected a callable")
    if clock is not None and not callable(clock):
        raise BudgetConfigError(f"instrument(): clock={clock!r}: expected a callable returning epoch seconds")
    return Options(
        prices=prices,
        metric_attribution_keys=_names("metric_attribution_keys", metric_keys, where),
        inject_stream_usage=inject,
        anthropic_sdk_spans=sdk_spans,
        base_url_providers={
            **_local_servers(local_servers, local_where),
            **_base_urls(base_urls, base_where),
        },
        baggage_attribution=_baggage(baggage, baggage_where),
        budgets=_budgets(budgets, budgets_where),
        store=_store(store, store_where),
        store_source=store_where,
        on_store_error=on_store_error,
        on_threshold=on_threshold,
        clock=clock,
        max_metric_groups=max_groups,
        on_forecast=on_forecast,
        on_anomaly=on_anomaly,
    )


def _mapping(key: str, value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise BudgetConfigError(f"{where}: {key}={value!r}: expected a mapping")
    return value


def _names(key: str, value: object, where: str) -> frozenset[str]:
    if isinstance(value, str) or not isinstance(value, (list, tuple, set, frozenset)):
        raise BudgetConfigError(f"{where}: {key}={value!r}: expected a list of attribute names")
    if not all(isinstance(name, str) and name for name in value):
        raise BudgetConfigError(f"{where}: {key}={value!r}: expected a list of attribute names")
    return frozenset(value)


def _base_urls(value: object, where: str) -> Mapping[str, str]:
    mapping = _mapping("base_url_providers", value, where)
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()):
        raise BudgetConfigError(f"{where}: base_url_providers={value!r}: expected base URL = provider name")
    return dict(mapping)


def _local_servers(value: object, where: str) -> Mapping[str, str]:
    """Base URL prefixes of the user's own model servers, named as `base_url_providers` would name
    them: free unless the user priced their models."""
    if (
        isinstance(value, str)
        or not isinstance(value, (list, tuple))
        or not all(isinstance(v, str) for v in value)
    ):
        raise BudgetConfigError(f"{where}: local_servers={value!r}: expected a list of base URLs")
    return {prefix: local_server_name(prefix) for prefix in value}


def _baggage(value: object, where: str) -> frozenset[str]:
    if value is True:
        return frozenset(KEYWORD_ATTRIBUTES.values())
    if value is False:
        return frozenset()
    return _names("baggage_attribution", value, where)


def _budgets(value: object, where: str) -> tuple[Budget, ...]:
    if isinstance(value, (str, Budget, Mapping)) or not isinstance(value, (list, tuple)):
        raise BudgetConfigError(f"{where}: budgets={value!r}: expected a list of Budget")
    budgets: list[Budget] = []
    for number, item in enumerate(value, start=1):
        if isinstance(item, Budget):
            budgets.append(item)
        elif isinstance(item, Mapping):
            budgets.append(budget_from_table(item, f"{where}: budgets #{number}"))
        else:
            raise BudgetConfigError(f"{where}: budgets #{number}={item!r}: expected a Budget")
    names = [budget.name for budget in budgets]
    for name in names:
        if names.count(name) > 1:
            # One ledger per name: two budgets sharing it would count each call twice in one entry.
            raise BudgetConfigError(f"{where}: budgets: the name {name!r} is used twice")
    return tuple(budgets)


def _store(value: object, where: str) -> str | SpendStore:
    if isinstance(value, str):
        return value
    if all(callable(getattr(value, method, None)) for method in _STORE_METHODS):
        return value  # type: ignore[return-value]  # checked structurally just above
    raise BudgetConfigError(
        f"{where}: store={value!r}: expected a URL ('memory', 'sqlite:///path.db', 'redis://host:6379/0')"
        " or an object implementing SpendStore"
    )


class InstalledBudgets:
    """What `install_budgets` set up, for `uninstrument()` to take down."""

    def __init__(
        self,
        guard: BudgetGuard,
        gauges: BudgetGauges,
        processor: Any,
        store: SpendStore,
        owns_store: bool,
        *,
        signals: tuple[ForecastSignal, AnomalySignal] | None = None,
    ) -> None:
        self.guard = guard
        self.gauges = gauges
        self.signals = signals
        self.processor = processor
        self.store = store
        self._owns_store = owns_store

    def close(self) -> None:
        self.guard.close()
        self.gauges.close()
        for signal in self.signals or ():
            signal.close()
        if self.processor is not None:
            self.processor.close()
        if self._owns_store:
            try:
                self.store.close()
            except Exception:
                _logger.debug("tokenbudget: closing the spend store failed", exc_info=True)


def install_budgets(
    runtime: Runtime, options: Options, tracer_provider: object, meter: Meter, own_scope: str
) -> InstalledBudgets | None:
    """Build the budgets and set `runtime.guard`; None when no budget is configured."""
    if not options.budgets:
        return None
    clock = options.clock or time.time
    store, store_name, owns_store = _open_store(options.store, options.store_source, options.clock)
    health = StoreHealth(store_name, options.on_store_error)
    counters = create_budget_counters(meter)
    tracker = GroupTracker(options.max_metric_groups)
    guard = BudgetGuard(
        options.budgets,
        store,
        estimator=CostEstimator(runtime.prices),
        notifier=ThresholdNotifier(counters.threshold_crossings, options.on_threshold),
        counters=counters,
        tracker=tracker,
        health=health,
        store_url=store_name,
        on_store_error=options.on_store_error,
        clock=clock,
        metric_attribution_keys=options.metric_attribution_keys,
    )
    gauges = BudgetGauges(
        meter, budgets=options.budgets, store=store, tracker=tracker, health=health, clock=clock
    )
    signals = (
        ForecastSignal(
            meter,
            budgets=options.budgets,
            store=store,
            tracker=tracker,
            health=health,
            clock=clock,
            callback=options.on_forecast,
        ),
        AnomalySignal(meter, budgets=options.budgets, clock=clock, callback=options.on_anomaly),
    )
    guard.settle_listeners.extend(signals)
    processor = _add_processor(guard, runtime, options, tracer_provider, own_scope)
    runtime.guard = guard
    return InstalledBudgets(guard, gauges, processor, store, owns_store, signals=signals)


def _open_store(
    store: str | SpendStore, source: str, clock: Callable[[], float] | None
) -> tuple[SpendStore, str, bool]:
    if not isinstance(store, str):
        return store, type(store).__name__, False
    from .stores import open_store

    # The memory and SQLite stores expire entries by their own clock; with an injected clock (tests,
    # simulations) they must share it, or windows in the clock's past would read as expired.
    local = store in ("memory", "memory://") or store.startswith("sqlite:")
    try:
        opened = open_store(store, clock=clock) if clock is not None and local else open_store(store)
    except (ValueError, StoreError, OSError) as error:
        raise BudgetConfigError(f"{source}: store={redact(store)!r}: {error}") from None
    return opened, redact(store), True


def _add_processor(
    guard: BudgetGuard, runtime: Runtime, options: Options, tracer_provider: object, own_scope: str
) -> Any:
    provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
    add = getattr(provider, "add_span_processor", None)
    if not callable(add):
        _logger.info(
            "tokenbudget: the tracer provider %s takes no span processors, so budgets count the calls"
            " made through this instrumentation only, not GenAI spans of other instrumentations",
            type(provider).__name__,
        )
        return None
    try:
        from .processor import BudgetSpanProcessor
    except ImportError:
        _logger.info(
            "tokenbudget: opentelemetry-sdk is not installed; GenAI spans of other"
            " instrumentations are not counted into budgets",
            exc_info=True,
        )
        return None
    processor = BudgetSpanProcessor(
        guard, runtime.prices, own_scope=own_scope, baggage_attribution=options.baggage_attribution
    )
    add(processor)
    guard.on_call_start = processor.cover
    return processor
