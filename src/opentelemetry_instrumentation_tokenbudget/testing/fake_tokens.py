"""What the fake models answer, and how many tokens the fake providers charge for it.

No real tokenizer is involved: the counts follow a small documented formula, so that a test can compute
the exact usage it expects from the request it sent, and so that the numbers still look like real ones
(a few tokens per message of framing, about four characters per token).

- one piece of text costs ``ceil(len(text) / 4)`` tokens (:func:`count_tokens`);
- one message costs ``MESSAGE_OVERHEAD_TOKENS`` plus the tokens of each of its text parts
  (:func:`message_tokens`); a system prompt or Responses ``instructions`` is one more message, and a tool
  definition is one message whose text is its compact JSON;
- the reply is :func:`canned_reply` of the last user message, and each of its words is one output token;
  reasoning models also spend ``REASONING_TOKENS_PER_WORD`` hidden tokens per word they show.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 3
ECHO_WORDS = 6
REASONING_TOKENS_PER_WORD = 2

# OpenAI caches prompts in blocks of 128 tokens and never the very end of a prompt, so a repeated prompt
# of 1370 tokens reports 1280 cached (as in the recorded exchange): the last 64 stay uncached.
OPENAI_CACHE_BLOCK_TOKENS = 128
OPENAI_CACHE_UNCACHED_TAIL_TOKENS = 64

_REASONING_MODEL = re.compile(r"^(o\d|gpt-5)")


def count_tokens(text: str) -> int:
    """Tokens of one piece of text: one per four characters, rounded up."""
    return -(-len(text) // CHARS_PER_TOKEN)


def message_tokens(parts: str | Sequence[str]) -> int:
    """Tokens of one message made of these text parts, framing included."""
    pieces = [parts] if isinstance(parts, str) else parts
    return MESSAGE_OVERHEAD_TOKENS + sum(count_tokens(piece) for piece in pieces)


def prompt_tokens(messages: Sequence[str | Sequence[str]]) -> int:
    """Input tokens of a prompt: each item is one message, as a string or as its list of text parts."""
    return sum(message_tokens(message) for message in messages)


def openai_cached_tokens(prompt: int) -> int:
    """What OpenAI reports as ``cached_tokens`` when a prompt of ``prompt`` tokens hits its cache."""
    cacheable = prompt - OPENAI_CACHE_UNCACHED_TAIL_TOKENS
    return max(0, cacheable // OPENAI_CACHE_BLOCK_TOKENS * OPENAI_CACHE_BLOCK_TOKENS)


def is_reasoning_model(model: str) -> bool:
    """Whether OpenAI bills hidden reasoning tokens for this model (o1, o3, o4-mini, gpt-5...)."""
    return _REASONING_MODEL.match(model) is not None


def canned_reply(last_user_text: str) -> str:
    """The fake model's full answer: a fixed sentence that echoes the start of the user's message."""
    echo = last_user_text.split()[:ECHO_WORDS]
    if not echo:
        return "This is a fake reply."
    return "This is a fake reply to: " + " ".join(echo)


def text_parts(content: object) -> list[str]:
    """The texts a message's ``content`` carries, in order, whichever provider's shape it has.

    Images, audio and other non-text parts carry no text here, so they cost nothing.
    """
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        return []
    texts: list[str] = []
    for part in content:
        texts.extend(_part_texts(part))
    return texts


def _part_texts(part: object) -> list[str]:
    if isinstance(part, str):
        return [part]
    if not isinstance(part, dict):
        return []
    if isinstance(part.get("text"), str):
        return [part["text"]]
    if "content" in part:
        return text_parts(part["content"])
    if "input" in part:
        return [compact_json(part["input"])]
    return []


def compact_json(value: object) -> str:
    """A stable text form of a JSON value, used both to count a tool's tokens and to derive ids."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class Reply:
    """One generated answer: the words shown, whether the token limit cut it, and the hidden tokens."""

    words: tuple[str, ...]
    truncated: bool
    reasoning_tokens: int = 0

    @property
    def text(self) -> str:
        return " ".join(self.words)

    @property
    def visible_tokens(self) -> int:
        return len(self.words)

    @property
    def output_tokens(self) -> int:
        """Billed output tokens: what OpenAI calls completion tokens, reasoning included."""
        return self.visible_tokens + self.reasoning_tokens

    def deltas(self) -> list[str]:
        """The streamed pieces, one per word; joined they give back :attr:`text` exactly."""
        return [word if index == 0 else " " + word for index, word in enumerate(self.words)]


def generate_reply(full_text: str, limit: int | None, *, reasoning: bool = False) -> Reply:
    """The answer a model gives when it may spend at most ``limit`` output tokens (``None``: no limit).

    A reasoning model spends its hidden tokens out of the same limit, so it shows fewer words.
    """
    words = tuple(full_text.split())
    cost_per_word = 1 + (REASONING_TOKENS_PER_WORD if reasoning else 0)
    shown = words if limit is None else words[: max(0, limit) // cost_per_word]
    hidden = len(shown) * REASONING_TOKENS_PER_WORD if reasoning else 0
    return Reply(words=shown, truncated=len(shown) < len(words), reasoning_tokens=hidden)
