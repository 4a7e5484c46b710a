"""Token usage of one call, in the GenAI semantic conventions' sense.

`input_tokens` INCLUDES cache reads and writes, and `output_tokens` includes reasoning tokens, as the
conventions and genai-prices count them. Provider adapters convert their own shapes into this one
(Anthropic reports cache tokens beside its `input_tokens`; the adapter adds them).
"""

from __future__ import annotations

from dataclasses import dataclass

# English prose averages about four characters per token in the GPT and Claude tokenizers; used only
# where no count is reported (budget estimates, streams cut short before their usage arrived).
CHARACTERS_PER_TOKEN = 4


def tokens_for_characters(characters: int) -> int:
    return -(-characters // CHARACTERS_PER_TOKEN)


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
