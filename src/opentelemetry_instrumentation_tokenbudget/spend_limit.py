"""`spend_limit`: a cap on what the LLM calls made inside a block of code may cost.

.. code-block:: python

    with spend_limit(usd=1.00, name="fill-form"):
        agent.run(task)

A spend limit is a `Budget` without a window, charged by the calls made in its block rather than by
the calls its attributes match. The calls are admitted exactly as a budget's are (`scoped_guard`):
the estimated cost is reserved before the request is sent, the call that would pass the cap is
refused with `SpendLimitExceededError` (a `BudgetExceededError`) and sends nothing, the reservation
is settled with the real cost when the call ends, released when it fails.

Which calls are "in the block" is decided by `contextvars`: the limits in force are a context
variable, so every call made in the block's own thread, in the asyncio tasks it creates (each copies
the context), through `asyncio.to_thread`, and in any thread or executor job started with
`contextvars.copy_context().run` is charged. A plain `threading.Thread` or
`ThreadPoolExecutor.submit` does not copy the context (before Python 3.14's
`-X thread_inherit_context`): their calls are outside the block unless the job is wrapped.

Limits nest; a call is charged to every limit in force, and each one refuses on its own. One object
may be entered again (sequentially, or from several tasks at once): its spend accumulates across
entries. Nothing is enforced unless the instrumentation is on (`TokenBudgetInstrumentor().instrument()`),
but no budget needs declaring for it.
"""

from __future__ import annotations

import itertools
from contextvars import ContextVar
from decimal import Decimal
from types import TracebackType
from typing import TYPE_CHECKING, Final

from .pricing import picodollars_to_usd

if TYPE_CHECKING:
    from .budgets.spec import Budget
    from .budgets.store import LedgerKey, SpendStore

_ACTIVE: Final[ContextVar[tuple[SpendLimit, ...]]] = ContextVar("tokenbudget_spend_limits", default=())
_NUMBERS = itertools.count(1)


class SpendLimit:
    """A cap of `usd` on the cost of the calls made while it is entered (see the module)."""

    def __init__(self, usd: Decimal | int | float | str, *, name: str | None = None) -> None:
        # The budgets' modules load only when a limit is made: an application without one never does.
        from .budgets.charges import ledger_key
        from .budgets.spec import Budget
        from .budgets.stores.memory import MemoryStore

        number = next(_NUMBERS)
        self.name = name if name is not None else f"spend_limit #{number}"
        self.budget: Budget = Budget(self.name, usd)
        self.key: LedgerKey = ledger_key(self.budget, "", self.budget.window.span_at(0))
        # Its own store: what a limit holds is dropped with it, and one limit's lock is not another's.
        self.store: SpendStore = MemoryStore()

    @property
    def limit_usd(self) -> Decimal:
        return self.budget.limit_usd

    @property
    def spent_usd(self) -> Decimal:
        """Settled cost of the calls made in the block so far."""
        return picodollars_to_usd(self.store.balances([self.key])[0].spent)

    @property
    def reserved_usd(self) -> Decimal:
        """Estimated cost of the block's calls still in flight."""
        return picodollars_to_usd(self.store.balances([self.key])[0].reserved)

    def __enter__(self) -> SpendLimit:
        _ACTIVE.set((*_ACTIVE.get(), self))
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        # Not a reset token: the object may be entered in several tasks at once, each in its own
        # context, so exit removes this limit's innermost entry from whatever context is current.
        active = _ACTIVE.get()
        for index in range(len(active) - 1, -1, -1):
            if active[index] is self:
                _ACTIVE.set(active[:index] + active[index + 1 :])
                return

    async def __aenter__(self) -> SpendLimit:
        return self.__enter__()

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.__exit__(kind, error, trace)

    def __repr__(self) -> str:
        return f"SpendLimit({self.name!r}, usd={self.limit_usd}, spent={self.spent_usd})"


def spend_limit(usd: Decimal | int | float | str, *, name: str | None = None) -> SpendLimit:
    """A cap on the cost of the calls made in a ``with`` or ``async with`` block.

    `usd`: a number >= 0 (a float is read as its shortest decimal form). `name`: what a refusal calls
    the limit (default ``spend_limit #N``). Raises `BudgetConfigError` for a bad amount.
    """
    return SpendLimit(usd, name=name)


def active_limits() -> tuple[SpendLimit, ...]:
    """The limits in force in the current context, outermost first."""
    return _ACTIVE.get()
