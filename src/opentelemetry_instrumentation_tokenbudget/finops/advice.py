"""Where the recorded spend could be lower: ranked savings, each with its scope, figures and caveat.

Five checks, each from what the ledger records of every call (never prompt text):

- ``cheaper-model``: a feature whose calls are short (median input and output below
  `SHORT_INPUT_TOKENS` / `SHORT_OUTPUT_TOKENS`) on a model with a smaller sibling in the same family;
  the calls repriced on the sibling.
- ``prompt-caching``: calls that repeat a long prompt prefix (the salted `prompt_prefix_hash`, set on
  prompts of at least ~1,024 tokens) and read nothing from the cache; repriced with that prefix read
  from the cache after its first call (a lower bound: the prefix may be longer than what is hashed).
- ``batch``: features whose calls carry no user or session (nobody waits for them); repriced at the
  model's batch price when genai-prices has one.
- ``context-tier``: requests just over a long-context tier's threshold (within `TIER_MARGIN`), which pay
  the higher rate for the whole request; repriced with the input trimmed to the threshold.
- ``max-tokens``: a ``max_tokens`` far above the outputs seen. It costs nothing by itself but inflates
  what a strict budget reserves per call; the advice names a ceiling that still covers every output.
"""

from __future__ import annotations

import math
import re
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Final

from ..prompt_prefix import PREFIX_TOKENS
from . import repricing
from .records import CallRecord

FEATURE: Final = "tokenbudget.feature"
USER: Final = "user.id"
SESSION: Final = "session.id"
SHORT_INPUT_TOKENS: Final = 2000
SHORT_OUTPUT_TOKENS: Final = 400
TIER_MARGIN: Final = Decimal("0.10")
MAX_TOKENS_SLACK: Final = 4
"""`max-tokens` fires when the largest output seen is under 1/4 of the median max_tokens."""
MIN_CALLS: Final = 2

# Smaller models of the same family, by the larger one's name (dated snapshots included).
CHEAPER_SIBLINGS: Final = (
    (re.compile(r"^gpt-4o(-\d{4}-\d{2}-\d{2})?$"), "gpt-4o-mini"),
    (re.compile(r"^gpt-4\.1(-\d{4}-\d{2}-\d{2})?$"), "gpt-4.1-mini"),
    (re.compile(r"^gpt-4\.1-mini(-\d{4}-\d{2}-\d{2})?$"), "gpt-4.1-nano"),
    (re.compile(r"^gpt-5(-\d{4}-\d{2}-\d{2})?$"), "gpt-5-mini"),
    (re.compile(r"^gpt-5-mini(-\d{4}-\d{2}-\d{2})?$"), "gpt-5-nano"),
    (re.compile(r"^claude-opus-4(-\d)?(-\d{8}|-latest)?$"), "claude-sonnet-4-5"),
    (re.compile(r"^claude-sonnet-4(-\d)?(-\d{8}|-latest)?$"), "claude-haiku-4-5"),
    (re.compile(r"^claude-3-(5|7)-sonnet(-\d{8}|-latest)?$"), "claude-3-5-haiku-latest"),
    (re.compile(r"^gemini-2\.5-pro"), "gemini-2.5-flash"),
    (re.compile(r"^gemini-2\.5-flash$"), "gemini-2.5-flash-lite"),
)


@dataclass(frozen=True, slots=True)
class Advice:
    kind: str
    scope: Mapping[str, str]
    calls: int
    current_usd: Decimal
    projected_usd: Decimal
    action: str
    caveat: str

    @property
    def saving_usd(self) -> Decimal:
        return self.current_usd - self.projected_usd


def cheaper_sibling(model: str) -> str | None:
    for pattern, sibling in CHEAPER_SIBLINGS:
        if pattern.search(model.lower()):
            return sibling
    return None


def advise(records: Iterable[CallRecord]) -> list[Advice]:
    """Every saving found, the largest first (advice without a $ saving last)."""
    priced = [record for record in records if record.cost_usd is not None]
    found: list[Advice] = []
    for check in (_cheaper_model, _prompt_caching, _batch, _context_tier, _max_tokens):
        found.extend(check(priced))
    found.sort(key=lambda advice: (-advice.saving_usd, advice.kind))
    return found


