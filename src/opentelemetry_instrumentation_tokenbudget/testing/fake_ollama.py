"""The fake Ollama API: ``/api/chat`` and ``/api/generate``, whole or streamed as NDJSON.

As the real server does, only the final object (``done: true``) carries the counts:
``prompt_eval_count`` (the prompt, each message counted as in :mod:`.fake_tokens`) and ``eval_count``
(the words shown), with ``done_reason`` and the durations in nanoseconds. A stream is one JSON object
per line, a piece of the reply each.
"""

from __future__ import annotations

from typing import Any

import httpx2

from .fake_http import NDJSON_CONTENT_TYPE, Exchange, PacedStream, dump, json_response
from .fake_tokens import canned_reply, generate_reply, prompt_tokens, text_parts

OLLAMA_PATHS = frozenset({"/api/chat", "/api/generate"})
_REQUEST_ID_HEADER = "x-request-id"
# The answer's time, as the server writes it; fixed so that the bodies are reproducible.
_CREATED_AT = "2025-10-09T08:53:20Z"
Json = dict[str, Any]


def handle(exchange: Exchange) -> httpx2.Response:
    """Answer one request to the Ollama API."""
    body = exchange.body
    chat = exchange.path == "/api/chat"
    if chat:
        messages = [text_parts(message.get("content")) for message in body.get("messages") or []]
    else:
        messages = [text_parts(text) for text in (body.get("system"), body.get("prompt")) if text]
    if not messages:
        return json_response(exchange, 400, {"error": "no prompt"}, request_id_header=_REQUEST_ID_HEADER)
    limit = (body.get("options") or {}).get("num_predict")
    reply = generate_reply(canned_reply(" ".join(messages[-1])), limit)
    prompt = prompt_tokens(messages)
    final = {
        "done": True,
        "done_reason": "length" if reply.truncated else "stop",
        "total_duration": 1_000_000 * (prompt + reply.visible_tokens),
        "prompt_eval_count": prompt,
        "eval_count": reply.visible_tokens,
    }
    if body.get("stream") is False:
        return json_response(
            exchange,
            200,
            {**_part(exchange.model, reply.text, chat), **final},
            request_id_header=_REQUEST_ID_HEADER,
        )
    lines = [dump({**_part(exchange.model, delta, chat), "done": False}) + b"\n" for delta in reply.deltas()]
    lines.append(dump({**_part(exchange.model, "", chat), **final}) + b"\n")
    headers = {"content-type": NDJSON_CONTENT_TYPE, _REQUEST_ID_HEADER: exchange.make_id("req_", 32)}
    return httpx2.Response(
        200, headers=headers, stream=PacedStream(lines, exchange.delay_s), request=exchange.request
    )


def _part(model: str, text: str, chat: bool) -> Json:
    if chat:
        return {"model": model, "created_at": _CREATED_AT, "message": {"role": "assistant", "content": text}}
    return {"model": model, "created_at": _CREATED_AT, "response": text}
