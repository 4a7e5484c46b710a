"""Frameworks as users run them, against the bundled fake provider over loopback HTTP: one span per
model call with exact tokens and USD, the framework's own output and stream chunks unchanged, a hard
budget stopping an agent's loop before the request that would pass it, and `cost_attributes(...)`
reaching the calls made inside the framework's asyncio tasks.

Each framework is an optional test dependency: its tests skip, saying so, where it is not installed.
LiteLLM's own matrix is in test_litellm.py. The fake's counts: one user message QUESTION is 15 tokens
in, the reply 12 out; gpt-4o-mini costs 0.15 / 0.6 USD per million, so 9.45 microdollars a call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from opentelemetry_instrumentation_tokenbudget import Budget, cost_attributes
from opentelemetry_instrumentation_tokenbudget.testing import FakeProviderServer
from tests.conftest import Telemetry

QUESTION = "In two sentences, why do token budgets matter?"
MODEL = "gpt-4o-mini"
CALL_USD = 9.45e-06


@pytest.fixture(scope="module")
def server() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as running:
        yield running


@pytest.fixture
def instrumented(instrument: Any, server: FakeProviderServer) -> Any:
    # The fake stands for OpenAI: a bare loopback address would be priced as a local model server.
    return instrument(base_url_providers={server.base_url_openai: "openai"})


def _assert_one_call_per_span(telemetry: Telemetry, calls: int) -> None:
    spans = telemetry.our_spans()
    assert [span.name for span in spans] == [f"chat {MODEL}"] * calls
    for span in spans:
        assert span.attributes is not None
        assert span.attributes["gen_ai.usage.input_tokens"] == 15
        assert span.attributes["gen_ai.usage.output_tokens"] == 12
        assert span.attributes["gen_ai.usage.cost.amount"] == CALL_USD


def _chat_openai(server: FakeProviderServer) -> Any:
    langchain_openai = pytest.importorskip("langchain_openai", reason="langchain-openai is not installed")
    return langchain_openai.ChatOpenAI(model=MODEL, base_url=server.base_url_openai, api_key="test")


def test_langchain_openai(instrument: Any, telemetry: Telemetry, server: FakeProviderServer) -> None:
    bare_reply = _chat_openai(server).invoke(QUESTION)
    bare_chunks = [chunk.content for chunk in _chat_openai(server).stream(QUESTION)]
    instrument(base_url_providers={server.base_url_openai: "openai"})

    reply = _chat_openai(server).invoke(QUESTION)
    chunks = [chunk.content for chunk in _chat_openai(server).stream(QUESTION)]

    _assert_one_call_per_span(telemetry, 2)
    assert reply.content == bare_reply.content
    assert reply.usage_metadata == bare_reply.usage_metadata
    assert chunks == bare_chunks


def test_langchain_openai_async_attribution(
    instrumented: Any, telemetry: Telemetry, server: FakeProviderServer
) -> None:
    model = _chat_openai(server)

    async def run() -> None:
        # Two calls in two tasks of the caller's own: each inherits the attribution of its start.
        await asyncio.gather(model.ainvoke(QUESTION), model.ainvoke(QUESTION))

    with cost_attributes(project="acme", feature="langchain"):
        asyncio.run(run())
    _assert_one_call_per_span(telemetry, 2)
    assert {span.attributes["tokenbudget.feature"] for span in telemetry.our_spans() if span.attributes} == {
        "langchain"
    }


def test_langchain_anthropic_is_covered_where_installed() -> None:
    pytest.importorskip("langchain_anthropic", reason="langchain-anthropic is not installed")


def _pydantic_ai_agent(server: FakeProviderServer, **agent_options: Any) -> Any:
    pydantic_ai = pytest.importorskip("pydantic_ai", reason="pydantic-ai is not installed")
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    model = OpenAIChatModel(MODEL, provider=OpenAIProvider(base_url=server.base_url_openai, api_key="test"))
    return pydantic_ai.Agent(model, **agent_options)


def test_pydantic_ai(instrument: Any, telemetry: Telemetry, server: FakeProviderServer) -> None:
    bare = _pydantic_ai_agent(server).run_sync(QUESTION)
    instrument(base_url_providers={server.base_url_openai: "openai"})

    with cost_attributes(project="acme", feature="agent"):
        result = _pydantic_ai_agent(server).run_sync(QUESTION)

    _assert_one_call_per_span(telemetry, 1)
    assert result.output == bare.output
    assert result.usage().input_tokens == bare.usage().input_tokens == 15
    # run_sync runs the agent in an event loop of its own: the attribution reached it.
    assert telemetry.only_span().attributes["tokenbudget.feature"] == "agent"  # type: ignore[index]


def test_pydantic_ai_stream(instrumented: Any, telemetry: Telemetry, server: FakeProviderServer) -> None:
    agent = _pydantic_ai_agent(server)

    async def run() -> list[str]:
        async with agent.run_stream(QUESTION) as result:
            return [text async for text in result.stream_text(delta=True)]

    texts = asyncio.run(run())
    assert "".join(texts).startswith("This is a fake reply")
    _assert_one_call_per_span(telemetry, 1)


def test_a_hard_budget_stops_a_pydantic_ai_agent_loop(
    instrument: Any, telemetry: Telemetry, server: FakeProviderServer
) -> None:
    pydantic_ai = pytest.importorskip("pydantic_ai", reason="pydantic-ai is not installed")
    from opentelemetry_instrumentation_tokenbudget import budget_refusal

    # An agent that is never satisfied: its output validator asks the model again and again, each time
    # a model request of its own, as a tool loop does.
    agent = _pydantic_ai_agent(server, retries=10)

    @agent.output_validator
    def never_good_enough(output: str) -> str:
        raise pydantic_ai.ModelRetry("again")

    server.provider.reset()
    instrument(budgets=[Budget("agent", "0.0001")], base_url_providers={server.base_url_openai: "openai"})
    with pytest.raises(Exception) as raised:  # noqa: PT011  # whatever the framework makes of it
        agent.run_sync(QUESTION, model_settings={"max_tokens": 20})

    refusal = budget_refusal(raised.value)
    assert refusal is not None
    assert refusal.budget == "agent"
    # Each retry sends the conversation so far (15, 158, 224 tokens in; 12 out): 9.45 + 30.9 + 40.8 =
    # 81.15 microdollars spent; the fourth request's estimate (51.9) would pass 100, so it was never sent.
    assert refusal.spent_usd == Decimal("0.00008115")
    assert len(server.provider.requests) == 3
    spans = telemetry.our_spans()
    assert [span.attributes["gen_ai.usage.input_tokens"] for span in spans if span.attributes] == [
        15,
        158,
        224,
    ]
    assert sum(
        span.attributes["gen_ai.usage.cost.amount"] for span in spans if span.attributes
    ) == pytest.approx(8.115e-05, abs=1e-12)


def _openai_agents(server: FakeProviderServer) -> tuple[Any, Any]:
    agents = pytest.importorskip("agents", reason="openai-agents is not installed")
    import openai

    agents.set_tracing_disabled(True)  # its own traces would be exported to OpenAI
    client = openai.AsyncOpenAI(base_url=server.base_url_openai, api_key="test")
    model = agents.OpenAIChatCompletionsModel(model=MODEL, openai_client=client)
    return agents, agents.Agent(name="assistant", model=model)


def test_openai_agents(instrument: Any, telemetry: Telemetry, server: FakeProviderServer) -> None:
    agents, agent = _openai_agents(server)
    bare = agents.Runner.run_sync(agent, QUESTION)
    instrument(base_url_providers={server.base_url_openai: "openai"})

    with cost_attributes(project="acme", feature="agents-sdk"):
        result = agents.Runner.run_sync(agent, QUESTION)

    _assert_one_call_per_span(telemetry, 1)
    assert result.final_output == bare.final_output
    assert telemetry.only_span().attributes["tokenbudget.feature"] == "agents-sdk"  # type: ignore[index]