def _by(
    records: Iterable[CallRecord], key: Callable[[CallRecord], tuple[str, ...]]
) -> dict[tuple[str, ...], list[CallRecord]]:
    groups: dict[tuple[str, ...], list[CallRecord]] = defaultdict(list)
    for record in records:
        groups[key(record)].append(record)
    return groups


def _feature(record: CallRecord) -> str:
    return record.attributes.get(FEATURE, "(none)")


def _feature_model(record: CallRecord) -> tuple[str, ...]:
    return (_feature(record), record.provider, record.request_model)


def _scope(feature: str, model: str) -> dict[str, str]:
    return {"feature": feature, "model": model}


def _at(record: CallRecord) -> datetime:
    return datetime.fromtimestamp(record.start, timezone.utc)


def _current(calls: Sequence[CallRecord]) -> Decimal:
    return sum((record.cost_usd or Decimal(0) for record in calls), Decimal(0))


def _cheaper_model(records: Sequence[CallRecord]) -> list[Advice]:
    found: list[Advice] = []
    for (feature, provider, model), calls in _by(records, _feature_model).items():
        sibling = cheaper_sibling(model)
        if sibling is None or len(calls) < MIN_CALLS:
            continue
        if statistics.median(r.input_tokens for r in calls) > SHORT_INPUT_TOKENS:
            continue
        if statistics.median(r.output_tokens for r in calls) > SHORT_OUTPUT_TOKENS:
            continue
        projected = _sum_or_none(
            repricing.price(
                provider,
                sibling,
                input_tokens=r.input_tokens,
                output_tokens=r.output_tokens,
                cache_read_tokens=r.cache_read_tokens,
                cache_write_tokens=r.cache_write_tokens,
                at=_at(r),
            )
            for r in calls
        )
        current = _current(calls)
        if projected is None or projected >= current:
            continue
        found.append(
            Advice(
                "cheaper-model",
                _scope(feature, model),
                len(calls),
                current,
                projected,
                f"serve feature {feature!r} with {sibling} instead of {model}: its calls are short"
                f" (median {statistics.median(r.input_tokens for r in calls):g} tokens in,"
                f" {statistics.median(r.output_tokens for r in calls):g} out)",
                "a smaller model may answer worse: try it on a share of the traffic as a `variant`, mark"
                " outcomes with `record_outcome`, and compare cost per success"
                " (`tokenbudget outcomes --by variant`)",
            )
        )
    return found


def _prompt_caching(records: Sequence[CallRecord]) -> list[Advice]:
    hashed = [r for r in records if r.prompt_prefix_hash is not None]
    found: list[Advice] = []
    for (feature, provider, model), calls in _by(hashed, _feature_model).items():
        repeats = [
            group
            for group in _by(calls, lambda r: (r.prompt_prefix_hash or "",)).values()
            if len(group) >= MIN_CALLS and not any(r.cache_read_tokens for r in group)
        ]
        if not repeats:
            continue
        current = Decimal(0)
        projected: Decimal | None = Decimal(0)
        count = 0
        for group in repeats:
            for position, r in enumerate(sorted(group, key=lambda r: r.start)):
                prefix = min(PREFIX_TOKENS, r.input_tokens)
                cached = prefix if position else 0
                # The first call writes the prefix to the cache (Anthropic bills the write; OpenAI not).
                written = prefix if not position and provider == "anthropic" else 0
                cost = repricing.price(
                    provider,
                    model,
                    input_tokens=r.input_tokens,
                    output_tokens=r.output_tokens,
                    cache_read_tokens=cached,
                    cache_write_tokens=max(r.cache_write_tokens, written),
                    at=_at(r),
                )
                projected = None if cost is None or projected is None else projected + cost
                current += r.cost_usd or Decimal(0)
                count += 1
        if projected is None or projected >= current:
            continue
        found.append(
            Advice(
                "prompt-caching",
                _scope(feature, model),
                count,
                current,
                projected,
                f"{count} calls of feature {feature!r} on {model} repeat {len(repeats)} long prompt"
                " prefix(es) and read nothing from the cache: put the fixed part first and mark it"
                " cacheable (Anthropic: cache_control; OpenAI caches identical prefixes of 1,024+"
                " tokens by itself, so look for a changing value at the start)",
                f"a lower bound: only the first ~{PREFIX_TOKENS} tokens of each prompt are known to repeat;"
                " cached prefixes expire after minutes without use",
            )
        )
    return found


