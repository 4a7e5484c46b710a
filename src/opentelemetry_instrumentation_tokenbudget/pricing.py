"""From token usage to money.

Prices come from `genai-prices`, resolved once per (provider, model, UTC day) and cached, because a
full `genai_prices.calc_price` costs about 70 microseconds, which is most of the overhead budget of
a call. The per-call arithmetic below applies the resolved per-million-token prices the way
genai-prices does (the whole request pays the tier rate once its input passes the tier's threshold);
the test suite checks the totals against `genai_prices.calc_price`.

User overrides win over the data, and models served locally cost what the user says (0 by default).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .semconv import TokenbudgetPriceSourceValues
from .usage import TokenUsage

if TYPE_CHECKING:
    from genai_prices.types import TieredPrices

_logger = logging.getLogger(__name__)

_PER_MILLION = Decimal(1_000_000)
_ZERO = Decimal(0)

# Providers whose models we never look up in the public price data: a local model that happens to
# share a name with a hosted one costs what its owner says, not the hosted price.
LOCAL_PROVIDERS = frozenset({"ollama", "vllm", "lm_studio", "llama_cpp", "openai_compatible"})


@dataclass(frozen=True, slots=True)
class Tier:
    """Price per million tokens for a request whose input passes `start` tokens."""

    start: int
    per_million: Decimal


@dataclass(frozen=True, slots=True)
class TokenPrice:
    """Price per million tokens of one token kind, with its long-context tiers (ascending)."""

    per_million: Decimal
    tiers: tuple[Tier, ...] = ()

    def rate_for(self, request_input_tokens: int) -> Decimal:
        rate = self.per_million
        for tier in self.tiers:
            if request_input_tokens > tier.start:
                rate = tier.per_million
        return rate


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """Everything needed to price a call of one model. Missing cache prices fall back to input."""

    input: TokenPrice
    output: TokenPrice
    cache_read: TokenPrice | None
    cache_write: TokenPrice | None
    source: TokenbudgetPriceSourceValues
    version: str
    cache_write_1h: TokenPrice | None = None
    """Anthropic's one-hour cache writes; missing, they fall back to `cache_write`."""


# Not frozen: one is built per call, and a frozen dataclass's __init__ costs four times as much.
@dataclass(slots=True)
class Cost:
    """The cost of one call in USD, exact, with its breakdown by token kind."""

    total: Decimal
    input: Decimal
    cache_read: Decimal
    cache_write: Decimal
    output: Decimal
    source: TokenbudgetPriceSourceValues
    version: str


def price_usage(price: ModelPrice, usage: TokenUsage) -> Cost:
    request_input = usage.input_tokens

    def charge(tokens: int, token_price: TokenPrice) -> Decimal:
        if tokens == 0:
            return _ZERO
        return token_price.rate_for(request_input) * tokens / _PER_MILLION

    input_cost = charge(usage.uncached_input_tokens, price.input)
    cache_read_cost = charge(usage.cache_read_tokens, price.cache_read or price.input)
    cache_write_price = price.cache_write or price.input
    long_lived_writes = min(usage.cache_write_1h_tokens, usage.cache_write_tokens)
    cache_write_cost = charge(usage.cache_write_tokens - long_lived_writes, cache_write_price) + charge(
        long_lived_writes, price.cache_write_1h or cache_write_price
    )
    output_cost = charge(usage.output_tokens, price.output)
    return Cost(
        total=input_cost + cache_read_cost + cache_write_cost + output_cost,
        input=input_cost,
        cache_read=cache_read_cost,
        cache_write=cache_write_cost,
        output=output_cost,
        source=price.source,
        version=price.version,
    )


def _token_price(value: Decimal | TieredPrices | None) -> TokenPrice | None:
    if value is None:
        return None
    if isinstance(value, Decimal):
        return TokenPrice(value)
    tiers = tuple(Tier(tier.start, tier.price) for tier in sorted(value.tiers, key=lambda t: t.start))
    return TokenPrice(value.base, tiers)


