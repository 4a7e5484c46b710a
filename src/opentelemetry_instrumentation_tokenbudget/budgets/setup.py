"""Turning the resolved options into running budgets.

The options arrive resolved and checked (`options.resolve_options`). `install_budgets` opens the
store and builds the guard, the span processor and the metrics; `InstalledBudgets.close` undoes
what can be undone at `uninstrument()`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from opentelemetry import trace
from opentelemetry.metrics import Meter

from ..call import Runtime
from ..options import Options
from .anomaly_signal import AnomalySignal
from .budget_metrics import BudgetGauges, GroupTracker, create_budget_counters
from .estimate import CostEstimator
from .forecast_signal import ForecastSignal
from .guard import BudgetGuard
from .spec import BudgetConfigError
from .store import SpendStore, StoreError
from .store_health import StoreHealth
from .stores import redact
from .thresholds import ThresholdNotifier

_logger = logging.getLogger(__name__)


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
        estimator=CostEstimator(runtime.prices, mode=options.reservation),
        notifier=ThresholdNotifier(counters.threshold_crossings, options.on_threshold),
        counters=counters,
        tracker=tracker,
        health=health,
        store_url=store_name,
        on_store_error=options.on_store_error,
        clock=clock,
        metric_attribution_keys=options.metric_attribution_keys,
        untrusted_baggage=sorted(options.baggage_attribution - options.baggage_budget_keys),
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
        # The processor reads baggage only to charge spans of other instrumentations to budgets.
        guard,
        runtime.prices,
        own_scope=own_scope,
        baggage_attribution=options.baggage_budget_keys,
    )
    add(processor)
    guard.on_call_start = processor.cover
    return processor
