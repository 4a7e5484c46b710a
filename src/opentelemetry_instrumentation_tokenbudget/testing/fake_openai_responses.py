"""Fake Responses API: ``POST /v1/responses`` and ``POST /v1/responses/input_tokens``.

A stream sends, with a ``sequence_number`` each: ``response.created``, ``response.in_progress``, for a
reasoning model a reasoning item's ``output_item.added``/``.done``, then the message's
``output_item.added``, ``content_part.added``, one ``output_text.delta`` per word,
``output_text.done``, ``content_part.done``, ``output_item.done``, and last ``response.completed``, or
``response.incomplete`` when ``max_output_tokens`` cut the answer. Only that last event has usage.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import httpx2

from .fake_http import CREATED, Exchange, json_response, sse_event, sse_response
from .fake_openai_common import (
    REQUEST_ID_HEADER,
    Json,
    cached_tokens,
    int_field,
    last_user_text,
    pace,
    reply_for,
    tool_texts,
)
from .fake_tokens import Reply, is_reasoning_model, prompt_tokens, text_parts


def responses_input_tokens(body: Json) -> int:
    """Input tokens of a Responses request: ``instructions``, each input item, then the tools."""
    messages: list[str | list[str]] = []
    if isinstance(body.get("instructions"), str):
        messages.append(body["instructions"])
    items = body.get("input")
    if isinstance(items, str):
        messages.append(items)
    elif isinstance(items, list):
        messages.extend(_item_texts(item) for item in items if isinstance(item, dict))
    return prompt_tokens(messages + tool_texts(body))


def _item_texts(item: Json) -> list[str]:
    # A tool's result comes back as an item with `output` instead of `content`.
    return text_parts(item["content"] if "content" in item else item.get("output"))


def responses(exchange: Exchange) -> httpx2.Response:
    body = exchange.body
    prompt = responses_input_tokens(body)
    reply = reply_for(exchange, last_user_text(body.get("input")), int_field(body, "max_output_tokens"))
    usage = {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached_tokens(exchange, prompt)},
        "output_tokens": reply.output_tokens,
        "output_tokens_details": {"reasoning_tokens": reply.reasoning_tokens},
        "total_tokens": prompt + reply.output_tokens,
    }
    final = _response_object(exchange, reply, usage)
    if body.get("stream"):
        return _stream(exchange, reply, final)
    return json_response(
        exchange, 200, final, request_id_header=REQUEST_ID_HEADER, delay_s=pace(exchange, reply)
    )


def input_tokens(exchange: Exchange) -> httpx2.Response:
    payload = {"object": "response.input_tokens", "input_tokens": responses_input_tokens(exchange.body)}
    return json_response(exchange, 200, payload, request_id_header=REQUEST_ID_HEADER)


def _final_status(reply: Reply) -> str:
    return "incomplete" if reply.truncated else "completed"


def _output_items(exchange: Exchange, reply: Reply, *, done: bool) -> list[Json]:
    """The response's output: a reasoning item for reasoning models, then the message."""
    message = {
        "id": exchange.make_id("msg_", 50),
        "type": "message",
        "status": _final_status(reply) if done else "in_progress",
        "content": [_output_text(reply.text)] if done else [],
        "role": "assistant",
    }
    if not is_reasoning_model(exchange.model):
        return [message]
    return [{"id": exchange.make_id("rs_", 50), "type": "reasoning", "summary": []}, message]


def _output_text(text: str) -> Json:
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}


def _response_object(exchange: Exchange, reply: Reply, usage: Json | None) -> Json:
    """The response as the API returns it or, without usage, as the first events show it."""
    body = exchange.body
    done = usage is not None
    status = _final_status(reply) if done else "in_progress"
    reasoning = body.get("reasoning")
    effort = reasoning.get("effort") if isinstance(reasoning, dict) else None
    return {
        "id": exchange.make_id("resp_", 50),
        "object": "response",
        "created_at": CREATED,
        "status": status,
        "background": False,
        "completed_at": CREATED + 1 if status == "completed" else None,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": None,
        "model": exchange.model,
        "output": _output_items(exchange, reply, done=True) if done else [],
        "parallel_tool_calls": True,
        "previous_response_id": body.get("previous_response_id"),
        "prompt_cache_key": body.get("prompt_cache_key"),
        "reasoning": {"effort": effort, "summary": None},
        "service_tier": "default",
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto",
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": usage,
        "user": None,
        "metadata": body.get("metadata") or {},
    }


def _stream(exchange: Exchange, reply: Reply, final: Json) -> httpx2.Response:
    sequence = itertools.count()

    def event(kind: str, **fields: object) -> bytes:
        return sse_event({"type": kind, **fields, "sequence_number": next(sequence)}, kind)

    started = _response_object(exchange, reply, None)
    events = [event("response.created", response=started), event("response.in_progress", response=started)]
    *reasoning, message = _output_items(exchange, reply, done=False)
    *reasoning_done, message_done = final["output"]
    for index, (item, item_done) in enumerate(zip(reasoning, reasoning_done, strict=True)):
        events += [_item_event(event, "added", item, index), _item_event(event, "done", item_done, index)]
    where = {"item_id": message["id"], "output_index": len(reasoning), "content_index": 0}
    events.append(_item_event(event, "added", message, len(reasoning)))
    events.append(event("response.content_part.added", **where, part=_output_text("")))
    first_content = len(events)
    events += [event("response.output_text.delta", **where, delta=d, logprobs=[]) for d in reply.deltas()]
    events.append(event("response.output_text.done", **where, text=reply.text, logprobs=[]))
    events.append(event("response.content_part.done", **where, part=_output_text(reply.text)))
    events.append(_item_event(event, "done", message_done, len(reasoning)))
    events.append(event(f"response.{final['status']}", response=final))
    return sse_response(exchange, events, first_content=first_content, request_id_header=REQUEST_ID_HEADER)


def _item_event(event: Callable[..., bytes], stage: str, item: Json, index: int) -> bytes:
    return event(f"response.output_item.{stage}", item=item, output_index=index)
