"""The fake Gemini API (and Vertex AI's, under ``/projects/...``): ``models/{model}:generateContent``,
``:streamGenerateContent?alt=sse`` and ``:batchEmbedContents`` / ``:embedContent``.

Usage has the real API's shape: ``promptTokenCount`` counts the prompt (each content is one message,
see :mod:`.fake_tokens`), ``candidatesTokenCount`` the words shown and, for ``gemini-2.5-*`` models,
``thoughtsTokenCount`` the hidden thinking tokens, outside ``candidatesTokenCount``. Gemini API
streams repeat the running totals in every chunk; Vertex AI streams send them in the last chunk only.
Embeddings carry no token counts on the Gemini API, as in the real one.
"""

from __future__ import annotations

from typing import Any

import httpx2

from .fake_http import Exchange, json_response, sse_event, sse_response
from .fake_tokens import canned_reply, generate_reply, prompt_tokens, text_parts

_REQUEST_ID_HEADER = "x-goog-request-id"
Json = dict[str, Any]


def is_gemini_path(path: str) -> bool:
    return "/models/" in path and ":" in path.rsplit("/", 1)[-1]


def handle(exchange: Exchange) -> httpx2.Response:
    """Answer one request to the Gemini (or Vertex AI) API."""
    model, _, method = exchange.path.rsplit("/", 1)[-1].partition(":")
    vertex = "/projects/" in exchange.path
    if method in ("batchEmbedContents", "embedContent"):
        requests = exchange.body.get("requests") or [exchange.body]
        payload: Json = {"embeddings": [{"values": [0.25, -0.5, 0.125]} for _ in requests]}
        return json_response(exchange, 200, payload, request_id_header=_REQUEST_ID_HEADER)
    if method not in ("generateContent", "streamGenerateContent"):
        return error(exchange, 404, "NOT_FOUND", f"Method {method!r} is not found.")
    if "contents" not in exchange.body:
        return error(exchange, 400, "INVALID_ARGUMENT", "contents is not specified")
    contents = exchange.body["contents"]
    messages = [_parts_text(content) for content in contents]
    system = exchange.body.get("systemInstruction")
    if system is not None:
        messages.append(_parts_text(system))
    limit = (exchange.body.get("generationConfig") or {}).get("maxOutputTokens")
    last_user = next((" ".join(m) for m in reversed(messages) if m), "")
    reply = generate_reply(canned_reply(last_user), limit, reasoning=model.startswith("gemini-2.5"))
    prompt = prompt_tokens(messages)
    response_id = exchange.make_id("", 22)
    if method == "generateContent":
        payload = _response(
            model, response_id, reply.text, "STOP", _usage(prompt, reply.visible_tokens, reply)
        )
        return json_response(exchange, 200, payload, request_id_header=_REQUEST_ID_HEADER)
    events = []
    deltas = reply.deltas()
    for index, delta in enumerate(deltas):
        last = index == len(deltas) - 1
        running = _usage(prompt, index + 1, reply)
        usage = running if (last or not vertex) else {"trafficType": "ON_DEMAND"}
        events.append(sse_event(_response(model, response_id, delta, "STOP" if last else None, usage)))
    return sse_response(exchange, events, first_content=0, request_id_header=_REQUEST_ID_HEADER)


def error(exchange: Exchange, status: int, kind: str, message: str) -> httpx2.Response:
    payload = {"error": {"code": status, "message": message, "status": kind}}
    return json_response(exchange, status, payload, request_id_header=_REQUEST_ID_HEADER)


def _parts_text(content: Any) -> list[str]:
    parts = content.get("parts") if isinstance(content, dict) else None
    return text_parts(parts or [])


def _usage(prompt: int, candidates: int, reply: Any) -> Json:
    usage: Json = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": candidates,
        "totalTokenCount": prompt + candidates + reply.reasoning_tokens,
    }
    if reply.reasoning_tokens:
        usage["thoughtsTokenCount"] = reply.reasoning_tokens
    return usage


def _response(model: str, response_id: str, text: str, finish: str | None, usage: Json) -> Json:
    candidate: Json = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
    if finish is not None:
        candidate["finishReason"] = finish
    return {
        "candidates": [candidate],
        "usageMetadata": usage,
        "modelVersion": model,
        "responseId": response_id,
    }