def _batch(records: Sequence[CallRecord]) -> list[Advice]:
    found: list[Advice] = []
    for (feature, provider, model), calls in _by(records, _feature_model).items():
        if len(calls) < MIN_CALLS or any(r.attributes.get(USER) or r.attributes.get(SESSION) for r in calls):
            continue
        if not repricing.has_batch_price(provider, model):
            continue
        standard = _sum_or_none(_reprice_now(provider, model, r, batch=False) for r in calls)
        batch = _sum_or_none(_reprice_now(provider, model, r, batch=True) for r in calls)
        if standard is None or batch is None or batch >= standard:
            continue
        current = _current(calls)
        projected = current * batch / standard if standard else current
        found.append(
            Advice(
                "batch",
                _scope(feature, model),
                len(calls),
                current,
                projected,
                f"feature {feature!r} has no user or session on its calls: send them through the"
                f" provider's batch API ({model} at {float(batch / standard):.0%} of the standard price)",
                "batch results come back within 24 hours; only for work that nobody waits for",
            )
        )
    return found


def _context_tier(records: Sequence[CallRecord]) -> list[Advice]:
    found: list[Advice] = []
    for (feature, provider, model), calls in _by(records, _feature_model).items():
        starts = repricing.input_tier_starts(provider, model)
        over = [
            (r, start)
            for r in calls
            for start in starts
            if start < r.input_tokens <= start + int(start * TIER_MARGIN)
        ]
        if not over:
            continue
        current = _current([r for r, _ in over])
        projected = _sum_or_none(
            repricing.price(
                provider,
                model,
                input_tokens=start,
                output_tokens=r.output_tokens,
                cache_read_tokens=min(r.cache_read_tokens, start),
                cache_write_tokens=min(r.cache_write_tokens, start),
                at=_at(r),
            )
            for r, start in over
        )
        if projected is None or projected >= current:
            continue
        edge = over[0][1]
        found.append(
            Advice(
                "context-tier",
                _scope(feature, model),
                len(over),
                current,
                projected,
                f"{len(over)} requests of feature {feature!r} are just over {model}'s {edge:,}-token"
                " long-context threshold and pay the higher rate on the whole request: trim their"
                f" context under {edge:,} tokens",
                "trimming context may drop what the answer needs; the figure assumes the same output",
            )
        )
    return found


def _max_tokens(records: Sequence[CallRecord]) -> list[Advice]:
    found: list[Advice] = []
    for (feature, _provider, model), calls in _by(records, _feature_model).items():
        limited = [r for r in calls if r.max_tokens]
        if len(limited) < MIN_CALLS:
            continue
        ceiling = statistics.median(r.max_tokens or 0 for r in limited)
        largest = max(r.output_tokens for r in limited)
        if largest * MAX_TOKENS_SLACK > ceiling:
            continue
        suggested = _round_up(2 * largest)
        current = _current(limited)
        found.append(
            Advice(
                "max-tokens",
                _scope(feature, model),
                len(limited),
                current,
                current,
                f"feature {feature!r} asks {model} for max_tokens={ceiling:g} and its largest output was"
                f" {largest} tokens: max_tokens={suggested} still covers every output seen",
                "no direct saving (only generated tokens are billed), but a strict budget reserves"
                f" max_tokens per call: {1 - suggested / ceiling:.0%} less reserved, fewer refusals",
            )
        )
    return found


def _round_up(value: int) -> int:
    magnitude = 10 ** max(len(str(value)) - 2, 0)
    return int(math.ceil(value / magnitude) * magnitude)


def _reprice_now(provider: str, model: str, record: CallRecord, *, batch: bool) -> Decimal | None:
    # Today's prices on both sides: batch prices are recent, and the advice is about spend to come.
    return repricing.price(
        provider,
        model,
        input_tokens=record.input_tokens,
        output_tokens=record.output_tokens,
        cache_read_tokens=record.cache_read_tokens,
        cache_write_tokens=record.cache_write_tokens,
        batch=batch,
    )


def _sum_or_none(amounts: Iterable[Decimal | None]) -> Decimal | None:
    total = Decimal(0)
    for amount in amounts:
        if amount is None:
            return None
        total += amount
    return total
