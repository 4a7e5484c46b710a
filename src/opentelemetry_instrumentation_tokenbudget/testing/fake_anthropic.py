"""The fake Anthropic Messages API: ``POST /v1/messages`` (also as ``?beta=true``) and
``POST /v1/messages/count_tokens``.

Usage follows the real API's split: ``input_tokens`` counts only what was neither written to nor read
from the prompt cache. The prompt is read in the API's order (tools, system, messages); everything up
to the last block that carries ``cache_control`` is the cacheable prefix. The first request with a
given prefix (and model) writes it (``cache_creation_input_tokens``), later ones read it
(``cache_read_input_tokens``).

A stream reports in ``message_start`` the input usage and a placeholder ``output_tokens`` of
:data:`PLACEHOLDER_OUTPUT_TOKENS`, then in ``message_delta`` the cumulative ``output_tokens``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx2

from .fake_http import Exchange, json_response, sse_event, sse_response
from .fake_tokens import (
    MESSAGE_OVERHEAD_TOKENS,
    Reply,
    canned_reply,
    compact_json,
    count_tokens,
    generate_reply,
    text_parts,
)

REQUEST_ID_HEADER = "request-id"
PLACEHOLDER_OUTPUT_TOKENS = 1
_PATHS = ("/v1/messages", "/v1/messages/count_tokens")

Json = dict[str, Any]


def handle(exchange: Exchange) -> httpx2.Response:
    """Answer one request to the Anthropic API."""
    if exchange.request.method != "POST" or exchange.path not in _PATHS:
        return error(exchange, 404, "not_found_error", "Not Found")
    missing = [field for field in _required(exchange.path) if field not in exchange.body]
    if missing:
        return error(exchange, 400, "invalid_request_error", f"{missing[0]}: Field required")
    if exchange.path.endswith("/count_tokens"):
        payload = {"input_tokens": anthropic_input(exchange.body).total}
        return json_response(exchange, 200, payload, request_id_header=REQUEST_ID_HEADER)
    return _messages(exchange)


def error(
    exchange: Exchange, status: int, kind: str, message: str, *, headers: dict[str, str] | None = None
) -> httpx2.Response:
    """An error in Anthropic's shape, which the SDK raises as its matching ``APIStatusError``."""
    payload = {
        "type": "error",
        "error": {"type": kind, "message": message},
        "request_id": exchange.make_id("req_", 32),
    }
    return json_response(exchange, status, payload, request_id_header=REQUEST_ID_HEADER, headers=headers)


def _required(path: str) -> tuple[str, ...]:
    return ("model", "messages") if path.endswith("/count_tokens") else ("model", "max_tokens", "messages")


# --- input accounting ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Piece:
    """A run of prompt tokens; ``cache_ttl`` is set when a cache breakpoint closes it."""

    text: str
    tokens: int
    cache_ttl: str | None = None


@dataclass(frozen=True)
class AnthropicInput:
    """A request's input tokens: all of them, and those of its cacheable prefix (0 without breakpoint)."""

    total: int
    cacheable: int
    cache_key: str | None = None
    cache_ttl: str = "5m"


def anthropic_input(body: Json) -> AnthropicInput:
    """Input tokens of a Messages request, before the prompt cache splits them."""
    pieces = _pieces(body)
    total = sum(piece.tokens for piece in pieces)
    ends = [index for index, piece in enumerate(pieces) if piece.cache_ttl is not None]
    if not ends:
        return AnthropicInput(total=total, cacheable=0)
    prefix = pieces[: ends[-1] + 1]
    key_text = "\x1f".join([str(body.get("model")), *(piece.text for piece in prefix)])
    return AnthropicInput(
        total=total,
        cacheable=sum(piece.tokens for piece in prefix),
        cache_key=hashlib.sha256(key_text.encode()).hexdigest(),
        cache_ttl=pieces[ends[-1]].cache_ttl or "5m",
    )


def _pieces(body: Json) -> list[_Piece]:
    pieces: list[_Piece] = []
    for tool in body.get("tools") or []:
        pieces += _message_pieces("tool", [tool], as_json=True)
    if "system" in body:
        pieces += _message_pieces("system", _blocks(body["system"]))
    for message in body.get("messages") or []:
        if isinstance(message, dict):
            pieces += _message_pieces(str(message.get("role")), _blocks(message.get("content")))
    return pieces


