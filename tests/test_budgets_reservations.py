"""What a call reserves before it is sent, and amounts that cannot be right.

- The default ("expected") reservation: the counted prompt plus the 95th percentile of the model's
  recent outputs, capped by max_tokens; "strict" reserves max_tokens. A framework that sends the
  model's maximum (langchain-anthropic and pydantic-ai send max_tokens=64000 for claude-haiku-4-5)
  must not be refused calls that fit.
- A bad amount is a validation error, never a store failure: the caller's own max_tokens=-5 or 10**30
  goes to the provider unchanged and its error comes back, whatever on_store_error says; one absurd
  response never reaches the percentile.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from opentelemetry_instrumentation_tokenbudget import Budget, BudgetExceededError
from opentelemetry_instrumentation_tokenbudget.budgets.estimate import (
    DEFAULT_OUTPUT_TOKENS,
    MAX_TOKENS,
    OutputTokenPercentiles,
)
from opentelemetry_instrumentation_tokenbudget.budgets.store import Balance, SpendStore
from opentelemetry_instrumentation_tokenbudget.budgets.stores import open_store
from opentelemetry_instrumentation_tokenbudget.testing import FakeProvider
from tests.budget_support import CALL_COST_PICO, MODEL, PROMPT, Clock, client_for, ledger
from tests.conftest import Telemetry

HAIKU = "claude-haiku-4-5"
FIRST_ESTIMATE = 168_600_000
LEARNT_ESTIMATE = 19_200_000
# About 2000 tokens: a call costs about $0.002, so that three fit in $0.0065, as in the report.
LONG_PROMPT = PROMPT * 20


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(clock: Clock) -> Iterator[SpendStore]:
    opened = open_store("memory", clock=clock)
    yield opened
    opened.close()


# ---- the percentile ------------------------------------------------------------------------------


def test_the_percentile_is_the_nearest_rank_of_the_last_outputs() -> None:
    outputs = OutputTokenPercentiles(window=20)
    assert outputs.get("openai", MODEL) == DEFAULT_OUTPUT_TOKENS
    for tokens in range(1, 21):
        outputs.observe("openai", MODEL, tokens)
    # ceil(0.95 * 20) = 19th of 1..20.
    assert outputs.get("openai", MODEL) == 19
    # The window slides: 1..5 leave as 101..105 come in, and 101..105 are the top five.
    for tokens in range(101, 106):
        outputs.observe("openai", MODEL, tokens)
    assert outputs.get("openai", MODEL) == 104
    assert outputs.get("anthropic", MODEL) == DEFAULT_OUTPUT_TOKENS


@pytest.mark.parametrize("absurd", [-1, -1_000_000_000, MAX_TOKENS + 1, 10**20, 1e20, 7.5, "7", True, None])
def test_an_absurd_output_never_reaches_the_percentile(absurd: object) -> None:
    outputs = OutputTokenPercentiles()
    outputs.observe("openai", MODEL, 7)
    outputs.observe("openai", MODEL, absurd)
    assert outputs.get("openai", MODEL) == 7


def test_models_beyond_the_bound_are_forgotten_oldest_first() -> None:
    outputs = OutputTokenPercentiles(window=4, max_models=3)
    for index in range(5):
        for _ in range(10):
            outputs.observe("openai", f"m{index}", 100 + index)
    assert [outputs.get("openai", f"m{index}") for index in range(5)] == [256, 256, 102, 103, 104]


# ---- framework defaults --------------------------------------------------------------------------


def _haiku_calls(
    instrument: Any, clock: Clock, store: SpendStore, reservation: str
) -> tuple[int, FakeProvider]:
    instrument(budgets=[Budget("tiny", "0.0065")], store=store, clock=clock, reservation=reservation)
    provider = FakeProvider()
    client = anthropic.Anthropic(api_key="k", http_client=httpx2.Client(transport=provider.transport()))
    admitted = 0
    while admitted < 100:
        try:
            # An explicit timeout, as the frameworks give: without one the SDK itself refuses a
            # non-streaming call whose max_tokens could take more than ten minutes.
            client.messages.create(
                model=HAIKU, max_tokens=64000, messages=[{"role": "user", "content": LONG_PROMPT}], timeout=60
            )
        except BudgetExceededError:
            break
        admitted += 1
    return admitted, provider


def test_a_framework_max_tokens_does_not_refuse_calls_that_fit(
    instrument: Any, telemetry: Telemetry, clock: Clock, store: SpendStore
) -> None:
    admitted, provider = _haiku_calls(instrument, clock, store, "expected")
    spent = ledger(store, Budget("tiny", "0.0065"), clock.now)
    # Each call: 2003 input tokens at $1 and 7 output tokens at $5 per million = $0.002038. The first
    # reserves 2000 + 256 tokens ($0.00328), the next 2000 + 7 ($0.002035); the fourth would pass.
    assert admitted == len(provider.requests) == 3
    assert spent == Balance(spent=3 * 2_038_000_000, reserved=0)


def test_the_strict_reservation_refuses_what_max_tokens_could_cost(
    instrument: Any, telemetry: Telemetry, clock: Clock, store: SpendStore
) -> None:
    # 64000 output tokens at $5 per million are $0.32: the strict mode's guarantee refuses the call.
    admitted, provider = _haiku_calls(instrument, clock, store, "strict")
    assert admitted == len(provider.requests) == 0


# ---- bad amounts ---------------------------------------------------------------------------------


@pytest.mark.parametrize("max_tokens", [-5, 10**30])
@pytest.mark.parametrize("on_store_error", ["open", "closed"])
def test_the_callers_bad_max_tokens_reaches_the_provider_and_its_error_comes_back(
    instrument: Any, clock: Clock, store: SpendStore, max_tokens: int, on_store_error: str
) -> None:
    budget = Budget("hard", "0.001")
    instrument(budgets=[budget], store=store, clock=clock, on_store_error=on_store_error)
    provider = FakeProvider()
    client = client_for(provider)
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": PROMPT}], max_tokens=max_tokens
        )
    assert raised.value.status_code == 400
    assert raised.value.code == ("integer_below_min_value" if max_tokens < 0 else "integer_above_max_value")
    (sent,) = provider.requests
    assert sent.body["max_tokens"] == max_tokens
    # Reserved as though no ceiling were given (the model's default output), and released.
    assert ledger(store, budget, clock.now) == Balance(spent=0, reserved=0)


def _answer(completion_tokens: object) -> httpx2.MockTransport:
    """A chat completion whose usage says `completion_tokens`; the next ones say 7."""
    answers = [completion_tokens]

    def handle(request: httpx2.Request) -> httpx2.Response:
        tokens = answers.pop() if answers else 7
        body = {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": MODEL,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 103, "completion_tokens": tokens, "total_tokens": 110},
        }
        headers = {"content-type": "application/json"}
        return httpx2.Response(200, content=json.dumps(body).encode(), headers=headers)

    return httpx2.MockTransport(handle)


@pytest.mark.parametrize("completion_tokens", [-1_000_000_000, 10**20])
@pytest.mark.parametrize("on_store_error", ["open", "closed"])
def test_one_absurd_response_neither_poisons_estimates_nor_passes_for_a_store_failure(
    instrument: Any, clock: Clock, store: SpendStore, completion_tokens: int, on_store_error: str
) -> None:
    budget = Budget("hard", "0.001")
    instrument(budgets=[budget], store=store, clock=clock, on_store_error=on_store_error)
    client = openai.OpenAI(
        api_key="k",
        base_url="https://api.openai.com/v1",
        http_client=httpx2.Client(transport=_answer(completion_tokens)),
        max_retries=0,
    )

    def ask() -> None:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": PROMPT}])

    ask()
    absurd = ledger(store, budget, clock.now)
    # Nothing stays reserved, and the absurd call counts at most its reservation (100 prompt tokens
    # and the default 256 output tokens: 100 * 0.15 + 256 * 0.6 = 168.6 microdollars).
    assert absurd.reserved == 0
    assert absurd.spent <= FIRST_ESTIMATE
    # The calls that follow are refused by the limit, not by a store error. The absurd output was not
    # learnt: the next call still reserves the default output, the ones after it the 7 tokens seen.
    admitted = 0
    refused: BudgetExceededError | None = None
    for _ in range(100):
        try:
            ask()
        except BudgetExceededError as error:
            refused = error
            break
        admitted += 1
    assert refused is not None
    expected, spent = 0, absurd.spent
    while spent + (FIRST_ESTIMATE if expected == 0 else LEARNT_ESTIMATE) <= 1_000_000_000:
        expected, spent = expected + 1, spent + CALL_COST_PICO
    assert admitted == expected
    assert refused.estimate_usd == Decimal("0.0000192")
    assert ledger(store, budget, clock.now) == Balance(spent=spent, reserved=0)
