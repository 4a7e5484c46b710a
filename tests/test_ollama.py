"""Ollama calls through the real `ollama` SDK, replayed from real recorded exchanges: exact tokens, and
the price of where the server is (a local Ollama is free unless the user priced its models; a remote
host is not free unless the user names it a local server).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

ollama = pytest.importorskip("ollama")

# The SDK brings httpx (ours is httpx2): an environment without the SDK may lack it.
import httpx  # noqa: E402

from opentelemetry_instrumentation_tokenbudget import Budget, BudgetExceededError  # noqa: E402
from opentelemetry_instrumentation_tokenbudget.testing import FakeProviderServer, prompt_tokens  # noqa: E402
from tests.conftest import Telemetry  # noqa: E402
from tests.recorded import Cassette  # noqa: E402

LOCAL = "http://127.0.0.1:11434"
JOKE = "Tell me a joke about OpenTelemetry"
# The user's own rate for llama3 (USD per million tokens), as `prices` takes it.
LLAMA3_RATE = {"llama3": {"input_mtok": 0.1, "output_mtok": 0.2}}


def ollama_client(handle: Callable[[Any], Any], host: str = LOCAL) -> Any:
    return ollama.Client(host=host, transport=httpx.MockTransport(handle))


def async_ollama_client(handle: Callable[[Any], Any], host: str = LOCAL) -> Any:
    return ollama.AsyncClient(host=host, transport=httpx.MockTransport(handle))


def tokens(attributes: Any) -> tuple[int, int]:
    return attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]


def assert_local_and_free(attributes: Any) -> None:
    assert attributes["gen_ai.provider.name"] == "ollama"
    assert attributes["server.address"] == "127.0.0.1"
    assert attributes["server.port"] == 11434
    assert attributes["gen_ai.usage.cost.amount"] == 0.0
    assert attributes["tokenbudget.price.source"] == "local_model"


def call(is_async: bool, cassette: Cassette, method: str, stream: bool, **kwargs: Any) -> list[Any]:
    """Calls `method` on a client answered from `cassette`; the response, or every streamed part."""
    if not is_async:
        result = getattr(ollama_client(cassette.handle), method)(stream=stream, **kwargs)
        return list(result) if stream else [result]

    async def run() -> list[Any]:
        result = await getattr(async_ollama_client(cassette.handle_async), method)(stream=stream, **kwargs)
        return [part async for part in result] if stream else [result]

    return asyncio.run(run())


@dataclass(frozen=True)
class Cell:
    method: str
    cassette: str
    stream: bool
    input_tokens: int
    output_tokens: int

    def __str__(self) -> str:
        return self.method + ("-stream" if self.stream else "")


CELLS = [
    Cell("chat", "test_ollama_chat_legacy.yaml", False, 17, 66),
    Cell("chat", "test_ollama_streaming_chat_legacy.yaml", True, 17, 50),
    Cell("generate", "test_ollama_generation_legacy.yaml", False, 17, 63),
    Cell("generate", "test_ollama_streaming_generation_legacy.yaml", True, 17, 71),
]


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("cell", CELLS, ids=str)
def test_local_calls_are_counted_exactly_and_free(
    instrumented: Any, telemetry: Telemetry, is_async: bool, cell: Cell
) -> None:
    cassette = Cassette(f"ollama/{cell.cassette}")
    chat = cell.method == "chat"
    prompt = {"messages": [{"role": "user", "content": JOKE}]} if chat else {"prompt": JOKE}

    parts = call(is_async, cassette, cell.method, cell.stream, model="llama3", **prompt)

    assert parts[-1].done is True  # every part reached the caller, the final one included
    span = telemetry.only_span()
    assert span.name == ("chat llama3" if chat else "text_completion llama3")
    attributes = span.attributes
    assert tokens(attributes) == (cell.input_tokens, cell.output_tokens)
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert_local_and_free(attributes)
    assert "tokenbudget.cost.estimated" not in attributes
    assert cassette.exhausted


def test_module_functions_are_counted(
    instrumented: Any, telemetry: Telemetry, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `ollama.chat` is a method of a client made when ollama was imported, before any instrument().
    cassette = Cassette("ollama/test_chat_with_tool_call.yaml")
    transport = httpx.MockTransport(cassette.handle)
    monkeypatch.setattr(ollama._client, "_client", httpx.Client(base_url=LOCAL, transport=transport))
    body = json.loads(cassette.recorded_requests[0]["body"])

    response = ollama.chat(model="qwen3.6:latest", messages=body["messages"], tools=body["tools"])

    assert response.message.tool_calls[0].function.name == "get_current_weather"
    attributes = telemetry.only_span().attributes
    assert tokens(attributes) == (292, 143)  # the thinking is inside eval_count
    assert_local_and_free(attributes)


# No /api/embed exchange was recorded: this body is written in the API's documented shape.
EMBEDDED = {
    "model": "all-minilm",
    "embeddings": [[0.1, -0.2]],
    "total_duration": 14143917,
    "prompt_eval_count": 8,
}


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_embed(instrumented: Any, telemetry: Telemetry, is_async: bool) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=EMBEDDED)

    if is_async:
        asyncio.run(async_ollama_client(answer).embed(model="all-minilm", input="Embed this sentence."))
    else:
        ollama_client(answer).embed(model="all-minilm", input="Embed this sentence.")

    span = telemetry.only_span()
    assert span.name == "embeddings all-minilm"
    assert tokens(span.attributes) == (8, 0)
    assert_local_and_free(span.attributes)


def test_other_calls_are_left_alone(instrumented: Any, telemetry: Telemetry) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"models": []})

    assert ollama_client(answer).list().models == []
    assert telemetry.our_spans() == []


def test_at_the_users_rate(instrument: Any, telemetry: Telemetry) -> None:
    instrument(prices=LLAMA3_RATE)
    cassette = Cassette("ollama/test_ollama_chat_legacy.yaml")

    ollama_client(cassette.handle).chat(model="llama3", messages=[{"role": "user", "content": JOKE}])

    attributes = telemetry.only_span().attributes
    # 17 x 0.1 + 66 x 0.2 = 1.7 + 13.2 = 14.9 microdollars
    assert attributes["gen_ai.usage.cost.amount"] == 1.49e-05
    assert attributes["tokenbudget.price.source"] == "user"


def test_a_remote_host_is_not_free(instrument: Any, telemetry: Telemetry) -> None:
    instrument()
    cassette = Cassette("ollama/test_ollama_chat_legacy.yaml")

    ollama_client(cassette.handle, host="http://gpu.example.com:11434").chat(
        model="llama3", messages=[{"role": "user", "content": JOKE}]
    )

    attributes = telemetry.only_span().attributes
    assert attributes["server.address"] == "gpu.example.com"
    assert "gen_ai.usage.cost.amount" not in attributes
    assert attributes["tokenbudget.cost.unpriced"] is True


def test_a_remote_host_named_a_local_server_is_free(instrument: Any, telemetry: Telemetry) -> None:
    instrument(local_servers=["http://gpu.example.com:11434"])
    cassette = Cassette("ollama/test_ollama_chat_legacy.yaml")

    ollama_client(cassette.handle, host="http://gpu.example.com:11434").chat(
        model="llama3", messages=[{"role": "user", "content": JOKE}]
    )

    attributes = telemetry.only_span().attributes
    assert attributes["gen_ai.usage.cost.amount"] == 0.0
    assert attributes["tokenbudget.price.source"] == "local_model"


def test_stream_closed_early_ends_its_call_estimated(instrumented: Any, telemetry: Telemetry) -> None:
    cassette = Cassette("ollama/test_ollama_streaming_chat_legacy.yaml")
    stream = ollama_client(cassette.handle).chat(
        model="llama3", messages=[{"role": "user", "content": JOKE}], stream=True
    )

    for _ in stream:
        break
    stream.close()

    attributes = telemetry.only_span().attributes
    assert attributes["tokenbudget.cost.estimated"] is True
    assert tokens(attributes) == (9, 1)  # ceil(34 / 4) in; "Why" out


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_exception_inside_a_stream_ends_its_call(
    instrumented: Any, telemetry: Telemetry, is_async: bool
) -> None:
    cassette = Cassette("ollama/test_ollama_streaming_generation_legacy.yaml")

    async def read_async() -> None:
        client = async_ollama_client(cassette.handle_async)
        async for _ in await client.generate(model="llama3", prompt=JOKE, stream=True):
            raise KeyError("the caller's own error")

    def read() -> None:
        if is_async:
            asyncio.run(read_async())
        for _ in ollama_client(cassette.handle).generate(model="llama3", prompt=JOKE, stream=True):
            raise KeyError("the caller's own error")

    with pytest.raises(KeyError):
        read()

    assert telemetry.only_span().attributes["tokenbudget.cost.estimated"] is True


def test_provider_error_passes_through_unchanged(instrumented: Any, telemetry: Telemetry) -> None:
    cassette = Cassette("ollama/test_chat_error_records_model_name.yaml")

    with pytest.raises(ollama.ResponseError) as raised:
        ollama_client(cassette.handle).chat(
            model="nonexistent-model:latest", messages=[{"role": "user", "content": "Why is the sky blue?"}]
        )

    assert raised.value.status_code == 404
    assert raised.value.error == "model 'nonexistent-model:latest' not found"
    assert telemetry.only_span().attributes["error.type"] == "ResponseError"


def test_hard_budget_refuses_before_the_request_leaves(instrument: Any, telemetry: Telemetry) -> None:
    # A free local model never passes a budget; one priced at the user's rate does.
    instrument(prices=LLAMA3_RATE, budgets=[Budget("gpu", limit_usd=Decimal("0.00001"), window="day")])
    cassette = Cassette("ollama/test_ollama_chat_legacy.yaml")
    client = ollama_client(cassette.handle)

    # ceil(34 / 4) = 9 in x 0.1 + 100 out x 0.2 = 20.9 microdollars reserved, past the 10.
    with pytest.raises(BudgetExceededError) as refused:
        client.chat(
            model="llama3", messages=[{"role": "user", "content": JOKE}], options={"num_predict": 100}
        )

    assert refused.value.estimate_usd == Decimal("0.0000209")
    assert cassette.requests == []


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_through_the_fake_provider_over_http(instrumented: Any, telemetry: Telemetry, stream: bool) -> None:
    question = "In two sentences, why do token budgets matter?"
    with FakeProviderServer() as server:
        client = ollama.Client(host=server.base_url.replace("127.0.0.1", "localhost"))
        parts = call_with(
            client, stream, model="llama3.1:8b", messages=[{"role": "user", "content": question}]
        )

    assert parts[-1].done is True
    text = "".join(part.message.content for part in parts)
    attributes = telemetry.only_span().attributes
    # The fake's counts: one message of 3 + ceil(47 / 4) = 15 tokens; one token per word shown.
    assert tokens(attributes) == (15, len(text.split()))
    assert tokens(attributes) == (prompt_tokens([question]), 12)
    assert attributes["gen_ai.provider.name"] == "ollama"
    assert attributes["gen_ai.usage.cost.amount"] == 0.0
    assert attributes["tokenbudget.price.source"] == "local_model"


def call_with(client: Any, stream: bool, **kwargs: Any) -> list[Any]:
    result = client.chat(stream=stream, **kwargs)
    return list(result) if stream else [result]
