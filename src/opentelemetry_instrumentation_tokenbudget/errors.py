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


def budget_refusal(error: BaseException) -> BudgetExceededError | None:
    """The `BudgetExceededError` behind `error`, or None when no budget refused anything.

    Frameworks wrap the exceptions of the calls they make: instructor raises its own retry exception
    *from* tenacity's `RetryError`, whose last attempt holds ours; asyncio's `TaskGroup` gathers the
    failures of its tasks in an `ExceptionGroup`. This looks through all of them: `error` itself, its
    `__cause__` and `__context__`, the members of an exception group, and the last attempt of a
    tenacity `RetryError`, nearest first::

        try:
            extract(document)
        except Exception as error:
            refusal = budget_refusal(error)
            if refusal is None:
                raise
            return f"Not now: {refusal.budget} is spent until the window resets."
    """
    pending: list[BaseException] = [error]
    seen: set[int] = set()
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, BudgetExceededError):
            return current
        pending.extend(_held_by(current))
    return None


def _held_by(error: BaseException) -> list[BaseException]:
    # An exception group's members (Python 3.11's `BaseExceptionGroup`, or the `exceptiongroup`
    # backport on 3.10): both keep them in `exceptions`.
    members = getattr(error, "exceptions", None)
    held = (
        [member for member in members if isinstance(member, BaseException)]
        if isinstance(members, tuple)
        else []
    )
    for linked in (error.__cause__, error.__context__, _last_attempt_error(error)):
        if linked is not None:
            held.append(linked)
    return held


def _last_attempt_error(error: BaseException) -> BaseException | None:
    # tenacity's `RetryError.last_attempt` is a finished `concurrent.futures.Future`; read without
    # importing tenacity, and never waited on.
    attempt = getattr(error, "last_attempt", None)
    done = getattr(attempt, "done", None)
    if not callable(done) or not done():
        return None
    try:
        found = attempt.exception(timeout=0)  # type: ignore[union-attr]
    except BaseException:  # a cancelled attempt, or one that is not a Future after all
        return None
    return found if isinstance(found, BaseException) else None


class SpendLimitExceededError(BudgetExceededError):
    """A `spend_limit` block refused the call before any request was sent: the call's estimate would
    take the block's spend past its cap. `budget` is the limit's name; `limit` the object itself."""

    def __init__(
        self,
        *,
        limit: object,
        name: str,
        spent_usd: Decimal,
        reserved_usd: Decimal,
        estimate_usd: Decimal,
        limit_usd: Decimal,
    ) -> None:
        self.limit = limit
        self.budget = name
        self.group = ""
        self.spent_usd = spent_usd
        self.reserved_usd = reserved_usd
        self.estimate_usd = estimate_usd
        self.limit_usd = limit_usd
        self.resets_at = None
        Exception.__init__(
            self,
            f"spend_limit {name!r} refused the call before sending it: spent in the block"
            f" {format_usd(spent_usd)} + reserved by calls in flight {format_usd(reserved_usd)}"
            f" + this call's estimate {format_usd(estimate_usd)}"
            f" = {format_usd(spent_usd + reserved_usd + estimate_usd)} would pass its cap of"
            f" {format_usd(limit_usd)}",
        )
