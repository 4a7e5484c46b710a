"""Token usage of one call, in the GenAI semantic conventions' sense.

`input_tokens` INCLUDES cache reads and writes, and `output_tokens` includes reasoning tokens, as the
conventions and genai-prices count them. Provider adapters convert their own shapes into this one
(Anthropic reports cache tokens beside its `input_tokens`; the adapter adds them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from operator import attrgetter
from typing import Final

# English prose averages about four characters per token in the GPT and Claude tokenizers; used only
# where no count is reported (budget estimates, streams cut short before their usage arrived).
CHARACTERS_PER_TOKEN = 4


MAX_TOKENS_PER_CALL: Final = 10**9
"""No model reads or writes a billion tokens in one call: a larger count is a broken response, and
priced it would be a bill of thousands of dollars that never happened."""

INVALID_COUNT: Final = -1
"""What `count` gives for a reported value that is no token count; `checked` treats it as missing."""


def tokens_for_characters(characters: int) -> int:
    return -(-characters // CHARACTERS_PER_TOKEN)


def is_count(value: object) -> bool:
    """A token count: an int (not a bool, which is one in Python), from 0 to `MAX_TOKENS_PER_CALL`."""
    return type(value) is int and 0 <= value < MAX_TOKENS_PER_CALL


def count(value: object) -> int:
    """A reported count for a `TokenUsage` field: None (not reported) is 0, anything that is no count
    (1200.5, "abc", "", 10**20, True) is `INVALID_COUNT`, kept visible for `checked` to see. Adapters
    read every count through this, never with `or 0` (an empty string would pass as 0)."""
    if value is None:
        return 0
    # is_count's test, written out: adapters read a dozen counts per response through this.
    if type(value) is int and 0 <= value < MAX_TOKENS_PER_CALL:
        return value
    return INVALID_COUNT


def required(value: object) -> int:
    """A count that the API always reports (OpenAI's `prompt_tokens`, Anthropic's `input_tokens`):
    absent or null, the usage block is not what it claims to be, and the count is `INVALID_COUNT`."""
    return INVALID_COUNT if value is None else count(value)


def total(*values: object) -> int:
    """The sum of reported counts (Anthropic reports cache reads and writes beside its input), or
    `INVALID_COUNT` when any of them is no count (`required(value)` is none when absent)."""
    counts = [count(value) for value in values]
    return INVALID_COUNT if INVALID_COUNT in counts else sum(counts)


# Not frozen, though nothing changes them once built: a frozen dataclass's __init__ sets each field
# through object.__setattr__, which is slow, and each call builds these. The same reason holds for the
# other per-call records (`Cost`, `LedgerKey`, `WindowSpan`, `Charge`, `BudgetAdmission`, `_Finished`).
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
    # Per modality, each INCLUDED in the totals above (as the conventions count them); the field
    # names are genai-prices' usage keys, which prices them at the modality's own rate.
    input_audio_tokens: int = 0
    output_audio_tokens: int = 0
    cache_audio_read_tokens: int = 0
    """The part of `cache_read_tokens` (and of `input_audio_tokens`) that was audio."""
    input_image_tokens: int = 0
    output_image_tokens: int = 0
    input_video_tokens: int = 0
    web_searches: int = 0
    """Web searches a server-side tool ran for the call, each billed as a fee, not in tokens."""

    @property
    def uncached_input_tokens(self) -> int:
        return max(self.input_tokens - self.cache_read_tokens - self.cache_write_tokens, 0)


_FIELDS: Final = tuple(field.name for field in fields(TokenUsage))
_read_fields: Final = attrgetter(*_FIELDS)
_INT_ONLY: Final = {int}


def checked(usage: TokenUsage, estimate_input_tokens: Callable[[], int]) -> tuple[TokenUsage, bool]:
    """`usage` with each field that holds no token count treated as missing: the input estimated from
    the request (`estimate_input_tokens`), any other field 0; and whether any was. The one place that
    decides it, for every provider: nothing else then meets a float, a string or a huge number."""
    values = _read_fields(usage)
    # The common case, every field a count, decided without a Python call per field.
    if set(map(type, values)) == _INT_ONLY and min(values) >= 0 and max(values) < MAX_TOKENS_PER_CALL:
        return usage, False
    invalid = [name for name, value in zip(_FIELDS, values, strict=True) if not is_count(value)]
    repaired = dict.fromkeys(invalid, 0)
    if "input_tokens" in invalid:
        try:
            estimate = estimate_input_tokens()
        except Exception:
            estimate = 0
        repaired["input_tokens"] = estimate if is_count(estimate) else 0
    return replace(usage, **repaired), True
