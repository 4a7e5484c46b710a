"""Crafted provider answers, for the real SDKs over `httpx2.MockTransport`: what a broken or hostile
server may send (counts that are no counts, usage blocks of the wrong shape, event streams cut short).

`Server` answers as the provider would, including the one thing that depends on the request: an
OpenAI-style stream carries its usage only when the request asked for it (``stream_options``), so a
caller who did not ask sees the stream the server would have sent it, with or without us.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anthropic
import httpx2
import openai

Answer = Callable[[Mapping[str, Any]], httpx2.Response]

EVENT_STREAM = {"content-type": "text/event-stream"}
OMITTED: Any = object()
"""A key left out of a body."""


@dataclass
class Server:
    """Answers each request with `answer(request body)`; keeps the bodies it was sent."""

    answer: Answer = field(default=lambda request: httpx2.Response(500, json={"error": "unset"}))
    requests: list[dict[str, Any]] = field(default_factory=list)

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content) if request.content else {}
        self.requests.append(body)
        return self.answer(body)

    async def handle_async(self, request: httpx2.Request) -> httpx2.Response:
        await request.aread()
        return self.handle(request)


def openai_client(server: Server, is_async: bool = False) -> Any:
    if is_async:
        transport = httpx2.AsyncClient(transport=httpx2.MockTransport(server.handle_async))
        return openai.AsyncOpenAI(
            api_key="k", base_url="https://api.openai.com/v1", http_client=transport, max_retries=0
        )
    http = httpx2.Client(transport=httpx2.MockTransport(server.handle))
    return openai.OpenAI(api_key="k", base_url="https://api.openai.com/v1", http_client=http, max_retries=0)


def anthropic_client(server: Server, is_async: bool = False) -> Any:
    if is_async:
        transport = httpx2.AsyncClient(transport=httpx2.MockTransport(server.handle_async))
        return anthropic.AsyncAnthropic(
            api_key="k", base_url="https://api.anthropic.com", http_client=transport, max_retries=0
        )
    http = httpx2.Client(transport=httpx2.MockTransport(server.handle))
    return anthropic.Anthropic(
        api_key="k", base_url="https://api.anthropic.com", http_client=http, max_retries=0
    )


def json_answer(status: int, body: object) -> httpx2.Response:
    return httpx2.Response(status, json=body)


def event_stream(events: Sequence[tuple[str | None, object]]) -> httpx2.Response:
    """An SSE body: (event name or None, data) each; data that is a str is sent as it is."""
    lines = []
    for name, data in events:
        text = data if isinstance(data, str) else json.dumps(data)
        lines.append((f"event: {name}\n" if name else "") + f"data: {text}\n\n")
    return httpx2.Response(200, headers=EVENT_STREAM, content="".join(lines).encode())


def usage_asked(request: Mapping[str, Any]) -> bool:
    options = request.get("stream_options")
    return isinstance(options, Mapping) and options.get("include_usage") is True


# ---- OpenAI chat completions and legacy completions --------------------------------------------


def chat_completion(usage: object, model: object = "gpt-4o-mini") -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_760_000_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "ok"},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": usage,
    }


def chat_chunk(model: object, choices: object, **extra: object) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1_760_000_000,
        "model": model,
        "choices": choices,
        **extra,
    }


def chat_stream(
    request: Mapping[str, Any],
    usage: object,
    *,
    model: object = "gpt-4o-mini",
    texts: Sequence[str] = ("Hel", "lo"),
    usage_with_content: bool = False,
    usage_choices: object = OMITTED,
    before: Sequence[dict[str, Any]] = (),
) -> httpx2.Response:
    """A chat stream as OpenAI sends it: content chunks, a last chunk with the finish reason, then (if
    the request asked) a chunk with `usage` and `usage_choices` (OpenAI sends ``[]``; `OMITTED`: no such
    key); `before`: chunks the server sends first. `usage_with_content`: the usage rides on the last
    content chunk instead, as some servers send it."""
    chunks: list[dict[str, Any]] = [*before]
    chunks += [
        chat_chunk(model, [{"index": 0, "delta": {"content": text}, "finish_reason": None}]) for text in texts
    ]
    last = chat_chunk(model, [{"index": 0, "delta": {}, "finish_reason": "stop"}])
    asked = usage_asked(request)
    if asked and usage_with_content:
        last["usage"] = usage
    chunks.append(last)
    if asked and not usage_with_content:
        usage_chunk = chat_chunk(model, usage_choices, usage=usage)
        if usage_choices is OMITTED:
            del usage_chunk["choices"]
        chunks.append(usage_chunk)
    return event_stream([(None, chunk) for chunk in chunks] + [(None, "[DONE]")])


def text_completion(usage: object, model: object = "gpt-3.5-turbo-instruct") -> dict[str, Any]:
    return {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 1_760_000_000,
        "model": model,
        "choices": [{"index": 0, "text": "ok", "finish_reason": "stop", "logprobs": None}],
        "usage": usage,
    }


def completion_stream(
    request: Mapping[str, Any], usage: object, model: object = "gpt-3.5-turbo-instruct"
) -> httpx2.Response:
    def chunk(choices: object, **extra: object) -> dict[str, Any]:
        return {
            "id": "cmpl-1",
            "object": "text_completion",
            "created": 1,
            "model": model,
            "choices": choices,
            **extra,
        }

    chunks = [
        chunk([{"index": 0, "text": "Hel", "finish_reason": None, "logprobs": None}]),
        chunk([{"index": 0, "text": "lo", "finish_reason": "stop", "logprobs": None}]),
    ]
    if usage_asked(request):
        chunks.append(chunk([], usage=usage))
    return event_stream([(None, c) for c in chunks] + [(None, "[DONE]")])


def embedding(usage: object, model: object = "text-embedding-3-small") -> dict[str, Any]:
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.25, -0.5]}],
        "model": model,
        "usage": usage,
    }


# ---- OpenAI Responses ---------------------------------------------------------------------------


def response_object(
    usage: object, model: object = "gpt-4o-mini", status: str = "completed"
) -> dict[str, Any]:
    return {
        "id": "resp_1",
        "object": "response",
        "created_at": 1_760_000_000,
        "model": model,
        "status": status,
        "output": [
            {
                "type": "message",
                "id": "msg_1",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": "ok", "annotations": []}],
            }
        ],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": usage,
    }


def responses_stream(usage: object, model: object = "gpt-4o-mini", *, final: bool = True) -> httpx2.Response:
    created = response_object(None, model, status="in_progress")
    events: list[tuple[str | None, object]] = [
        ("response.created", {"type": "response.created", "sequence_number": 0, "response": created}),
        (
            "response.output_text.delta",
            {
                "type": "response.output_text.delta",
                "sequence_number": 1,
                "item_id": "msg_1",
                "output_index": 0,
                "content_index": 0,
                "delta": "ok",
            },
        ),
    ]
    if final:
        events.append(
            (
                "response.completed",
                {
                    "type": "response.completed",
                    "sequence_number": 2,
                    "response": response_object(usage, model),
                },
            )
        )
    return event_stream(events)


# ---- Anthropic messages -------------------------------------------------------------------------


def message(usage: object, model: object = "claude-haiku-4-5") -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": "ok"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": usage,
    }


def message_events(
    start_usage: object,
    delta_usage: object,
    *,
    model: object = "claude-haiku-4-5",
    texts: Sequence[str] = ("Hel", "lo"),
    cut_after: int | None = None,
) -> list[tuple[str | None, object]]:
    """A message stream's events; `cut_after`: the server stops after that many (no message_stop)."""
    start = {**message(start_usage, model), "content": [], "stop_reason": None}
    events: list[tuple[str | None, object]] = [
        ("message_start", {"type": "message_start", "message": start}),
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
    ]
    events += [
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}},
        )
        for text in texts
    ]
    events += [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": delta_usage,
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return events if cut_after is None else events[:cut_after]
