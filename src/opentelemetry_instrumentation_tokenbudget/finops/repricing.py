"""Pricing a usage under any model with genai-prices, for the what-if and the advice.

The instrumented process prices through `pricing`; this is the offline side, which may take its time
and needs what the hot path does not: price variants (batch), long-context tiers, model families.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

_BATCH = {"processing": "batch"}


@lru_cache(maxsize=1)
def _snapshot() -> Any:
    from genai_prices import data_snapshot

    return data_snapshot.get_snapshot()


def price(
    provider: str | None,
    model: str,
    *,
    input_tokens: int,
    output_tokens: int,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
    at: datetime | None = None,
    batch: bool = False,
) -> Decimal | None:
    """The cost in USD, or None when genai-prices does not know the model (never a silent 0)."""
    from genai_prices import Usage, calc_price

    usage = Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read_tokens or None,
        cache_write_tokens=cache_write_tokens or None,
    )
    context: Mapping[str, str] | None = _BATCH if batch else None
    for provider_id in (provider, None) if provider else (None,):
        try:
            return calc_price(
                usage, model, provider_id=provider_id, genai_request_timestamp=at, price_context=context
            ).total_price
        except LookupError:
            continue
    return None


def model_info(provider: str | None, model: str) -> Any | None:
    """genai-prices' `ModelInfo`, or None."""
    snapshot = _snapshot()
    for provider_id in (provider, None) if provider else (None,):
        try:
            _, info = snapshot.find_provider_model(model, None, provider_id, None)
        except LookupError:
            continue
        if info is not None:
            return info
    return None


def has_batch_price(provider: str | None, model: str) -> bool:
    info = model_info(provider, model)
    variants = getattr(info, "price_variants", None) or ()
    return any(variant.when.get("processing") == "batch" for variant in variants)


def input_tier_starts(provider: str | None, model: str, at: datetime | None = None) -> tuple[int, ...]:
    """Input-token thresholds past which the whole request pays a higher rate (long-context tiers)."""
    from genai_prices.types import TieredPrices

    info = model_info(provider, model)
    if info is None:
        return ()
    prices = info.get_prices(at or datetime.now().astimezone())
    value = getattr(prices, "input_mtok", None)
    if isinstance(value, TieredPrices):
        return tuple(tier.start for tier in value.tiers)
    return ()
