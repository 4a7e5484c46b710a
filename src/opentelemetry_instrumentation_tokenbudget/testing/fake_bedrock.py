"""The fake Amazon Bedrock runtime API: ``POST /model/{modelId}/converse``, ``/converse-stream``,
``/invoke`` and ``/invoke-with-response-stream``.

Usage has the real API's shape: Converse's ``usage`` (``inputTokens``, ``outputTokens``,
``totalTokens``); ConverseStream's in its final ``metadata`` event; InvokeModel's in the
``X-Amzn-Bedrock-Input-Token-Count`` / ``-Output-Token-Count`` headers (the body is the model family's
own: Anthropic's messages shape for ``anthropic.*`` ids, a generic one otherwise);
InvokeModelWithResponseStream's in the last chunk's ``amazon-bedrock-invocationMetrics``. Streams are
real ``application/vnd.amazon.eventstream`` frames, which botocore parses as it does AWS's.
"""

from __future__ import annotations

import base64
import json
import struct
import zlib
from typing import Any

import httpx2

from .fake_http import Exchange, dump, json_response
from .fake_tokens import Reply, canned_reply, generate_reply, prompt_tokens, text_parts

_REQUEST_ID_HEADER = "x-amzn-requestid"
_EVENT_STREAM = "application/vnd.amazon.eventstream"
_STRING_HEADER = 7
_OPERATIONS = ("converse", "converse-stream", "invoke", "invoke-with-response-stream")
Json = dict[str, Any]


def is_bedrock_path(path: str) -> bool:
    return path.startswith("/model/") and path.rsplit("/", 1)[-1] in _OPERATIONS


def handle(exchange: Exchange) -> httpx2.Response:
    """Answer one request to the Bedrock runtime API."""
    _, _, model, operation = exchange.path.split("/", 3)
    body = exchange.body
    if operation.startswith("converse"):
        messages = [text_parts(message.get("content")) for message in body.get("messages") or []]
        messages += [text_parts(body["system"])] if body.get("system") else []
        limit = (body.get("inferenceConfig") or {}).get("maxTokens")
    else:
        messages = [text_parts(m.get("content")) for m in body.get("messages") or []] or [
            [str(body.get("inputText") or body.get("prompt") or "")]
        ]
        limit = body.get("max_tokens") or body.get("max_gen_len")
    last_user = next((" ".join(m) for m in reversed(messages) if m), "")
    reply = generate_reply(canned_reply(last_user), limit)
    prompt = prompt_tokens(messages)
    if operation == "converse":
        return json_response(exchange, 200, _converse(reply, prompt), request_id_header=_REQUEST_ID_HEADER)
    if operation == "converse-stream":
        return _event_stream(exchange, _converse_events(reply, prompt))
    if operation == "invoke":
        counts = {
            "x-amzn-bedrock-input-token-count": str(prompt),
            "x-amzn-bedrock-output-token-count": str(reply.output_tokens),
        }
        payload = _native(model, reply, prompt)
        return json_response(exchange, 200, payload, request_id_header=_REQUEST_ID_HEADER, headers=counts)
    return _event_stream(exchange, _invoke_events(model, reply, prompt))


def _converse(reply: Reply, prompt: int) -> Json:
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": reply.text}]}},
        "stopReason": "max_tokens" if reply.truncated else "end_turn",
        "usage": _usage(reply, prompt),
        "metrics": {"latencyMs": 42},
    }


def _usage(reply: Reply, prompt: int) -> Json:
    return {
        "inputTokens": prompt,
        "outputTokens": reply.output_tokens,
        "totalTokens": prompt + reply.output_tokens,
    }


def _converse_events(reply: Reply, prompt: int) -> list[tuple[str, Json]]:
    events: list[tuple[str, Json]] = [("messageStart", {"role": "assistant"})]
    events += [("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": d}}) for d in reply.deltas()]
    events.append(("contentBlockStop", {"contentBlockIndex": 0}))
    events.append(("messageStop", {"stopReason": "max_tokens" if reply.truncated else "end_turn"}))
    events.append(("metadata", {"usage": _usage(reply, prompt), "metrics": {"latencyMs": 42}}))
    return events


def _native(model: str, reply: Reply, prompt: int) -> Json:
    if model.split(".")[-2:-1] == ["anthropic"] or model.startswith("anthropic."):
        return {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "text", "text": reply.text}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": prompt, "output_tokens": reply.output_tokens},
        }
    return {
        "generation": reply.text,
        "prompt_token_count": prompt,
        "generation_token_count": reply.output_tokens,
    }


def _invoke_events(model: str, reply: Reply, prompt: int) -> list[tuple[str, Json]]:
    pieces: list[Json] = [{"type": "content_block_delta", "delta": {"text": d}} for d in reply.deltas()]
    pieces.append(
        {
            "type": "message_stop",
            "amazon-bedrock-invocationMetrics": {
                "inputTokenCount": prompt,
                "outputTokenCount": reply.output_tokens,
                "invocationLatency": 42,
                "firstByteLatency": 7,
            },
        }
    )
    return [("chunk", {"bytes": base64.b64encode(dump(piece)).decode()}) for piece in pieces]


def _event_stream(exchange: Exchange, events: list[tuple[str, Json]]) -> httpx2.Response:
    body = b"".join(_frame(event_type, payload) for event_type, payload in events)
    headers = {"content-type": _EVENT_STREAM, _REQUEST_ID_HEADER: exchange.make_id("", 32)}
    return httpx2.Response(200, headers=headers, content=body, request=exchange.request)


def _frame(event_type: str, payload: Json) -> bytes:
    """One event stream message: prelude (lengths and their CRC32), headers, payload, message CRC32."""
    headers = b"".join(
        _header(name, value)
        for name, value in (
            (":event-type", event_type),
            (":content-type", "application/json"),
            (":message-type", "event"),
        )
    )
    data = json.dumps(payload).encode()
    total = 12 + len(headers) + len(data) + 4
    prelude = struct.pack(">II", total, len(headers))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + headers + data
    return message + struct.pack(">I", zlib.crc32(message))


def _header(name: str, value: str) -> bytes:
    encoded_name, encoded_value = name.encode(), value.encode()
    return (
        struct.pack(">B", len(encoded_name))
        + encoded_name
        + struct.pack(">BH", _STRING_HEADER, len(encoded_value))
        + encoded_value
    )
