"""`spend_limit` blocks on real OpenAI and Anthropic SDK calls against the fake provider: the call that
would pass a cap is refused before it is sent, in the block's threads and tasks, each nested limit on
its own, with no budget declared.

The OpenAI call of budget_support costs 19.65 microdollars and is estimated at 21 before sending, so a
cap of 100 admits a call while 19.65 * n + 21 <= 100, i.e. while n <= 4: five calls reach the server,
the sixth is refused.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from opentelemetry_instrumentation_tokenbudget import (
    Budget,
    BudgetConfigError,
    BudgetExceededError,
    SpendLimitExceededError,
    spend_limit,
)
from opentelemetry_instrumentation_tokenbudget.testing import FakeProvider
from tests.budget_support import CALL_COST, MAX_TOKENS, MODEL, PROMPT, ask, client_for, span_costs
from tests.conftest import Telemetry

CAP = Decimal("0.0001")


def test_the_call_that_would_pass_the_cap_is_refused_before_it_is_sent(
    instrumented: Any, telemetry: Telemetry
) -> None:
    provider = FakeProvider()
    client = client_for(provider)
    with spend_limit(usd=CAP, name="fill-form") as limit:
        for _ in range(5):
            ask(client)
        with pytest.raises(SpendLimitExceededError) as refused:
            ask(client)

    assert len(provider.requests) == 5
    assert limit.spent_usd == 5 * CALL_COST == span_costs(telemetry)
    assert limit.reserved_usd == 0
    assert isinstance(refused.value, BudgetExceededError)
    assert refused.value.budget == "fill-form"
    assert refused.value.limit is limit
    assert str(refused.value) == (
        "spend_limit 'fill-form' refused the call before sending it: spent in the block $0.00009825"
        " + reserved by calls in flight $0.00 + this call's estimate $0.0000192 = $0.00011745 would pass"
        " its cap of $0.0001"
    )
    # Outside the block nothing is capped.
    ask(client)
    assert len(provider.requests) == 6
    assert limit.spent_usd == 5 * CALL_COST


def test_nested_limits_are_each_enforced(instrumented: Any) -> None:
    provider = FakeProvider()
    client = client_for(provider)
    with spend_limit(usd=CAP, name="task") as outer:
        with spend_limit(usd="0.00005", name="step") as inner:
            ask(client)
            ask(client)  # 19.65 + 21 <= 50
            with pytest.raises(SpendLimitExceededError) as by_inner:
                ask(client)  # 39.3 + 21 > 50
        assert by_inner.value.budget == "step"
        assert inner.spent_usd == 2 * CALL_COST
        # The outer limit counted the inner block's calls: 39.3 spent, three more fit under 100.
        for _ in range(3):
            ask(client)
        with pytest.raises(SpendLimitExceededError) as by_outer:
            ask(client)
        assert by_outer.value.budget == "task"
        # An inner limit looser than the outer one does not loosen it.
        with spend_limit(usd=1, name="generous") as loose, pytest.raises(SpendLimitExceededError) as refused:
            ask(client)
        assert refused.value.budget == "task"
        assert loose.spent_usd == 0
        assert loose.reserved_usd == 0

    assert len(provider.requests) == 5
    assert outer.spent_usd == 5 * CALL_COST
    assert outer.reserved_usd == inner.reserved_usd == 0


def test_one_object_entered_again_keeps_counting(instrumented: Any) -> None:
    provider = FakeProvider()
    client = client_for(provider)
    limit = spend_limit(usd=CAP)
    for _ in range(5):
        with limit:
            ask(client)
    with limit, limit, pytest.raises(SpendLimitExceededError) as refused:
        ask(client)
    assert refused.value.budget == limit.name
    assert len(provider.requests) == 5
    assert limit.spent_usd == 5 * CALL_COST


def test_threads_that_copy_the_context_share_the_cap(instrumented: Any) -> None:
    provider = FakeProvider(delay_s=0.0003)
    client = client_for(provider)
    admitted: list[int] = []

    def worker() -> None:
        calls = 0
        while True:
            try:
                ask(client)
            except SpendLimitExceededError as refused:
                # A refusal while other calls are in flight may be lifted when they settle below their
                # estimate; one with nothing in flight is final.
                if refused.reserved_usd == 0:
                    break
                continue
            calls += 1
        admitted.append(calls)

    with spend_limit(usd=CAP) as limit, ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(contextvars.copy_context().run, worker) for _ in range(8)]
        for future in futures:
            future.result(timeout=60)

    assert sum(admitted) == 5
    assert len(provider.requests) == 5
    assert limit.spent_usd == 5 * CALL_COST


def test_a_thread_that_does_not_copy_the_context_is_outside_the_block(instrumented: Any) -> None:
    provider = FakeProvider()
    client = client_for(provider)
    with spend_limit(usd="0.00002") as limit:
        thread = threading.Thread(target=lambda: [ask(client) for _ in range(3)])
        thread.start()
        thread.join(30)
    assert len(provider.requests) == 3
    assert limit.spent_usd == 0


def test_no_budget_is_needed_and_a_budget_refusal_releases_the_limit(instrument: Any) -> None:
    instrument(budgets=[Budget("daily", "0.00003")])
    provider = FakeProvider()
    client = client_for(provider)
    with spend_limit(usd=1) as limit:
        ask(client)
        with pytest.raises(BudgetExceededError) as refused:
            ask(client)
    assert not isinstance(refused.value, SpendLimitExceededError)
    assert refused.value.budget == "daily"
    assert len(provider.requests) == 1
    assert limit.spent_usd == CALL_COST
    assert limit.reserved_usd == 0


def test_a_failed_call_releases_its_reservation(instrumented: Any) -> None:
    failing = openai.OpenAI(
        api_key="test",
        base_url="https://api.openai.com/v1",
        http_client=httpx2.Client(
            transport=httpx2.MockTransport(
                lambda request: httpx2.Response(500, json={"error": {"message": "down"}})
            )
        ),
        max_retries=0,
    )
    with spend_limit(usd=CAP) as limit:
        with pytest.raises(openai.InternalServerError):
            ask(failing)
        assert limit.reserved_usd == 0
        assert limit.spent_usd == 0


def test_a_stream_settles_when_it_ends_even_after_the_block(instrumented: Any) -> None:
    provider = FakeProvider()
    client = client_for(provider)
    with spend_limit(usd=CAP) as limit:
        stream = ask(client, stream=True)
    assert limit.reserved_usd == Decimal("0.000021")
    list(stream)
    assert limit.reserved_usd == 0
    assert limit.spent_usd == CALL_COST


def test_async_tasks_and_async_with(instrumented: Any) -> None:
    provider = FakeProvider(delay_s=0.0003)
    client = openai.AsyncOpenAI(
        api_key="test",
        base_url="https://api.openai.com/v1",
        http_client=httpx2.AsyncClient(transport=provider.transport()),
        max_retries=0,
    )

    async def one() -> bool:
        try:
            await client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": PROMPT}], max_tokens=MAX_TOKENS
            )
        except SpendLimitExceededError:
            return False
        return True

    async def main() -> tuple[int, Decimal]:
        admitted = 0
        async with spend_limit(usd=CAP) as limit:
            # Sequential rounds of concurrent tasks: each round's refusals see the settled spend.
            for _ in range(4):
                admitted += sum(await asyncio.gather(*(asyncio.create_task(one()) for _ in range(3))))
        return admitted, limit.spent_usd

    admitted, spent = asyncio.run(main())
    # Round 1: 0 + 3 * 21 <= 100, all three; round 2: 58.95 + 21 fits, 58.95 + 2 * 21 does not (the
    # first is still in flight when the others ask); round 3: 78.6 + 21 fits once; round 4: none.
    assert admitted == len(provider.requests) == 5
    assert spent == admitted * CALL_COST


def test_anthropic_calls_are_capped(instrumented: Any, telemetry: Telemetry) -> None:
    # claude-haiku-4-5 (USD 1 / 5 per million input / output tokens): the fake provider bills 108 input
    # and 6 output tokens, 138 microdollars; the first estimate is 100 input tokens and max_tokens' 10
    # output (150), the later ones the prompt and the 95th percentile of the outputs seen (135). Under a cap
    # of 500: 138 * n + 135 <= 500 while n <= 2, so three calls are sent.
    provider = FakeProvider()
    client = anthropic.Anthropic(
        api_key="test", http_client=httpx2.Client(transport=provider.transport()), max_retries=0
    )

    def ask_claude() -> None:
        client.messages.create(
            model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": PROMPT}]
        )

    with spend_limit(usd="0.0005", name="claude") as limit:
        for _ in range(3):
            ask_claude()
        with pytest.raises(SpendLimitExceededError) as refused:
            ask_claude()
    assert refused.value.budget == "claude"
    assert refused.value.estimate_usd == Decimal("0.000135")
    assert len(provider.requests) == 3
    assert limit.spent_usd == 3 * Decimal("0.000138") == span_costs(telemetry)


def test_a_bad_amount_is_a_config_error() -> None:
    with pytest.raises(BudgetConfigError, match=r"limit_usd=-1: must be a finite number >= 0"):
        spend_limit(usd=-1)
