"""The `SpendGuard` every call goes through: the `spend_limit` blocks in force, then the budgets.

Outside any `spend_limit` block this is one context-variable read before handing the call to the
budgets' guard (or to nobody). Inside, the call's estimate is reserved on each limit in force,
innermost first; if one would pass its cap, what was reserved on the others is released and the call
is refused before anything is sent. The budgets are asked after the limits, and their refusal releases
the limits' reservations too. Settling and releasing mirror the budgets' own: the reservation is
swapped for the real cost, or dropped for a call that failed without usage.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import Span
from opentelemetry.util.types import AttributeValue

from .adapter import RequestInfo
from .call import Admission, SpendGuard
from .errors import SpendLimitExceededError
from .pricing import PriceBook, picodollars_to_usd
from .spend_limit import SpendLimit, active_limits
from .usage import TokenUsage

if TYPE_CHECKING:
    from .budgets.estimate import CostEstimator

_logger = logging.getLogger(__name__)


@dataclass(slots=True)
class ScopedAdmission:
    """A call admitted inside `spend_limit` blocks: `reserved` picodollars on each of `limits`."""

    limits: tuple[SpendLimit, ...]
    reserved: int
    budgets: Admission | None


class ScopedGuard:
    def __init__(self, budgets: SpendGuard | None, prices: PriceBook) -> None:
        self.budgets = budgets
        self._prices = prices
        self._estimator: CostEstimator | None = None

    def _estimator_for_limits(self) -> CostEstimator:
        # The budgets' estimator when there are budgets: one set of learnt output averages.
        shared: Any = getattr(self.budgets, "estimator", None)
        if shared is not None:
            return shared  # type: ignore[no-any-return]  # BudgetGuard.estimator
        if self._estimator is None:
            from .budgets.estimate import CostEstimator

            self._estimator = CostEstimator(self._prices)
        return self._estimator

    def admit(self, request: RequestInfo, attribution: Mapping[str, AttributeValue]) -> Admission | None:
        limits = active_limits()
        budgets = self.budgets
        if not limits:
            return budgets.admit(request, attribution) if budgets is not None else None
        reserved = self._reserve(limits, request)
        try:
            admission = budgets.admit(request, attribution) if budgets is not None else None
        except BaseException:
            self._release(limits, reserved)
            raise
        return ScopedAdmission(limits, reserved, admission)

    def settle(
        self,
        admission: Admission | None,
        request: RequestInfo,
        spent: int | None,
        span: Span,
        usage: TokenUsage | None = None,
    ) -> None:
        if isinstance(admission, ScopedAdmission):
            self._settle(admission, request, spent, usage)
            admission = admission.budgets
        elif self.budgets is None and usage is not None and self._estimator is not None:
            self._observe(request, usage)
        if self.budgets is not None:
            self.budgets.settle(admission, request, spent, span, usage)

    def release(self, admission: Admission | None) -> None:
        if isinstance(admission, ScopedAdmission):
            self._release(admission.limits, admission.reserved)
            admission = admission.budgets
        if self.budgets is not None:
            self.budgets.release(admission)

    # ---- the limits ------------------------------------------------------------------------------

    def _reserve(self, limits: tuple[SpendLimit, ...], request: RequestInfo) -> int:
        try:
            estimate = self._estimator_for_limits().estimate(request)
        except Exception:
            # As for budgets: no estimate reserves nothing, but a spent limit still refuses.
            _logger.debug("tokenbudget: could not estimate a call's cost", exc_info=True)
            estimate = 0
        done: list[SpendLimit] = []
        for limit in reversed(limits):
            if limit in done:  # one object entered twice in the same context counts once
                continue
            outcome = limit.store.reserve([limit.key], estimate)
            if outcome.refused_by is not None:
                self._release(tuple(done), estimate)
                balance = outcome.balances[0]
                raise SpendLimitExceededError(
                    limit=limit,
                    name=limit.name,
                    spent_usd=picodollars_to_usd(balance.spent),
                    reserved_usd=picodollars_to_usd(balance.reserved),
                    estimate_usd=picodollars_to_usd(estimate),
                    limit_usd=limit.limit_usd,
                )
            done.append(limit)
        return estimate

    def _settle(
        self,
        admission: ScopedAdmission,
        request: RequestInfo,
        spent: int | None,
        usage: TokenUsage | None,
    ) -> None:
        try:
            if usage is None:
                # Billed, but its usage never reached us: the reservation is the best figure there is.
                actual = admission.reserved
            else:
                actual = spent if spent is not None else 0
                if self.budgets is None:
                    self._observe(request, usage)
            for limit in _distinct(admission.limits):
                limit.store.settle([limit.key], admission.reserved, actual)
        except Exception:
            _logger.debug("tokenbudget: could not settle a call's spend limits", exc_info=True)

    @staticmethod
    def _release(limits: tuple[SpendLimit, ...], reserved: int) -> None:
        if reserved == 0:
            return
        for limit in _distinct(limits):
            try:
                limit.store.release([limit.key], reserved)
            except Exception:
                _logger.debug("tokenbudget: could not release a spend limit's reservation", exc_info=True)

    def _observe(self, request: RequestInfo, usage: TokenUsage) -> None:
        from .budgets.estimate import observe_output

        try:
            observe_output(self._estimator_for_limits(), request, usage)
        except Exception:
            _logger.debug("tokenbudget: could not learn from a call's usage", exc_info=True)


def _distinct(limits: tuple[SpendLimit, ...]) -> list[SpendLimit]:
    seen: list[SpendLimit] = []
    for limit in limits:
        if limit not in seen:
            seen.append(limit)
    return seen