def _blocks(content: object) -> list[object]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return list(content) if isinstance(content, list) else []


def _message_pieces(role: str, blocks: Sequence[object], *, as_json: bool = False) -> list[_Piece]:
    """One message: its framing, then one piece per content block (a tool is one JSON block)."""
    pieces = [_Piece(text=f"<{role}>", tokens=MESSAGE_OVERHEAD_TOKENS)]
    for block in blocks:
        fields = block if isinstance(block, dict) else {}
        control = fields.get("cache_control")
        if as_json:
            texts = [compact_json({name: value for name, value in fields.items() if name != "cache_control"})]
        else:
            texts = text_parts([block])
        ttl = str(control.get("ttl", "5m")) if isinstance(control, dict) else None
        pieces.append(_Piece(text="".join(texts), tokens=sum(count_tokens(t) for t in texts), cache_ttl=ttl))
    return pieces


# --- POST /v1/messages ---------------------------------------------------------------------------------


def _messages(exchange: Exchange) -> httpx2.Response:
    body = exchange.body
    limit = body["max_tokens"] if isinstance(body["max_tokens"], int) else None
    full = exchange.reply if exchange.reply is not None else canned_reply(_last_user_text(body))
    reply = generate_reply(full, limit)
    usage = _input_usage(exchange, anthropic_input(body))
    if body.get("stream"):
        return _stream(exchange, reply, usage)
    message = _message(exchange, [{"type": "text", "text": reply.text}], _stop_reason(reply))
    payload = {**message, "usage": {**usage, "output_tokens": reply.output_tokens}}
    delay = exchange.delay_s * (reply.visible_tokens + 1)
    return json_response(exchange, 200, payload, request_id_header=REQUEST_ID_HEADER, delay_s=delay)


def _last_user_text(body: Json) -> str:
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            return " ".join(text_parts(message.get("content")))
    return ""


def _input_usage(exchange: Exchange, counted: AnthropicInput) -> Json:
    written = read = 0
    if counted.cache_key is not None:
        if exchange.seen_before("anthropic:" + counted.cache_key):
            read = counted.cacheable
        else:
            written = counted.cacheable
    long_lived = counted.cache_ttl == "1h"
    return {
        "input_tokens": counted.total - written - read,
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": read,
        "cache_creation": {
            "ephemeral_5m_input_tokens": 0 if long_lived else written,
            "ephemeral_1h_input_tokens": written if long_lived else 0,
        },
        "service_tier": "standard",
    }


def _stop_reason(reply: Reply) -> str:
    return "max_tokens" if reply.truncated else "end_turn"


def _message(exchange: Exchange, content: list[Json], stop_reason: str | None) -> Json:
    return {
        "id": exchange.make_id("msg_01", 22),
        "type": "message",
        "role": "assistant",
        "model": exchange.model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
    }


def _stream(exchange: Exchange, reply: Reply, usage: Json) -> httpx2.Response:
    start = {**_message(exchange, [], None), "usage": {**usage, "output_tokens": PLACEHOLDER_OUTPUT_TOKENS}}
    events = [
        sse_event({"type": "message_start", "message": start}, "message_start"),
        sse_event(
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            "content_block_start",
        ),
        sse_event({"type": "ping"}, "ping"),
    ]
    first_content = len(events)
    for delta in reply.deltas():
        text_delta = {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": delta},
        }
        events.append(sse_event(text_delta, "content_block_delta"))
    final = {
        "type": "message_delta",
        "delta": {"stop_reason": _stop_reason(reply), "stop_sequence": None},
        "usage": {"output_tokens": reply.output_tokens},
    }
    events += [
        sse_event({"type": "content_block_stop", "index": 0}, "content_block_stop"),
        sse_event(final, "message_delta"),
        sse_event({"type": "message_stop"}, "message_stop"),
    ]
    return sse_response(exchange, events, first_content=first_content, request_id_header=REQUEST_ID_HEADER)
