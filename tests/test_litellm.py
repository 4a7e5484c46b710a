"""LiteLLM's SDK, as applications call it, against the bundled fake provider over loopback HTTP and the
recorded exchanges in tests/cassettes/litellm/: one span per call, exact tokens and exact USD.

The fake's counts (see `testing.fake_tokens`): the prompt QUESTION is one message of 3 + ceil(47/4) =
15 tokens and the reply 12 tokens. Prices (genai-prices, USD per million tokens): gpt-4o-mini 0.15 in,
0.6 out, so 15 x 0.15 + 12 x 0.6 = 9.45 microdollars; claude-3-5-haiku 0.8 / 4, 60 microdollars.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

# LiteLLM fetches its price table from the network at import unless told to use the bundled one.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
litellm = pytest.importorskip("litellm")

from opentelemetry_instrumentation_tokenbudget import Budget, BudgetExceededError  # noqa: E402
from opentelemetry_instrumentation_tokenbudget.testing import FakeProviderServer  # noqa: E402
from tests.conftest import Telemetry  # noqa: E402
from tests.recorded import Cassette, openai_client  # noqa: E402

QUESTION = "In two sentences, why do token budgets matter?"
MESSAGES = [{"role": "user", "content": QUESTION}]
HAIKU = "claude-3-5-haiku-20241022"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as running:
        yield running


@pytest.fixture
def instrumented(instrument: Any, server: FakeProviderServer) -> Any:
    # The fake server stands for OpenAI and Anthropic, and is named so: a bare loopback address would
    # be priced as a local model server.
    return instrument(base_url_providers=_providers_of(server))


def _providers_of(server: FakeProviderServer) -> dict[str, str]:
    # Longest first: the Anthropic base URL is a prefix of the OpenAI one.
    return {server.base_url_openai: "openai", server.base_url_anthropic: "anthropic"}


@dataclass(frozen=True)
class Cell:
    provider: str
    method: str
    is_async: bool
    stream: str  # "" plain, "stream" without stream_options, "stream+usage" with include_usage
    model: str
    input_tokens: int
    output_tokens: int
    usd: float

    def __str__(self) -> str:
        mode = ("async" if self.is_async else "sync") + (f"-{self.stream}" if self.stream else "")
        return f"{self.provider}-{self.method}-{mode}"


CELLS = [
    *(
        Cell("openai", "completion", is_async, stream, "gpt-4o-mini", 15, 12, 9.45e-06)
        for is_async in (False, True)
        for stream in ("", "stream", "stream+usage")
    ),
    # Anthropic's Messages API through LiteLLM's own HTTP client: 15 x 0.8 + 12 x 4 = 60 microdollars.
    *(
        Cell("anthropic", "completion", is_async, stream, HAIKU, 15, 12, 6e-05)
        for is_async in (False, True)
        for stream in ("", "stream", "stream+usage")
    ),
    # The prompt alone, no message framing: ceil(47/4) = 12 tokens in; gpt-3.5-turbo-instruct 1.5 / 2.
    *(
        Cell("openai", "text_completion", is_async, "", "gpt-3.5-turbo-instruct", 12, 12, 4.2e-05)
        for is_async in (False, True)
    ),
    # 12 tokens x 0.02 per million.
    *(
        Cell("openai", "embedding", is_async, "", "text-embedding-3-small", 12, 0, 2.4e-07)
        for is_async in (False, True)
    ),
    *(
        Cell("openai", "responses", is_async, stream, "gpt-4o-mini", 15, 12, 9.45e-06)
        for is_async in (False, True)
        for stream in ("", "stream")
    ),
]


def _arguments(cell: Cell, server: FakeProviderServer) -> dict[str, Any]:
    base = server.base_url_anthropic if cell.provider == "anthropic" else server.base_url_openai
    arguments: dict[str, Any] = {
        "model": f"{cell.provider}/{cell.model}",
        "api_base": base,
        "api_key": "test",
    }
    if cell.method == "completion":
        arguments["messages"] = MESSAGES
    elif cell.method == "text_completion":
        arguments["prompt"] = QUESTION
    else:
        arguments["input"] = QUESTION
    if cell.stream:
        arguments["stream"] = True
    if cell.stream == "stream+usage":
        arguments["stream_options"] = {"include_usage": True}
    return arguments


def _text(item: Any) -> str:
    """The text of a chunk, a whole response or a Responses event, as the user reads it."""
    if getattr(item, "type", None) == "response.output_text.delta":
        return str(item.delta)
    output = getattr(item, "output", None)
    if output:  # a whole Responses API response
        return "".join(
            part.text for message in output for part in message.content if part.type == "output_text"
        )
    choices = getattr(item, "choices", None) or ()
    texts = []
    for choice in choices:
        delta = getattr(choice, "delta", None)
        message = getattr(choice, "message", None)
        source = delta if delta is not None else message
        text = getattr(source, "content", None) if source is not None else getattr(choice, "text", None)
        texts.append(text or "")
    return "".join(texts)


def _call(cell: Cell, server: FakeProviderServer) -> list[Any]:
    """The call as the user makes it; what the user read (the chunks of a stream, else the response)."""
    arguments = _arguments(cell, server)
    if not cell.is_async:
        result = getattr(litellm, cell.method)(**arguments)
        return list(result) if cell.stream else [result]

    async def run() -> list[Any]:
        result = await getattr(litellm, "a" + cell.method)(**arguments)
        return [item async for item in result] if cell.stream else [result]

    return asyncio.run(run())


@pytest.mark.parametrize("cell", CELLS, ids=str)
def test_litellm_call(
    instrumented: Any, telemetry: Telemetry, server: FakeProviderServer, cell: Cell
) -> None:
    read = _call(cell, server)

    attributes = telemetry.only_span().attributes
    assert attributes["gen_ai.provider.name"] == cell.provider
    assert attributes["gen_ai.request.model"] == cell.model
    assert attributes["gen_ai.usage.input_tokens"] == cell.input_tokens
    assert attributes["gen_ai.usage.output_tokens"] == cell.output_tokens
    assert attributes["gen_ai.usage.cost.amount"] == cell.usd
    assert attributes["gen_ai.usage.cost.source"] == "local"
    assert "tokenbudget.cost.estimated" not in attributes
    if cell.method != "embedding":
        assert "".join(_text(item) for item in read).startswith("This is a fake reply")
    if cell.stream:
        # The usage chunk we asked for is not shown to a caller who did not ask for it.
        usage_chunks = [item for item in read if getattr(item, "usage", None) is not None]
        assert len(usage_chunks) == (1 if cell.stream == "stream+usage" else 0)


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_a_call_that_passes_through_another_wrapped_function_is_counted_once(
    instrumented: Any, telemetry: Telemetry, server: FakeProviderServer, is_async: bool
) -> None:
    # LiteLLM answers `responses()` for Anthropic models by calling `litellm.completion` (or
    # `acompletion`), which we wrap too: one call, one span, one cost.
    arguments = {
        "model": f"anthropic/{HAIKU}",
        "input": QUESTION,
        "api_base": server.base_url,
        "api_key": "t",
    }
    if is_async:
        asyncio.run(litellm.aresponses(**arguments))
    else:
        litellm.responses(**arguments)
    span = telemetry.only_span()
    assert span.name == f"chat {HAIKU}"
    assert span.attributes is not None
    assert span.attributes["gen_ai.usage.input_tokens"] == 15
    assert span.attributes["gen_ai.usage.output_tokens"] == 12
    assert span.attributes["gen_ai.usage.cost.amount"] == 6e-05
    assert [request.path for request in server.provider.requests][-1:] == ["/v1/messages"]


def test_litellm_cost_is_recorded_beside_ours(
    instrumented: Any, telemetry: Telemetry, server: FakeProviderServer
) -> None:
    litellm.completion(
        model="openai/gpt-4o-mini", messages=MESSAGES, api_base=server.base_url_openai, api_key="t"
    )
    attributes = telemetry.only_span().attributes
    assert attributes["gen_ai.usage.cost.amount"] == 9.45e-06
    assert attributes["tokenbudget.cost.library"] == 9.45e-06


def test_litellm_cost_prices_a_model_our_data_does_not_know(
    instrumented: Any, telemetry: Telemetry, server: FakeProviderServer
) -> None:
    # A model only the user's LiteLLM price table knows: 1 and 2 dollars per million tokens.
    litellm.register_model(
        {
            "openai/tb-house-model": {
                "input_cost_per_token": 1e-06,
                "output_cost_per_token": 2e-06,
                "litellm_provider": "openai",
                "mode": "chat",
            }
        }
    )
    litellm.completion(
        model="openai/tb-house-model", messages=MESSAGES, api_base=server.base_url_openai, api_key="t"
    )
    attributes = telemetry.only_span().attributes
    # 15 x 1 + 12 x 2 = 39 microdollars.
    assert attributes["gen_ai.usage.cost.amount"] == 3.9e-05
    assert attributes["gen_ai.usage.cost.source"] == "provider"
    assert attributes["tokenbudget.cost.library"] == 3.9e-05
    assert "tokenbudget.cost.unpriced" not in attributes


def test_provider_from_the_model_prefix_and_api_base(instrument: Any, telemetry: Telemetry) -> None:
    instrument()
    # `ollama/llama3` goes to Ollama's own port on this machine: nothing listens there in the test,
    # and the provider, the address and the failure are what the span says.
    with pytest.raises(litellm.APIConnectionError) as raised:
        litellm.completion(model="ollama/llama3", messages=MESSAGES, num_retries=0)
    span = telemetry.only_span()
    assert span.attributes is not None
    assert span.attributes["gen_ai.provider.name"] == "ollama"
    assert span.attributes["gen_ai.request.model"] == "llama3"
    assert span.attributes["server.port"] == 11434
    assert span.attributes["error.type"] == type(raised.value).__qualname__


def test_a_hard_budget_stops_the_fourth_of_six_calls(
    instrument: Any, telemetry: Telemetry, server: FakeProviderServer
) -> None:
    server.provider.reset()
    # Each call costs 9.45 microdollars. The first is reserved for max_tokens=20 output tokens (12 x
    # 0.15 + 20 x 0.6 = 13.8, no output seen yet), the next ones for the 12 seen (1.8 + 7.2 = 9.0):
    # the third is admitted at 18.9 + 9.0 <= 30, the fourth refused at 28.35 + 9.0.
    instrument(budgets=[Budget("hard", "0.00003")], base_url_providers=_providers_of(server))
    sent = []
    refused = 0
    for _ in range(6):
        try:
            litellm.completion(
                model="openai/gpt-4o-mini",
                messages=MESSAGES,
                max_tokens=20,
                api_base=server.base_url_openai,
                api_key="t",
            )
            sent.append(True)
        except BudgetExceededError:
            refused += 1
    assert (len(sent), refused) == (3, 3)
    assert len(server.provider.requests) == 3  # refused before the request left
    assert len(telemetry.our_spans()) == 3


def test_recorded_openai_exchange(instrumented: Any, telemetry: Telemetry) -> None:
    # LiteLLM takes the user's OpenAI client; the response is the one OpenAI sent (9 + 9 tokens).
    cassette = Cassette("litellm/TestTokenCounts.test_openai.yaml")
    response = litellm.completion(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Hello!"}],
        temperature=0.7,
        client=openai_client(cassette),
    )
    assert response.choices[0].message.content == "Hello! How can I assist you today?"
    attributes = telemetry.only_span().attributes
    assert attributes["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    assert attributes["gen_ai.usage.input_tokens"] == 9
    assert attributes["gen_ai.usage.output_tokens"] == 9
    # 9 x 0.15 + 9 x 0.6 = 6.75 microdollars.
    assert attributes["gen_ai.usage.cost.amount"] == 6.75e-06
    assert cassette.exhausted


def test_instrument_does_not_import_litellm() -> None:
    # A fresh interpreter: importing LiteLLM takes seconds, which an application that has it installed
    # but does not use it must not pay at instrument().
    probe = (
        "import sys\n"
        "from opentelemetry_instrumentation_tokenbudget import TokenBudgetInstrumentor\n"
        "TokenBudgetInstrumentor().instrument()\n"
        "print('litellm' in sys.modules)\n"
        "import litellm\n"
        "print(hasattr(litellm.completion, '__wrapped__'))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    # Not imported by us; wrapped (by wrapt) once the application imports it.
    assert result.stdout.splitlines() == ["False", "True"]
