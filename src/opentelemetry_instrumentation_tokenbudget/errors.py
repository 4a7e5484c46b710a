"""The one exception this package raises into the user's code, because they asked for it."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal


class BudgetExceededError(Exception):
    """A blocking budget refused the call before any request was sent.

    The message names the budget, the group it applies to, what is spent and reserved, the limit,
    and when the window resets, so that the person who reads it knows what to do next.
    """

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
        resets = f"; the window resets at {resets_at.isoformat()}" if resets_at is not None else ""
        super().__init__(
            f"budget {budget!r}{where} refused the call: spent ${spent_usd:.6f}"
            f" + reserved ${reserved_usd:.6f} + this call's estimate ${estimate_usd:.6f}"
            f" would pass the limit of ${limit_usd}{resets}"
        )
