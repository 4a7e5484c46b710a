"""`BudgetGuard`: the `SpendGuard` that reserves a call's estimated cost before it is sent.

For each call: the budgets it matches, their ledger entries (`charges`), its estimated cost
(`estimate`), and one atomic `store.reserve` of that estimate on every entry. If a blocking entry
would pass its limit, nothing is reserved anywhere and the call is refused with `BudgetExceededError`
before any request leaves. When the call ends, `settle` swaps the reservation for the real cost (or
`release` drops it, for a call that failed without usage) and reports crossed thresholds.

An amount that no ledger can hold (an estimate or a cost from a malformed response) is a validation
error, not a store failure: it is logged, the call is admitted or settled with what can be believed,
and the store's health and `on_store_error` are not touched.

The store may fail. Warn budgets then fail open. Blocking budgets follow `on_store_error`: "open"
(the default) admits the call without a reservation, "closed" refuses it. A call admitted while the
store was down still tries to record its cost when it ends; a settlement or release that fails is
journaled (`journal`, bounded) and written as soon as the store answers again, so that after an
outage the store holds what was spent. Failures are logged by `StoreHealth`, loudly but not once per call.

Nothing here raises into the user's code except the refusals.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from opentelemetry import trace
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_OPERATION_NAME,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MODEL,
)
from opentelemetry.trace import Span
from opentelemetry.util.types import AttributeValue

from ..adapter import RequestInfo
from ..attribution import current_cost_attributes
from ..call import Admission
from ..errors import BudgetExceededError, BudgetStoreUnavailableError
from ..metrics import add_metric_attribution
from ..options import OnStoreError
from ..pricing import picodollars_to_usd, usd_to_picodollars
from ..semconv import (
    TOKENBUDGET_BUDGET_ESTIMATE,
    TOKENBUDGET_BUDGET_GROUP,
    TOKENBUDGET_BUDGET_LIMIT,
    TOKENBUDGET_BUDGET_NAME,
    TOKENBUDGET_BUDGET_REFUSED_EVENT,
    TOKENBUDGET_BUDGET_RESERVED,
    TOKENBUDGET_BUDGET_SPENT,
)
from ..usage import TokenUsage
from .budget_metrics import BudgetCounters, GroupTracker
from .charges import Charge, ChargeBook
from .estimate import CostEstimator, observe_output
from .group_cap import GroupCap
from .journal import SpendJournal
from .spec import Budget
from .store import Balance, LedgerKey, SpendStore
from .store_health import StoreHealth
from .stores._ledger import is_amount
from .thresholds import ThresholdNotifier

_logger = logging.getLogger(__name__)


@dataclass(slots=True)
class BudgetAdmission:
    """A call's reservation: `reserved` picodollars on each charge's entry (0 if the store was down)."""

    charges: tuple[Charge, ...]
    keys: list[LedgerKey]
    """The charges' ledger entries, listed once for the reservation and the settlement."""
    reserved: int
    attributes: Mapping[str, AttributeValue]
    """What the call's budgets matched on, for the settlement's listeners."""


def call_attributes(
    attribution: Mapping[str, AttributeValue], provider: str, model: str, operation: str
) -> dict[str, AttributeValue]:
    """The attributes budgets match and group on: the call's attribution and what it calls."""
    attributes = dict(attribution)
    attributes[GEN_AI_PROVIDER_NAME] = provider
    attributes[GEN_AI_REQUEST_MODEL] = model
    attributes[GEN_AI_OPERATION_NAME] = operation
    return attributes


class SettleListener(Protocol):
    def after_settle(
        self,
        charges: Sequence[Charge],
        balances: Sequence[Balance],
        amount: int,
        span: Span | None,
        attributes: Mapping[str, AttributeValue],
    ) -> None: ...


