"""Every model of ten providers' price data, priced by us and by `genai_prices.calc_price` for the same
provider, model, usage, timestamp and service tier: the totals must be equal, to the last digit.

The usage shapes cover cache reads and writes (five-minute and one-hour), the edges of long-context
tiers, reasoning-heavy outputs, audio and image tokens, web searches, and the time of day
(DeepSeek's off-peak hours) and service tiers (OpenAI's flex and priority) that select prices.
"""

from __future__ import annotations

import warnings
from collections import Counter
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import genai_prices
from genai_prices import data_snapshot

from opentelemetry_instrumentation_tokenbudget.pricing import (
    PICODOLLARS_PER_USD,
    PriceBook,
    PriceRoute,
    RouteKind,
)
from opentelemetry_instrumentation_tokenbudget.usage import TokenUsage

PROVIDERS = [
    "openai",
    "anthropic",
    "google",
    "mistral",
    "groq",
    "deepseek",
    "x-ai",
    "azure",
    "aws",
    "openrouter",
]

SHAPES = [
    TokenUsage(input_tokens=1000, output_tokens=200),
    TokenUsage(input_tokens=5000, output_tokens=100, cache_read_tokens=3000),
    TokenUsage(input_tokens=5000, output_tokens=100, cache_write_tokens=2000, cache_write_1h_tokens=500),
    TokenUsage(input_tokens=9000, output_tokens=50, cache_read_tokens=4000, cache_write_tokens=4000),
    # Tier edges: the whole request pays the tier rate once its input passes the threshold.
    *(
        TokenUsage(input_tokens=edge + offset, output_tokens=1000, cache_read_tokens=edge // 2)
        for edge in (128_000, 200_000, 272_000)
        for offset in (0, 1)
    ),
    # Reasoning-heavy: most of the output is reasoning.
    TokenUsage(input_tokens=500, output_tokens=8000, reasoning_tokens=7000),
    # Audio in and out, part of it cached; images; web searches.
    TokenUsage(
        input_tokens=1000,
        output_tokens=200,
        cache_read_tokens=300,
        input_audio_tokens=600,
        cache_audio_read_tokens=100,
        output_audio_tokens=50,
    ),
    TokenUsage(input_tokens=2000, output_tokens=100, input_image_tokens=1500),
    TokenUsage(input_tokens=1000, output_tokens=200, web_searches=3),
]

# Noon UTC, and 17:00 UTC (inside DeepSeek's off-peak hours, 16:30 to 00:30 UTC).
TIMES = [datetime(2026, 6, 1, 12, tzinfo=timezone.utc), datetime(2026, 6, 1, 17, tzinfo=timezone.utc)]
SERVICE_TIERS: list[str | None] = [None, "flex", "priority"]


def genai_usage(usage: TokenUsage) -> genai_prices.Usage:
    return genai_prices.Usage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        cache_write_1h_tokens=usage.cache_write_1h_tokens,
        output_reasoning_tokens=usage.reasoning_tokens,
        input_audio_tokens=usage.input_audio_tokens,
        cache_audio_read_tokens=usage.cache_audio_read_tokens,
        output_audio_tokens=usage.output_audio_tokens,
        input_image_tokens=usage.input_image_tokens,
        web_searches=usage.web_searches,
    )


def sweep() -> tuple[Counter[str], list[tuple[Any, ...]]]:
    book = PriceBook()
    snapshot = data_snapshot.get_snapshot()
    outcome: Counter[str] = Counter()
    mismatches: list[tuple[Any, ...]] = []
    for provider in (p for p in snapshot.providers if p.id in PROVIDERS):
        route = PriceRoute(RouteKind.PROVIDER, provider.id)
        for model in provider.models:
            ours = book.lookup(provider.id, model.id, route)
            tiers = SERVICE_TIERS if provider.id == "openai" else [None]
            for usage in SHAPES:
                for when in TIMES:
                    for tier in tiers:
                        context = {"service_tier": tier} if tier else None
                        try:
                            with warnings.catch_warnings():
                                warnings.simplefilter("ignore")
                                expected: Decimal | None = genai_prices.calc_price(
                                    genai_usage(usage),
                                    model.id,
                                    provider_id=provider.id,
                                    genai_request_timestamp=when,
                                    price_context=context,  # type: ignore[arg-type]
                                ).total_price
                        except (LookupError, ValueError):
                            expected = None
                        got = ours.cost(usage, when.timestamp(), context).total if ours else None
                        if expected is None:
                            outcome["genai-prices cannot price"] += 1
                        else:
                            outcome["compared"] += 1
                        if got != expected:
                            mismatches.append((provider.id, model.id, usage, when, tier, got, expected))
    return outcome, mismatches


def test_every_model_priced_as_genai_prices_prices_it() -> None:
    outcome, mismatches = sweep()

    # The first few, if any, are enough to see what went wrong.
    assert mismatches[:5] == []
    # With genai-prices 0.2.3: 44,184 comparisons; 1,148 combinations genai-prices itself cannot
    # price (a model with no token prices, a usage its prices cannot decompose), unpriced by us too.
    assert outcome["compared"] > 40_000


