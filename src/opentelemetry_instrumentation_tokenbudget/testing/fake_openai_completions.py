"""Fake ``POST /v1/chat/completions`` and the legacy ``POST /v1/completions``.

Both stream the same way: one chunk per word and choice (``n`` choices take turns), then a chunk with
each choice's ``finish_reason``. Usage comes, as from the real API, only in a last chunk whose
``choices`` is empty, and only when ``stream_options.include_usage`` is set; every other chunk then
carries ``"usage": null``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import httpx2

from .fake_http import CREATED, Exchange, json_response, sse_event, sse_response
from .fake_openai_common import (
    REQUEST_ID_HEADER,
    Json,
    cached_tokens,
    finish_reason,
    int_field,
    last_user_text,
    pace,
    raw_prompts,
    raw_tokens,
    reply_for,
    tool_texts,
)
from .fake_tokens import Reply, prompt_tokens, text_parts

SYSTEM_FINGERPRINT = "fp_fake0000"
_ROLE_DELTA: Json = {"role": "assistant", "content": "", "refusal": None}
# The legacy endpoint stops at 16 tokens unless told otherwise.
LEGACY_DEFAULT_MAX_TOKENS = 16


def chat_prompt_tokens(body: Json) -> int:
    """Input tokens of a chat completion request: its messages, then one message per tool."""
    messages: list[str | list[str]] = [
        text_parts(message.get("content"))
        for message in body.get("messages") or []
        if isinstance(message, dict)
    ]
    return prompt_tokens(messages + tool_texts(body))


def chat_completions(exchange: Exchange) -> httpx2.Response:
    body = exchange.body
    prompt = chat_prompt_tokens(body)
    limit = int_field(body, "max_completion_tokens", "max_tokens")
    reply = reply_for(exchange, last_user_text(body.get("messages")), limit)
    choices = int_field(body, "n") or 1
    usage = _usage(prompt, cached_tokens(exchange, prompt), [reply] * choices)
    base = {"id": exchange.make_id("chatcmpl-", 29), "created": CREATED, "model": exchange.model}
    if body.get("stream"):
        stream_base = {**base, "object": "chat.completion.chunk", **_tier()}
        roles = [_choice(index, delta=_ROLE_DELTA) for index in range(choices)]
        texts = _interleave([_chat_text_chunks(index, reply) for index in range(choices)])
        return _chunk_stream(exchange, stream_base, roles, texts, usage)
    message: Json = {"role": "assistant", "content": reply.text, "refusal": None, "annotations": []}
    payload = {
        **base,
        "object": "chat.completion",
        "choices": [_choice(i, message=message, reason=finish_reason(reply)) for i in range(choices)],
        "usage": usage,
        **_tier(),
    }
    return json_response(
        exchange, 200, payload, request_id_header=REQUEST_ID_HEADER, delay_s=pace(exchange, reply)
    )


def legacy_completions(exchange: Exchange) -> httpx2.Response:
    body = exchange.body
    prompts = raw_prompts(body.get("prompt"))
    limit = int_field(body, "max_tokens")
    limit = LEGACY_DEFAULT_MAX_TOKENS if limit is None else limit
    per_prompt = int_field(body, "n") or 1
    replies = [
        reply_for(exchange, p if isinstance(p, str) else "", limit)
        for p in prompts
        for _ in range(per_prompt)
    ]
    usage = _usage(sum(raw_tokens(p) for p in prompts), 0, replies)
    # This endpoint reports the three totals only, without the details objects.
    usage = {name: usage[name] for name in ("prompt_tokens", "completion_tokens", "total_tokens")}
    base = {
        "id": exchange.make_id("cmpl-", 29),
        "object": "text_completion",
        "created": CREATED,
        "model": exchange.model,
    }
    if body.get("stream"):
        texts = _interleave([_text_chunks(index, reply) for index, reply in enumerate(replies)])
        return _chunk_stream(exchange, base, [], texts, usage)
    choices = [_text_choice(index, reply.text, finish_reason(reply)) for index, reply in enumerate(replies)]
    delay = max(pace(exchange, reply) for reply in replies)
    payload = {**base, "choices": choices, "usage": usage}
    return json_response(exchange, 200, payload, request_id_header=REQUEST_ID_HEADER, delay_s=delay)


def _usage(prompt: int, cached: int, replies: Sequence[Reply]) -> Json:
    completion = sum(reply.output_tokens for reply in replies)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": sum(reply.reasoning_tokens for reply in replies),
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _chunk_stream(
    exchange: Exchange, base: Json, heads: list[Json], texts: list[Json], usage: Json
) -> httpx2.Response:
    """Framing chunks (``heads``), then the ones that carry text, then usage if asked for, then ``[DONE]``."""
    payloads = [{**base, "choices": [choice]} for choice in heads + texts]
    options = exchange.body.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage") is True:
        payloads = [{**payload, "usage": None} for payload in payloads]
        payloads.append({**base, "choices": [], "usage": usage})
    events = [sse_event(payload) for payload in payloads] + [sse_event("[DONE]")]
    return sse_response(exchange, events, first_content=len(heads), request_id_header=REQUEST_ID_HEADER)


def _interleave(per_choice: Sequence[Sequence[Json]]) -> list[Json]:
    """The choices' chunks taking turns, as the API streams ``n`` > 1 answers."""
    rounds = itertools.zip_longest(*per_choice)
    return [chunk for chunks in rounds for chunk in chunks if chunk is not None]


def _chat_text_chunks(index: int, reply: Reply) -> list[Json]:
    texts = [_choice(index, delta={"content": delta}) for delta in reply.deltas()]
    return [*texts, _choice(index, delta={}, reason=finish_reason(reply))]


def _choice(index: int, *, reason: str | None = None, **content: object) -> Json:
    return {"index": index, **content, "logprobs": None, "finish_reason": reason}


def _tier() -> Json:
    return {"service_tier": "default", "system_fingerprint": SYSTEM_FINGERPRINT}


def _text_chunks(index: int, reply: Reply) -> list[Json]:
    texts = [_text_choice(index, delta, None) for delta in reply.deltas()]
    return [*texts, _text_choice(index, "", finish_reason(reply))]


def _text_choice(index: int, text: str, reason: str | None) -> Json:
    return {"text": text, "index": index, "logprobs": None, "finish_reason": reason}