class BudgetGuard:
    def __init__(
        self,
        budgets: Sequence[Budget],
        store: SpendStore,
        *,
        estimator: CostEstimator,
        notifier: ThresholdNotifier,
        counters: BudgetCounters,
        tracker: GroupTracker,
        health: StoreHealth,
        store_url: str,
        on_store_error: OnStoreError = "open",
        clock: Callable[[], float] = time.time,
        metric_attribution_keys: Iterable[str] = (),
        untrusted_baggage: Iterable[str] = (),
    ) -> None:
        self.budgets = tuple(budgets)
        self._charges = ChargeBook(self.budgets, GroupCap())
        self.store = store
        self.estimator = estimator
        self._notifier = notifier
        self._counters = counters
        self._tracker = tracker
        self._health = health
        self._store_url = store_url
        self._fail_closed = on_store_error == "closed"
        self._clock = clock
        self._metric_attribution_keys = frozenset(metric_attribution_keys)
        self._untrusted_baggage = tuple(untrusted_baggage)
        """Names read from baggage for telemetry that budgets must not match or group on."""
        self.journal = SpendJournal()
        self._closed = False
        self.settle_listeners: list[SettleListener] = []
        """Told of every settlement after the thresholds (the forecast and anomaly signals)."""
        self.on_refusal: Callable[[BudgetExceededError], None] | None = None
        """Told of every refusal before it is raised (`tokenbudget run` counts them across processes)."""
        self.on_call_start: Callable[[int], None] | None = None
        """Told the id of the span current when a call begins (see `BudgetSpanProcessor.cover`)."""

    def now(self) -> float:
        return self._clock()

    def close(self) -> None:
        """Stop touching the store: calls still in flight at `uninstrument()` end unrecorded."""
        self._closed = True

    # ---- SpendGuard ------------------------------------------------------------------------------

    def admit(
        self, request: RequestInfo, attribution: Mapping[str, AttributeValue]
    ) -> BudgetAdmission | None:
        if self._closed:
            return None
        try:
            return self._admit(request, attribution)
        except BudgetExceededError:
            raise
        except Exception:
            # Our own failure: the call goes on, unbudgeted, rather than break the user's program.
            _logger.debug("tokenbudget: could not check a call against its budgets", exc_info=True)
            return None

    def _admit(
        self, request: RequestInfo, attribution: Mapping[str, AttributeValue]
    ) -> BudgetAdmission | None:
        listener = self.on_call_start
        if listener is not None:
            listener(trace.get_current_span().get_span_context().span_id)
        attributes = call_attributes(attribution, request.provider, request.model, request.operation)
        if self._untrusted_baggage:
            # A value that this process did not set came from the caller's baggage.
            local = current_cost_attributes()
            for name in self._untrusted_baggage:
                if name not in local:
                    attributes.pop(name, None)
        charges = self._charges.charges_for(attributes, self._clock())
        if not charges:
            return None
        self._tracker.saw(charges)
        estimate = self._estimate(request)
        keys = [charge.key for charge in charges]
        try:
            outcome = self.store.reserve(keys, estimate)
        except ValueError:
            # Refused by the store's own checks (an amount or keys of ours that cannot be right): our
            # defect, not an outage. The call goes on, unreserved, and the policy is not applied.
            _logger.warning("tokenbudget: an invalid reservation of %r picodollars", estimate, exc_info=True)
            return BudgetAdmission(charges, keys, 0, attributes)
        except Exception as error:
            self._health.failed("reserve", error)
            self._refuse_without_store(charges, estimate, request, attribution, error)
            return BudgetAdmission(charges, keys, 0, attributes)
        if self._health.failures or self.journal.entries:
            self._store_answered()
        if outcome.refused_by is not None:
            index = outcome.refused_by
            self._refuse(charges[index], outcome.balances[index], estimate, request, attribution)
        return BudgetAdmission(charges, keys, estimate, attributes)

    def settle(
        self,
        admission: Admission | None,
        request: RequestInfo,
        spent: int | None,
        span: Span,
        usage: TokenUsage | None = None,
    ) -> None:
        try:
            if usage is not None:
                observe_output(self.estimator, request, usage)
            if not isinstance(admission, BudgetAdmission) or self._closed:
                return
            if usage is None:
                # The call ended and was billed, but its usage never reached us (an event stream read
                # as raw bytes): the reservation is the best figure there is, and keeping it errs on
                # the side of the limit.
                actual = admission.reserved
            else:
                actual = spent if spent is not None else 0
                if not is_amount(actual):
                    _logger.warning(
                        "tokenbudget: a call's cost of %r picodollars cannot be right; its reservation is"
                        " counted instead",
                        actual,
                    )
                    actual = admission.reserved
            self._settle(admission, actual, span)
        except Exception:
            _logger.debug("tokenbudget: could not settle a call's budgets", exc_info=True)

    def release(self, admission: Admission | None) -> None:
        if not isinstance(admission, BudgetAdmission) or admission.reserved == 0 or self._closed:
            return
        try:
            self.store.release(admission.keys, admission.reserved)
        except ValueError:
            _logger.warning("tokenbudget: an invalid release of %r", admission.reserved, exc_info=True)
        except Exception as error:
            self._health.failed("release", error)
            self.journal.add(admission.keys, admission.reserved, 0)
        else:
            if self._health.failures or self.journal.entries:
                self._store_answered()

    # ---- spend that no wrapper of ours saw -------------------------------------------------------

    def record(self, attributes: Mapping[str, AttributeValue], cost: Decimal, at: float) -> None:
        """Count the cost of a call made elsewhere (a span of another instrumentation), at `at`."""
        if self._closed:
            return
        charges = self._charges.charges_for(attributes, at)
        if charges:
            self._tracker.saw(charges)
            unreserved = BudgetAdmission(charges, [charge.key for charge in charges], 0, attributes)
            self._settle(unreserved, usd_to_picodollars(cost), None)

    # ---- the parts -------------------------------------------------------------------------------

    def _estimate(self, request: RequestInfo) -> int:
        try:
            estimate = self.estimator.estimate(request)
        except Exception:
            # An estimate we cannot make must not exempt the call from its budgets: reserve nothing,
            # but still check that the budget is not already spent.
            _logger.debug("tokenbudget: could not estimate a call's cost", exc_info=True)
            return 0
        if not is_amount(estimate):
            _logger.warning("tokenbudget: an invalid estimate of %r picodollars; 0 reserved", estimate)
            return 0
        return estimate

    def _settle(self, admission: BudgetAdmission, actual: int, span: Span | None) -> None:
        keys = admission.keys
        reserved = admission.reserved
        try:
            balances = self.store.settle(keys, reserved, actual)
        except ValueError:
            _logger.warning(
                "tokenbudget: an invalid settlement (%r reserved, %r spent)", reserved, actual, exc_info=True
            )
            return
        except Exception as error:
            self._health.failed("settle", error)
            if reserved or actual:
                self.journal.add(keys, reserved, actual)
            return
        if self._health.failures or self.journal.entries:
            self._store_answered()
        charges = admission.charges
        self._notifier.after_settle(charges, balances, actual, span)
        for listener in self.settle_listeners:
            listener.after_settle(charges, balances, actual, span, admission.attributes)

    def _store_answered(self) -> None:
        # Only after a failure: every call's path tests `failures` and the journal's entries inline
        # (two attribute reads) before calling this, rather than make two calls on each operation.
        self._health.succeeded()
        if self.journal.entries:
            self.journal.write(self.store)

    def _refuse_without_store(
        self,
        charges: tuple[Charge, ...],
        estimate: int,
        request: RequestInfo,
        attribution: Mapping[str, AttributeValue],
        error: BaseException,
    ) -> None:
        """Under on_store_error="closed", refuse a call that a blocking budget would have checked."""
        if self._fail_closed:
            for charge in charges:
                if charge.key.blocking:
                    self._count_refusal(charge, request, attribution)
                    raise BudgetStoreUnavailableError(
                        budget=charge.budget.name,
                        group=charge.group,
                        store=self._store_url,
                        cause=f"{type(error).__name__}: {error}",
                        estimate_usd=picodollars_to_usd(estimate),
                        limit_usd=charge.budget.limit_usd,
                        resets_at=charge.window.resets_at,
                    )

    def _refuse(
        self,
        charge: Charge,
        balance: Balance,
        estimate: int,
        request: RequestInfo,
        attribution: Mapping[str, AttributeValue],
    ) -> None:
        budget = charge.budget
        error = BudgetExceededError(
            budget=budget.name,
            group=charge.group,
            spent_usd=picodollars_to_usd(balance.spent),
            reserved_usd=picodollars_to_usd(balance.reserved),
            estimate_usd=picodollars_to_usd(estimate),
            limit_usd=budget.limit_usd,
            resets_at=charge.window.resets_at,
        )
        try:
            self._count_refusal(charge, request, attribution)
            self._refusal_event(charge, error, request)
            if self.on_refusal is not None:
                self.on_refusal(error)
        except Exception:
            _logger.debug("tokenbudget: could not report a refusal", exc_info=True)
        raise error

    def _count_refusal(
        self, charge: Charge, request: RequestInfo, attribution: Mapping[str, AttributeValue]
    ) -> None:
        attributes: dict[str, AttributeValue] = {
            TOKENBUDGET_BUDGET_NAME: charge.budget.name,
            GEN_AI_PROVIDER_NAME: request.provider,
            GEN_AI_REQUEST_MODEL: request.model,
        }
        add_metric_attribution(attributes, attribution, self._metric_attribution_keys)
        self._counters.refusals.add(1, attributes)

    @staticmethod
    def _refusal_event(charge: Charge, error: BudgetExceededError, request: RequestInfo) -> None:
        # No span of the refused call exists (nothing was sent): the caller's span carries the event.
        span = trace.get_current_span()
        if not span.is_recording():
            return
        attributes: dict[str, AttributeValue] = {
            TOKENBUDGET_BUDGET_NAME: charge.budget.name,
            TOKENBUDGET_BUDGET_SPENT: float(error.spent_usd or 0),
            TOKENBUDGET_BUDGET_RESERVED: float(error.reserved_usd or 0),
            TOKENBUDGET_BUDGET_ESTIMATE: float(error.estimate_usd),
            TOKENBUDGET_BUDGET_LIMIT: float(error.limit_usd),
            GEN_AI_PROVIDER_NAME: request.provider,
            GEN_AI_REQUEST_MODEL: request.model,
        }
        if charge.budget.group_by:
            attributes[TOKENBUDGET_BUDGET_GROUP] = charge.group
        span.add_event(TOKENBUDGET_BUDGET_REFUSED_EVENT, attributes)
