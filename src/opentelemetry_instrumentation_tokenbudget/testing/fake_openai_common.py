"""What every fake OpenAI endpoint reads from a request the same way: limits, the prompt cache, the reply."""

from __future__ import annotations

from typing import Any

from .fake_http import Exchange
from .fake_tokens import (
    Reply,
    canned_reply,
    compact_json,
    count_tokens,
    generate_reply,
    is_reasoning_model,
    openai_cached_tokens,
    text_parts,
)

REQUEST_ID_HEADER = "x-request-id"

Json = dict[str, Any]


def tool_texts(body: Json) -> list[str | list[str]]:
    """Tool definitions as prompt messages: each costs what its JSON text does."""
    return [compact_json(tool) for tool in body.get("tools") or []]


def cached_tokens(exchange: Exchange, prompt: int) -> int:
    """Prompt tokens served from the cache: none the first time a ``prompt_cache_key`` is used."""
    key = exchange.body.get("prompt_cache_key")
    if not isinstance(key, str) or not exchange.seen_before("openai:" + key):
        return 0
    return openai_cached_tokens(prompt)


def last_user_text(messages: object) -> str:
    """The text the fake model answers: a bare string prompt, or the last user message's text."""
    if isinstance(messages, str):
        return messages
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return " ".join(text_parts(message.get("content")))
    return ""


def reply_for(exchange: Exchange, user_text: str, limit: int | None) -> Reply:
    full = exchange.reply if exchange.reply is not None else canned_reply(user_text)
    return generate_reply(full, limit, reasoning=is_reasoning_model(exchange.model))


def int_field(body: Json, *names: str) -> int | None:
    """The first of these fields that holds an integer, as the API's aliases (``max_tokens``...)."""
    for name in names:
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def finish_reason(reply: Reply) -> str:
    return "length" if reply.truncated else "stop"


def pace(exchange: Exchange, reply: Reply) -> float:
    """How long a whole answer takes: what its streamed chunks would have taken."""
    return exchange.delay_s * (reply.visible_tokens + 1)


def raw_prompts(prompt: object) -> list[str | list[int]]:
    """The prompts of a request: one string, several, one token array or several token arrays."""
    if isinstance(prompt, str):
        return [prompt]
    if not isinstance(prompt, list):
        return [""]
    if prompt and all(isinstance(item, int) for item in prompt):
        return [list(prompt)]
    return [item if isinstance(item, str) else list(item) for item in prompt if isinstance(item, (str, list))]


def raw_tokens(prompt: str | list[int]) -> int:
    """Tokens of a bare prompt or embedding input, which has no message framing."""
    return count_tokens(prompt) if isinstance(prompt, str) else len(prompt)