def test_integer_token_rates_price_calls_as_the_decimal_arithmetic_does() -> None:
    """Budgets estimate each call from `token_rates()` in whole picodollars: for a call of only input
    and output tokens (up to the first long-context tier) the figure is the Decimal total's, to the
    picodollar, for every model that has such rates."""
    book = PriceBook()
    snapshot = data_snapshot.get_snapshot()
    outcome: Counter[str] = Counter()
    mismatches: list[tuple[Any, ...]] = []
    shapes = [(0, 0), (1, 0), (0, 1), (1234, 567), (128_000, 9), (200_000, 64_000), (10_000_000, 10_000_000)]
    for provider in (p for p in snapshot.providers if p.id in PROVIDERS):
        route = PriceRoute(RouteKind.PROVIDER, provider.id)
        for model in provider.models:
            pricing = book.lookup(provider.id, model.id, route)
            rates = pricing.token_rates() if pricing is not None else None
            if rates is None:
                outcome["no integer rates"] += 1
                continue
            outcome["integer rates"] += 1
            for input_tokens, output_tokens in shapes:
                if input_tokens > rates.max_input_tokens:
                    outcome["past the first tier"] += 1
                    continue
                usage = TokenUsage(input_tokens=input_tokens, output_tokens=output_tokens)
                expected = pricing.cost(usage).total * PICODOLLARS_PER_USD  # type: ignore[union-attr]
                got = (
                    rates.per_call
                    + rates.per_input_token * input_tokens
                    + rates.per_output_token * output_tokens
                )
                if got != expected:
                    mismatches.append((provider.id, model.id, input_tokens, output_tokens, got, expected))

    assert mismatches[:5] == []
    # Most models have integer rates; those priced by the time of day (DeepSeek) have none.
    assert outcome["integer rates"] > 1000
    assert outcome["past the first tier"] > 100
    found = {
        model: pricing.token_rates() if pricing is not None else "unpriced"
        for provider, model in [
            ("deepseek", "deepseek-chat"),
            ("google", "gemini-2.5-pro"),
            ("openai", "gpt-4o-mini"),
        ]
        for pricing in [book.lookup(provider, model, PriceRoute(RouteKind.PROVIDER, provider))]
    }
    assert found == {
        "deepseek-chat": None,
        "gemini-2.5-pro": (0, 1_250_000, 10_000_000, 200_000),
        "gpt-4o-mini": (0, 150_000, 600_000, 2**63 - 1),
    }


def test_prices_resolved_per_minute_change_at_the_moment_the_data_says() -> None:
    """One `ModelPricing` prices calls a moment before and at DeepSeek's off-peak start (16:30 UTC),
    before and at the day OpenAI's priority prices of gpt-4o start (a UTC midnight), and under
    several service tiers in one minute: each as genai-prices prices it (resolutions are kept per
    minute and context)."""
    book = PriceBook()
    usage = TokenUsage(input_tokens=1_000_000, output_tokens=1_000_000)

    def both(model: str, provider: str, moment: datetime, tier: str | None) -> tuple[Decimal, Decimal]:
        pricing = book.lookup(provider, model, PriceRoute(RouteKind.PROVIDER, provider))
        assert pricing is not None
        context = {"service_tier": tier} if tier else None
        theirs = genai_prices.calc_price(
            genai_usage(usage),
            model,
            provider_id=provider,
            genai_request_timestamp=moment,
            price_context=context,  # type: ignore[arg-type]
        ).total_price
        return pricing.cost(usage, moment.timestamp(), context).total, theirs

    before_off_peak = datetime(2026, 6, 1, 16, 29, 59, 999_000, tzinfo=timezone.utc)
    off_peak = datetime(2026, 6, 1, 16, 30, tzinfo=timezone.utc)
    assert [both("deepseek-chat", "deepseek", moment, None) for moment in (before_off_peak, off_peak)] == [
        (Decimal("1.37"), Decimal("1.37")),
        (Decimal("0.685"), Decimal("0.685")),
    ]
    eve = datetime(2026, 10, 11, 23, 59, 59, 999_000, tzinfo=timezone.utc)
    day = datetime(2026, 10, 12, tzinfo=timezone.utc)
    assert [both("gpt-4o", "openai", moment, "priority") for moment in (eve, day)] == [
        (Decimal("12.5"), Decimal("12.5")),
        (Decimal("21.25"), Decimal("21.25")),
    ]
    noon = datetime(2026, 10, 12, 12, tzinfo=timezone.utc)
    tiers = [None, "priority", "default", "priority", None]
    assert [both("gpt-4o", "openai", noon, tier)[0] for tier in tiers] == [
        Decimal("12.5"),
        Decimal("21.25"),
        Decimal("12.5"),
        Decimal("21.25"),
        Decimal("12.5"),
    ]
