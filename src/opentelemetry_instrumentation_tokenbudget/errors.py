"""The one exception this package raises into the user's code, because they asked for it."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal


def format_usd(amount: Decimal) -> str:
    """Exact, without trailing zeros past the cents: $5.00, $0.49, $0.000125."""
    whole, _, fraction = f"{amount.normalize():f}".partition(".")
    return f"${whole}.{fraction.ljust(2, '0')}"


def describe_reset(resets_at: datetime | None) -> str:
    if resets_at is None:
        return "the budget has no window, so it never resets"
    return f"the window resets at {resets_at.isoformat()}"


class ConfigError(ValueError):
    """An option of `instrument()` or of the configuration file is not valid; the message names where
    it was given (the file or `instrument()`), the key and the value."""


class BudgetExceededError(Exception):
    """A blocking budget refused the call before any request was sent.

    The message names the budget, the group it applies to, what is spent and reserved, the limit,
    and when the window resets, so that the person who reads it knows what to do next.
    """

    spent_usd: Decimal | None
    """None when the spend could not be read (`BudgetStoreUnavailableError`)."""
    reserved_usd: Decimal | None

    def __init__(
        self,
        *,
        budget: str,
        group: str,
        spent_usd: Decimal,
        reserved_usd: Decimal,
        estimate_usd: Decimal,
        limit_usd: Decimal,
        resets_at: datetime | None,
    ) -> None:
        self.budget = budget
        self.group = group
        self.spent_usd = spent_usd
        self.reserved_usd = reserved_usd
        self.estimate_usd = estimate_usd
        self.limit_usd = limit_usd
        self.resets_at = resets_at
        where = f" for {group}" if group else ""
        super().__init__(
            f"budget {budget!r}{where} refused the call before sending it: spent {format_usd(spent_usd)}"
            f" + reserved by calls in flight {format_usd(reserved_usd)}"
            f" + this call's estimate {format_usd(estimate_usd)}"
            f" = {format_usd(spent_usd + reserved_usd + estimate_usd)} would pass the limit of"
            f" {format_usd(limit_usd)}; {describe_reset(resets_at)}"
        )


class BudgetStoreUnavailableError(BudgetExceededError):
    """A blocking budget refused the call because its spend store failed and `on_store_error` is
    "closed": the spend could not be checked, so nothing was sent."""

    def __init__(
        self,
        *,
        budget: str,
        group: str,
        store: str,
        cause: str,
        estimate_usd: Decimal,
        limit_usd: Decimal,
        resets_at: datetime | None,
    ) -> None:
        self.budget = budget
        self.group = group
        self.store = store
        self.spent_usd = None
        self.reserved_usd = None
        self.estimate_usd = estimate_usd
        self.limit_usd = limit_usd
        self.resets_at = resets_at
        where = f" for {group}" if group else ""
        Exception.__init__(
            self,
            f"budget {budget!r}{where} refused the call before sending it: its spend store {store} failed"
            f" ({cause}) and on_store_error='closed'; the limit is {format_usd(limit_usd)}",
        )
