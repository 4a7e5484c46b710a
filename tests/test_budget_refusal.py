"""`budget_refusal`: a refusal found wherever a framework put it (cause, context, exception groups,
tenacity's last attempt), and None for every other failure."""

from __future__ import annotations

import asyncio
import sys
from decimal import Decimal

import pytest

from opentelemetry_instrumentation_tokenbudget import BudgetExceededError, budget_refusal


def _refusal() -> BudgetExceededError:
    return BudgetExceededError(
        budget="hard",
        group="",
        spent_usd=Decimal("0.00003"),
        reserved_usd=Decimal(0),
        estimate_usd=Decimal("0.0000138"),
        limit_usd=Decimal("0.00004"),
        resets_at=None,
    )


class FrameworkRetryError(Exception):
    """A framework's own exception, raised from the one it caught (as instructor's retry exception)."""


def test_the_refusal_itself() -> None:
    refusal = _refusal()
    assert budget_refusal(refusal) is refusal


def _raise_from(refusal: BudgetExceededError) -> None:
    try:
        raise refusal
    except BudgetExceededError as error:
        raise FrameworkRetryError("gave up after 1 attempt") from error


def _raise_while_handling(refusal: BudgetExceededError) -> None:
    try:
        raise refusal
    except BudgetExceededError:
        # `from None` hides the context from tracebacks; the refusal is still behind it.
        raise KeyError("the framework's own bug") from None


def test_a_refusal_raised_from() -> None:
    refusal = _refusal()
    with pytest.raises(FrameworkRetryError) as raised:
        _raise_from(refusal)
    assert budget_refusal(raised.value) is refusal


def test_a_refusal_met_while_handling_another_error() -> None:
    refusal = _refusal()
    with pytest.raises(KeyError) as raised:
        _raise_while_handling(refusal)
    assert budget_refusal(raised.value) is refusal


@pytest.mark.skipif(
    sys.version_info < (3, 11), reason="asyncio.TaskGroup and ExceptionGroup are Python 3.11's"
)
def test_a_refusal_in_an_asyncio_task_group() -> None:
    refusal = _refusal()

    async def refused() -> None:
        raise refusal

    async def fine() -> None:
        await asyncio.sleep(0)

    async def run() -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(fine())
            group.create_task(refused())

    with pytest.raises(BaseException) as raised:  # noqa: PT011  # ExceptionGroup: Python 3.11's
        asyncio.run(run())
    assert type(raised.value).__name__ == "ExceptionGroup"
    assert budget_refusal(raised.value) is refusal


def test_a_refusal_behind_tenacity_retry_error() -> None:
    tenacity = pytest.importorskip("tenacity")
    refusal = _refusal()

    @tenacity.retry(stop=tenacity.stop_after_attempt(2), retry=tenacity.retry_if_exception_type(ValueError))
    def call() -> None:
        raise refusal

    # tenacity does not retry our error: it passes as it is.
    with pytest.raises(BudgetExceededError):
        call()

    @tenacity.retry(stop=tenacity.stop_after_attempt(1))
    def retried() -> None:
        raise refusal

    with pytest.raises(tenacity.RetryError) as raised:
        retried()
    assert budget_refusal(raised.value) is refusal


def _timeout_retried() -> None:
    try:
        raise TimeoutError("read timed out")
    except TimeoutError as error:
        raise FrameworkRetryError("gave up") from error


def test_no_refusal() -> None:
    with pytest.raises(FrameworkRetryError) as raised:
        _timeout_retried()
    assert budget_refusal(raised.value) is None


def test_a_cycle_of_causes_ends() -> None:
    first, second = ValueError("first"), ValueError("second")
    first.__context__, second.__context__ = second, first
    assert budget_refusal(first) is None