def _price_from_override(spec: Mapping[str, Any], what: str) -> ModelPrice:
    known = {"input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok", "cache_write_1h_mtok"}
    unknown = set(spec) - known
    if unknown:
        raise ValueError(
            f"prices[{what!r}]: unknown key(s) {sorted(unknown)}; expected some of {sorted(known)}"
        )

    def read(key: str) -> TokenPrice | None:
        if key not in spec:
            return None
        try:
            value = Decimal(str(spec[key]))
        except ArithmeticError as error:
            raise ValueError(f"prices[{what!r}].{key}: {spec[key]!r} is not a number") from error
        if value < 0 or not value.is_finite():
            raise ValueError(f"prices[{what!r}].{key}: {spec[key]!r} must be a finite number >= 0")
        return TokenPrice(value)

    input_price = read("input_mtok") or TokenPrice(_ZERO)
    return ModelPrice(
        input=input_price,
        output=read("output_mtok") or TokenPrice(_ZERO),
        cache_read=read("cache_read_mtok"),
        cache_write=read("cache_write_mtok"),
        cache_write_1h=read("cache_write_1h_mtok"),
        source=TokenbudgetPriceSourceValues.USER,
        version="user",
    )


_LOCAL_MODEL_PRICE = ModelPrice(
    input=TokenPrice(_ZERO),
    output=TokenPrice(_ZERO),
    cache_read=None,
    cache_write=None,
    source=TokenbudgetPriceSourceValues.LOCAL_MODEL,
    version="local",
)


def _utc_today() -> date:
    return datetime.now(timezone.utc).date()


class PriceBook:
    """Resolves a model's price once per UTC day and remembers models that have none.

    `overrides` maps a model name, or "provider/model", to per-million-token prices:
    ``{"input_mtok": 0.3, "output_mtok": 1.2, "cache_read_mtok": 0.03, "cache_write_mtok": 0.4}``.
    """

    def __init__(
        self,
        overrides: Mapping[str, Mapping[str, Any]] | None = None,
        today: Callable[[], date] = _utc_today,
    ) -> None:
        self._overrides = {
            name.lower(): _price_from_override(spec, name) for name, spec in (overrides or {}).items()
        }
        self._today = today
        self._cache: dict[tuple[str, str], tuple[date, ModelPrice | None]] = {}
        self._lock = threading.Lock()

    def lookup(self, provider: str, model: str) -> ModelPrice | None:
        """The model's price today, or None when nobody knows it (the call stays unpriced)."""
        key = (provider, model)
        today = self._today()
        cached = self._cache.get(key)
        if cached is not None and cached[0] == today:
            return cached[1]
        price = self._resolve(provider, model, today)
        with self._lock:
            self._cache[key] = (today, price)
        return price

    def _resolve(self, provider: str, model: str, today: date) -> ModelPrice | None:
        lowered = model.lower()
        override = self._overrides.get(f"{provider}/{lowered}") or self._overrides.get(lowered)
        if override is not None:
            return override
        if provider in LOCAL_PROVIDERS:
            return _LOCAL_MODEL_PRICE
        return _resolve_from_genai_prices(provider, model, today)


def _resolve_from_genai_prices(provider: str, model: str, today: date) -> ModelPrice | None:
    # Imported here: genai-prices takes ~0.2 s to import, which applications should not pay at start-up.
    from genai_prices import __version__ as data_version
    from genai_prices import data_snapshot

    try:
        _, model_info = data_snapshot.get_snapshot().find_provider_model(model, None, provider, None)
    except LookupError:
        return None
    noon = datetime(today.year, today.month, today.day, 12, tzinfo=timezone.utc)
    prices = model_info.get_prices(noon)
    input_price = _token_price(getattr(prices, "input_mtok", None))
    output_price = _token_price(getattr(prices, "output_mtok", None))
    if input_price is None and output_price is None:
        _logger.debug("genai-prices has no token prices for %s/%s", provider, model)
        return None
    return ModelPrice(
        input=input_price or TokenPrice(_ZERO),
        output=output_price or TokenPrice(_ZERO),
        cache_read=_token_price(getattr(prices, "cache_read_mtok", None)),
        cache_write=_token_price(getattr(prices, "cache_write_mtok", None)),
        cache_write_1h=_token_price(getattr(prices, "cache_write_1h_mtok", None)),
        source=TokenbudgetPriceSourceValues.GENAI_PRICES,
        version=f"genai-prices {data_version}",
    )
