"""Usage beyond text tokens, read from real SDK responses and priced at its own rates: audio tokens
and web searches, recorded on the span too."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx2
import openai

from tests.conftest import Telemetry


def transport(body: dict[str, Any]) -> httpx2.Client:
    return httpx2.Client(transport=httpx2.MockTransport(lambda request: httpx2.Response(200, json=body)))


def chat_with_audio(model: str, audio_in: int, audio_out: int) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_760_000_000,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": 1000,
            "completion_tokens": 100,
            "total_tokens": 1100,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": audio_in},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": audio_out},
        },
    }


def ask_chat(base_url: str, body: dict[str, Any]) -> None:
    client = openai.OpenAI(api_key="k", base_url=base_url, http_client=transport(body), max_retries=0)
    client.chat.completions.create(model=body["model"], messages=[{"role": "user", "content": "hi"}])


def test_audio_tokens_are_priced_as_audio(instrumented: Any, telemetry: Telemetry) -> None:
    # gpt-audio, all of it audio: 1000 x 32 + 100 x 64 = 38,400 microdollars (as text: 3,500).
    ask_chat("https://api.openai.com/v1", chat_with_audio("gpt-audio", 1000, 100))

    attributes = telemetry.only_span().attributes
    assert attributes["gen_ai.usage.cost.amount"] == 0.0384
    assert attributes["gen_ai.usage.audio.input_tokens"] == 1000
    assert attributes["gen_ai.usage.audio.output_tokens"] == 100
    assert attributes["gen_ai.usage.input_tokens"] == 1000


def test_part_audio_prompt_through_geminis_openai_endpoint(instrumented: Any, telemetry: Telemetry) -> None:
    # gemini-2.5-flash: 400 text x 0.3 + 600 audio x 1 + 100 x 2.5 = 970 microdollars.
    ask_chat(
        "https://generativelanguage.googleapis.com/v1beta/openai/",
        chat_with_audio("gemini-2.5-flash", 600, 0),
    )

    attributes = telemetry.only_span().attributes
    assert attributes["gen_ai.usage.cost.amount"] == 0.00097
    assert "gen_ai.usage.audio.output_tokens" not in attributes


def test_openai_web_searches_are_charged_per_search(instrumented: Any, telemetry: Telemetry) -> None:
    search = {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {"type": "search"}}
    body = {
        "id": "resp_1",
        "object": "response",
        "created_at": 1_760_000_000,
        "model": "gpt-4o-mini",
        "status": "completed",
        "output": [search, {**search, "id": "ws_2"}],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": 1000,
            "output_tokens": 200,
            "total_tokens": 1200,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
        },
    }
    client = openai.OpenAI(api_key="k", http_client=transport(body), max_retries=0)
    client.responses.create(model="gpt-4o-mini", input="hi", tools=[{"type": "web_search"}])

    attributes = telemetry.only_span().attributes
    # 1000 x 0.15 + 200 x 0.6 = 270 microdollars of tokens, plus two searches at $10 per thousand.
    assert attributes["gen_ai.usage.cost.amount"] == 0.02027
    assert attributes["tokenbudget.usage.web_searches"] == 2


def test_anthropic_web_searches_are_charged_per_search(instrumented: Any, telemetry: Telemetry) -> None:
    body = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5",
        "content": [{"type": "text", "text": "ok"}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 1000, "output_tokens": 200, "server_tool_use": {"web_search_requests": 2}},
    }
    client = anthropic.Anthropic(api_key="k", http_client=transport(body), max_retries=0)
    client.messages.create(
        model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
    )

    attributes = telemetry.only_span().attributes
    # 1000 x 1 + 200 x 5 = 2,000 microdollars of tokens, plus two searches at $10 per thousand.
    assert attributes["gen_ai.usage.cost.amount"] == 0.022
    assert attributes["tokenbudget.usage.web_searches"] == 2
