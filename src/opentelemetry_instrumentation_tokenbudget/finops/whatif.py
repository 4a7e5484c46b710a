"""The recorded usage repriced as if another model had served it.

The figure assumes the other model would have used the same number of tokens. That holds within a
tokenizer family (gpt-4o and gpt-4o-mini share o200k_base) and not across families: the same text is
a different number of tokens for GPT, Claude and Gemini models. Where the provider published a ratio
(`KNOWN_TOKEN_RATIOS`), the projection is also given with it applied; otherwise the caveat says the
figure assumes equal token counts. Output length differs between models too, which no ratio captures.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Final, TypeVar

from . import repricing
from .records import CallRecord


@dataclass(frozen=True, slots=True)
class TokenRatio:
    """Tokens of the target per token of the source for the same text: `low` to `high`."""

    low: Decimal
    high: Decimal
    source: str


# Anthropic's release notes for Claude Opus 4.7: its new tokenizer "may use roughly 1x to 1.35x as many
# tokens when processing text compared to previous models".
_CLAUDE_BEFORE_4_7 = re.compile(
    r"^claude-(2|instant|3-|3-5-|3-7-)|^claude-(opus|sonnet|haiku)-4(-[0-6])?(-\d{8}|-latest)?$"
)
_CLAUDE_4_7_TOKENIZER = re.compile(r"^claude-(opus|sonnet|haiku)-4-[7-9](-\d{8}|-latest)?$")
KNOWN_TOKEN_RATIOS: Final = (
    (
        _CLAUDE_BEFORE_4_7,
        _CLAUDE_4_7_TOKENIZER,
        TokenRatio(Decimal(1), Decimal("1.35"), "Anthropic, Claude Opus 4.7 release notes: 1x to 1.35x"),
    ),
)

# Models known to share a tokenizer: within one of these, token counts carry over.
_TOKENIZER_FAMILIES: Final = (
    ("openai o200k_base", re.compile(r"^(gpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|o1|o3|o4|chatgpt-4o)")),
    ("openai cl100k_base", re.compile(r"^(gpt-4(-|$)|gpt-4-turbo|gpt-3\.5)")),
    ("claude before Opus 4.7", _CLAUDE_BEFORE_4_7),
    ("claude 4.7 tokenizer", _CLAUDE_4_7_TOKENIZER),
    ("gemini", re.compile(r"^gemini-")),
)


def tokenizer_family(model: str) -> str | None:
    lowered = model.lower()
    for name, pattern in _TOKENIZER_FAMILIES:
        if pattern.search(lowered):
            return name
    return None


def token_ratio(source: str, target: str) -> TokenRatio | None:
    for before, after, ratio in KNOWN_TOKEN_RATIOS:
        if before.search(source.lower()) and after.search(target.lower()):
            return ratio
        if after.search(source.lower()) and before.search(target.lower()):
            return TokenRatio((1 / ratio.high).quantize(Decimal("0.01")), 1 / ratio.low, ratio.source)
    return None


def caveat(source: str, target: str) -> str:
    ratio = token_ratio(source, target)
    if ratio is not None:
        return (
            f"{target} counts the same text as {ratio.low}x to {ratio.high}x the tokens of {source}"
            f" ({ratio.source}); the range applies that ratio"
        )
    family = tokenizer_family(source)
    if family is not None and family == tokenizer_family(target):
        return f"same tokenizer ({family}): token counts carry over; output length may still differ"
    return (
        f"assumes {target} uses as many tokens as {source}: their tokenizers differ and no ratio is"
        " published, so the real figure may be higher or lower"
    )


@dataclass(frozen=True, slots=True)
class WhatIfRow:
    key: Mapping[str, str]
    source_model: str
    target_model: str
    calls: int
    current_usd: Decimal
    projected_usd: Decimal | None
    """None: the target model has no price."""
    projected_high_usd: Decimal | None
    """With the published token ratio's upper bound, when there is one."""
    unpriced_calls: int
    caveat: str

    @property
    def saving_usd(self) -> Decimal | None:
        return None if self.projected_usd is None else self.current_usd - self.projected_usd


@dataclass(slots=True)
class _Sums:
    calls: int = 0
    unpriced: int = 0
    current: Decimal = Decimal(0)
    projected: Decimal | None = Decimal(0)
    high: Decimal | None = Decimal(0)


R = TypeVar("R", bound=CallRecord)


def reprice(
    records: Iterable[R],
    source_model: str,
    target_model: str,
    group_of: Callable[[R], Mapping[str, str]],
    target_provider: str | None = None,
) -> list[WhatIfRow]:
    """One row per group for the calls of `source_model`, most expensive first.

    Each call is repriced at its own time (the prices then in force), so that the comparison with what
    it cost is like for like. Calls whose recorded cost is unknown are counted apart.
    """
    ratio = token_ratio(source_model, target_model)
    sums: dict[tuple[tuple[str, str], ...], _Sums] = {}
    for record in records:
        if record.request_model != source_model:
            continue
        group = sums.setdefault(tuple(sorted(group_of(record).items())), _Sums())
        if record.cost_usd is None:
            group.unpriced += 1
            continue
        at = datetime.fromtimestamp(record.start, timezone.utc)
        provider = target_provider or record.provider
        group.calls += 1
        group.current += record.cost_usd
        group.projected = _plus(group.projected, _price_like(record, target_model, provider, at, Decimal(1)))
        if ratio is not None:
            group.high = _plus(group.high, _price_like(record, target_model, provider, at, ratio.high))
    rows = [
        WhatIfRow(
            key=dict(key),
            source_model=source_model,
            target_model=target_model,
            calls=group.calls,
            current_usd=group.current,
            projected_usd=group.projected,
            projected_high_usd=group.high if ratio is not None else None,
            unpriced_calls=group.unpriced,
            caveat=caveat(source_model, target_model),
        )
        for key, group in sums.items()
    ]
    rows.sort(key=lambda row: -row.current_usd)
    return rows


def _plus(total: Decimal | None, amount: Decimal | None) -> Decimal | None:
    return None if total is None or amount is None else total + amount


def _price_like(
    record: CallRecord, model: str, provider: str, at: datetime, ratio: Decimal
) -> Decimal | None:
    def scaled(tokens: int) -> int:
        return int((Decimal(tokens) * ratio).to_integral_value())

    return repricing.price(
        provider,
        model,
        input_tokens=scaled(record.input_tokens),
        output_tokens=scaled(record.output_tokens),
        cache_read_tokens=scaled(record.cache_read_tokens),
        cache_write_tokens=scaled(record.cache_write_tokens),
        at=at,
    )
