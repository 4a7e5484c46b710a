"""Token usage of one call, in the GenAI semantic conventions' sense.

`input_tokens` INCLUDES cache reads and writes, and `output_tokens` includes reasoning tokens, as the
conventions and genai-prices count them. Provider adapters convert their own shapes into this one
(Anthropic reports cache tokens beside its `input_tokens`; the adapter adds them).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

# English prose averages about four characters per token in the GPT and Claude tokenizers; used only
# where no count is reported (budget estimates, streams cut short before their usage arrived).
CHARACTERS_PER_TOKEN = 4


def tokens_for_characters(characters: int) -> int:
    return -(-characters // CHARACTERS_PER_TOKEN)


# Not frozen, though nothing changes them once built: a frozen dataclass's __init__ sets each field
# through object.__setattr__ and costs four times as much, and each call builds these.
@dataclass(slots=True)
class TokenUsage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    """The part of `cache_write_tokens` written for an hour (Anthropic's ``ttl: "1h"``), billed at
    its own, higher rate."""
    reasoning_tokens: int = 0

    @property
    def uncached_input_tokens(self) -> int:
        return max(self.input_tokens - self.cache_read_tokens - self.cache_write_tokens, 0)


@dataclass(slots=True)
class ResponseSummary:
    """What the core needs from a finished call, read by the provider adapter.

    `provider_cost` is a price that the response itself carried (a gateway such as OpenRouter
    reports one); when present it is passed through as the cost, with source `provider`.
    """

    usage: TokenUsage | None = None
    response_model: str | None = None
    response_id: str | None = None
    finish_reasons: tuple[str, ...] = ()
    provider_cost: Decimal | None = None


def with_estimated_output(
    summary: ResponseSummary, input_tokens: int, output_characters: int
) -> ResponseSummary:
    """A summary for a stream that ended before its usage arrived: what is known, plus an estimate
    of the output from the text that did arrive (the provider bills the tokens it generated)."""
    usage = summary.usage or TokenUsage(input_tokens=input_tokens)
    output_tokens = tokens_for_characters(output_characters)
    if output_tokens > usage.output_tokens:
        usage = replace(usage, output_tokens=output_tokens)
    return replace(summary, usage=usage)
