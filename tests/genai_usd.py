"""The USD that genai-prices' own `calc_price` gives a usage: what the tests hold our cost to."""

from __future__ import annotations

import genai_prices


def genai_usd(
    provider_id: str,
    model: str,
    *,
    input_tokens: int,
    output_tokens: int = 0,
    cache_read_tokens: int = 0,
    reasoning_tokens: int = 0,
) -> float:
    usage = genai_prices.Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read_tokens,
        output_reasoning_tokens=reasoning_tokens,
    )
    return float(genai_prices.calc_price(usage, model, provider_id=provider_id).total_price)
