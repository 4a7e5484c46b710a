"""The wrappers at every SDK generation users run: openai 1.x-3.x, anthropic 0.x-2.x.

Those generations keep their classes in different modules and speak HTTP through different client
libraries (httpx for openai < 3 and anthropic < 1, httpx2 after), so these tests reach the fake provider
over loopback HTTP, which every release can be pointed at with `base_url`. `./run floors` runs them at
the lowest declared version of each dependency and at one release of each major (see `run`); in the
main suite they run at the newest releases.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib import metadata
from typing import Any

import anthropic
import openai
import pytest

from opentelemetry_instrumentation_tokenbudget.testing import FakeProviderServer
from tests.conftest import Telemetry

PROMPT = "Say something about spending budgets for language model calls, in a few words."
HAIKU_SPAN = "chat claude-3-5-haiku-20241022"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as running:
        yield running


def _usage(span: Any) -> tuple[Any, ...]:
    attributes = span.attributes
    return (
        span.name,
        attributes["gen_ai.usage.input_tokens"],
        attributes["gen_ai.usage.output_tokens"],
        attributes["gen_ai.usage.cost.amount"],
    )


def test_the_sdks_under_test_are_named() -> None:
    # Shown with -v or on failure, so that a floors run says which releases it tried.
    versions = {name: metadata.version(name) for name in ("openai", "anthropic")}
    assert all(versions.values()), versions


def test_openai_chat(instrumented: Any, telemetry: Telemetry, server: FakeProviderServer) -> None:
    client = openai.OpenAI(api_key="test", base_url=server.base_url_openai, max_retries=0)
    response = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": PROMPT}], max_tokens=20
    )
    assert response.usage is not None
    assert _usage(telemetry.only_span()) == (
        "chat gpt-4o-mini",
        response.usage.prompt_tokens,
        response.usage.completion_tokens,
        OPENAI_CHAT_COST,
    )


def test_openai_chat_stream_gets_usage_it_did_not_ask_for(
    instrumented: Any, telemetry: Telemetry, server: FakeProviderServer
) -> None:
    client = openai.OpenAI(api_key="test", base_url=server.base_url_openai, max_retries=0)
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": PROMPT}], max_tokens=20, stream=True
        )
    )
    # The usage chunk we asked for is hidden: every chunk the caller sees has a choice.
    assert all(chunk.choices for chunk in chunks)
    assert _usage(telemetry.only_span()) == ("chat gpt-4o-mini", *OPENAI_CHAT_TOKENS, OPENAI_CHAT_COST)


async def test_openai_async_chat(instrumented: Any, telemetry: Telemetry, server: FakeProviderServer) -> None:
    client = openai.AsyncOpenAI(api_key="test", base_url=server.base_url_openai, max_retries=0)
    await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": PROMPT}], max_tokens=20
    )
    assert _usage(telemetry.only_span()) == ("chat gpt-4o-mini", *OPENAI_CHAT_TOKENS, OPENAI_CHAT_COST)


def test_anthropic_messages(instrumented: Any, telemetry: Telemetry, server: FakeProviderServer) -> None:
    client = anthropic.Anthropic(api_key="test", base_url=server.base_url_anthropic, max_retries=0)
    message = client.messages.create(
        model="claude-3-5-haiku-20241022", max_tokens=20, messages=[{"role": "user", "content": PROMPT}]
    )
    assert _usage(telemetry.only_span()) == (
        "chat claude-3-5-haiku-20241022",
        message.usage.input_tokens,
        message.usage.output_tokens,
        ANTHROPIC_COST,
    )


def test_anthropic_messages_stream_manager(
    instrumented: Any, telemetry: Telemetry, server: FakeProviderServer
) -> None:
    client = anthropic.Anthropic(api_key="test", base_url=server.base_url_anthropic, max_retries=0)
    with client.messages.stream(
        model="claude-3-5-haiku-20241022", max_tokens=20, messages=[{"role": "user", "content": PROMPT}]
    ) as stream:
        text = "".join(stream.text_stream)
    assert text
    assert _usage(telemetry.only_span()) == (
        "chat claude-3-5-haiku-20241022",
        *ANTHROPIC_TOKENS,
        ANTHROPIC_COST,
    )


async def test_anthropic_async_create_stream(
    instrumented: Any, telemetry: Telemetry, server: FakeProviderServer
) -> None:
    client = anthropic.AsyncAnthropic(api_key="test", base_url=server.base_url_anthropic, max_retries=0)
    stream = await client.messages.create(
        model="claude-3-5-haiku-20241022",
        max_tokens=20,
        messages=[{"role": "user", "content": PROMPT}],
        stream=True,
    )
    async for _event in stream:
        pass
    assert _usage(telemetry.only_span()) == (
        "chat claude-3-5-haiku-20241022",
        *ANTHROPIC_TOKENS,
        ANTHROPIC_COST,
    )


# The fake provider's counts for PROMPT and its reply (20 tokens asked, 12 given), priced at the
# published rates: gpt-4o-mini $0.15/$0.60 per million, claude-3-5-haiku $0.80/$4.00.
OPENAI_CHAT_TOKENS = (23, 12)
OPENAI_CHAT_COST = 1.065e-05
ANTHROPIC_TOKENS = (23, 12)
ANTHROPIC_COST = 6.64e-05
