"""Which price applies to a call, in order: the user's, a local server's (free), the price data's for
the provider behind the URL, and for an unknown host the model's price wherever the data knows it.

Resolutions are cached per (provider, model, route) until genai-prices' data changes: an update
(`genai_prices.UpdatePrices`, or a snapshot the user installs) is a new snapshot object, noticed on
the next call. Prices that depend on the request's time (DeepSeek's off-peak hours) or on the
response (OpenAI's service tier) are resolved per call from the cached model; plain prices are
compiled once (`Rates`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Final

from ..semconv import TokenbudgetPriceSourceValues
from ..usage import TokenUsage
from .endpoints import PriceRoute, RouteKind, route_for_provider
from .rates import Cost, Rates, TokenRates

_logger = logging.getLogger(__name__)

_USER: Final = TokenbudgetPriceSourceValues.USER
_LOCAL: Final = TokenbudgetPriceSourceValues.LOCAL_MODEL
_DATA: Final = TokenbudgetPriceSourceValues.GENAI_PRICES
MAX_CACHED_MODELS: Final = 4096
"""Model names can come from responses: past this many resolutions the cache starts again."""

USER_PRICE_KEYS: Final = frozenset(
    {
        "input_mtok",
        "output_mtok",
        "cache_read_mtok",
        "cache_write_mtok",
        "cache_write_1h_mtok",
        "output_reasoning_mtok",
        "input_audio_mtok",
        "output_audio_mtok",
        "requests_kcount",
        "web_searches_kcount",
    }
)


class ModelPricing:
    """How one model is priced where it was called; `cost()` prices one call."""

    __slots__ = (
        "_compiled",
        "_info",
        "_lock",
        "_minute_aligned",
        "_resolved",
        "_static",
        "_timed",
        "_variants_apply",
        "inferred",
        "source",
        "version",
    )

    def __init__(
        self,
        source: TokenbudgetPriceSourceValues,
        version: str,
        *,
        static: Rates | None = None,
        model_info: Any = None,
        variants_apply: bool = True,
        inferred: bool = False,
    ) -> None:
        self.source = source
        self.version = version
        self.inferred = inferred
        self._static = static
        self._info = model_info
        self._variants_apply = variants_apply
        # Prices that change with the time of the request: conditional prices (DeepSeek's off-peak
        # hours, a new price from a date) or variants that apply in some period only.
        self._timed = model_info is not None and (
            isinstance(model_info.prices, list)
            or any(variant.constraint is not None for variant in model_info.price_variants or ())
        )
        self._compiled: dict[object, tuple[object, Rates]] = {}
        self._lock = threading.Lock()
        # Every constraint of the data changes at a UTC midnight or at a time of day given in whole
        # minutes, so within one minute a context resolves to one price: the resolution is kept per
        # minute and context (checked here, for data that would ever say otherwise).
        self._minute_aligned = model_info is not None and _changes_on_whole_minutes(model_info)
        self._resolved: dict[tuple[int, tuple[tuple[str, str], ...]], Rates] = {}

    def cost(
        self, usage: TokenUsage, at: float | None = None, context: Mapping[str, str] | None = None
    ) -> Cost:
        """`at`: when the request was sent (epoch seconds; now when None); `context`: what the response
        said that prices can depend on (``{"service_tier": "flex"}``)."""
        rates = self._static
        if rates is None or context:
            rates = self._rates_at(at, context)
        return rates.apply(usage, self.source, self.version, self.inferred)

    def token_rates(self) -> TokenRates | None:
        """The price of a call of only input and output tokens as integers (`Rates.token_rates`), for
        prices that do not change with the time of the call; None otherwise."""
        static = self._static
        return None if static is None else static.token_rates()

    def _rates_at(self, at: float | None, context: Mapping[str, str] | None) -> Rates:
        info = self._info
        if info is None:  # the user's or a local server's price: the same at any time
            assert self._static is not None
            return self._static
        if at is None:
            at = time.time()
        if not self._minute_aligned:
            return self._resolve_rates(info, at, context)
        key = (int(at // 60), tuple(context.items()) if context else ())
        rates = self._resolved.get(key)
        if rates is None:
            rates = self._resolve_rates(info, at, context)
            with self._lock:
                if len(self._resolved) >= 64:
                    self._resolved.clear()
                self._resolved[key] = rates
        return rates

    def _resolve_rates(self, info: Any, at: float, context: Mapping[str, str] | None) -> Rates:
        # genai-prices applies the request's context only to models of the provider that was asked
        # for, not to those it found under a fallback provider.
        price_context = context if context and self._variants_apply else None
        when: datetime | None = None
        if self._timed:
            when = datetime.fromtimestamp(at, timezone.utc)
            standard = info.get_prices(when)
        else:
            standard = info.prices
        # The prices in force are those of `standard` (an object of the data, the same for every
        # call in its period), overridden by the variants that the context and the time select:
        # the key names exactly that, so that a resolved price is compiled once, not per call.
        key: object = id(standard)
        if price_context is not None:
            key = (id(standard), tuple(sorted(price_context.items())), self._active_variants(when))
        compiled = self._compiled.get(key)
        if compiled is None:
            model_price = standard
            if price_context is not None:
                when = when or datetime.fromtimestamp(at, timezone.utc)
                model_price = info.get_prices(when, dict(price_context))
            # `standard` is kept with its compiled price, so that its id is not reused meanwhile.
            compiled = (standard, Rates(model_price))
            with self._lock:
                if len(self._compiled) > 64:
                    self._compiled.clear()
                self._compiled[key] = compiled
        return compiled[1]

    def _active_variants(self, when: datetime | None) -> tuple[bool, ...]:
        if when is None:  # no variant of this model depends on the time
            return ()
        return tuple(
            variant.constraint.active(when)
            for variant in self._info.price_variants or ()
            if variant.constraint is not None
        )


def _changes_on_whole_minutes(info: Any) -> bool:
    """True when every time constraint of the model's prices starts and ends on a whole minute (UTC)."""
    constraints = [variant.constraint for variant in info.price_variants or ()]
    if isinstance(info.prices, list):
        constraints.extend(conditional.constraint for conditional in info.prices)
    for constraint in constraints:
        for moment in (getattr(constraint, "start_time", None), getattr(constraint, "end_time", None)):
            if moment is None:
                continue
            offset = moment.utcoffset()
            if moment.second or moment.microsecond or (offset is not None and offset % timedelta(minutes=1)):
                return False
    return True


def _parse_override(spec: Mapping[str, Any], what: str) -> dict[str, Decimal]:
    unknown = set(spec) - USER_PRICE_KEYS
    if unknown:
        raise ValueError(
            f"prices[{what!r}]: unknown key(s) {sorted(unknown)}; expected some of {sorted(USER_PRICE_KEYS)}"
        )
    parsed: dict[str, Decimal] = {}
    for key, raw in spec.items():
        try:
            value = Decimal(str(raw))
        except ArithmeticError as error:
            raise ValueError(f"prices[{what!r}].{key}: {raw!r} is not a number") from error
        if not value.is_finite() or value < 0:
            raise ValueError(f"prices[{what!r}].{key}: {raw!r} must be a finite number >= 0")
        parsed[key] = value
    return parsed


def _normal(model: str) -> str:
    return model.strip().lower()


def _data_version(snapshot: Any) -> str:
    from genai_prices import __version__

    if getattr(snapshot, "from_auto_update", False):
        return f"genai-prices {__version__}, data of {snapshot.timestamp.isoformat(timespec='seconds')}"
    return f"genai-prices {__version__}"


class PriceBook:
    """Resolves a model's price where it was called, and remembers models that have none.

    `overrides` maps a model name, or "provider/model", to per-million-token prices (and per-thousand
    fees): ``{"input_mtok": 0.3, "output_mtok": 1.2, "cache_read_mtok": 0.03, "cache_write_mtok": 0.4}``.
    """

    def __init__(self, overrides: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self._overrides = {
            _normal(name): _parse_override(spec, name) for name, spec in (overrides or {}).items()
        }
        self._user_prices: dict[str, ModelPricing] = {}
        self._local: ModelPricing | None = None
        # (provider, model, route) -> (the data snapshot it came from, or None; the pricing, or None)
        self._cache: dict[tuple[str, str, PriceRoute | None], tuple[object, ModelPricing | None]] = {}
        self._lock = threading.Lock()
        self._snapshot_of: Any = None

    def lookup(self, provider: str, model: str, route: PriceRoute | None = None) -> ModelPricing | None:
        """The model's price, or None when nobody knows it (the call stays unpriced).

        `provider` is `gen_ai.provider.name`; `route` what the endpoint said (None: priced as the
        provider named, the case of spans of other instrumentations)."""
        key = (provider, model, route)
        cached = self._cache.get(key)
        if cached is not None and (cached[0] is None or cached[0] is self._current_snapshot()):
            return cached[1]
        snapshot, pricing = self._resolve(provider, _normal(model), route or route_for_provider(provider))
        with self._lock:
            if len(self._cache) >= MAX_CACHED_MODELS:
                self._cache.clear()
            self._cache[key] = (snapshot, pricing)
        return pricing

    def _current_snapshot(self) -> object:
        get_snapshot = self._snapshot_of
        if get_snapshot is None:
            from genai_prices.data_snapshot import get_snapshot

            self._snapshot_of = get_snapshot
        return get_snapshot()

    def _resolve(self, provider: str, model: str, route: PriceRoute) -> tuple[object, ModelPricing | None]:
        override = self._overrides.get(f"{provider}/{model}") or self._overrides.get(model)
        if override is not None:
            return None, self._user_price(model if model in self._overrides else f"{provider}/{model}")
        if route.kind is RouteKind.LOCAL_SERVER:
            return None, self._local_price()
        snapshot = self._current_snapshot()
        if route.kind is RouteKind.PROVIDER and route.price_provider is not None:
            return snapshot, _from_data(snapshot, model, route.price_provider, inferred=False)
        pricing = _from_data(snapshot, model, None, inferred=True)
        if pricing is None and route.kind is RouteKind.LOCAL_ADDRESS:
            # A model that no price data knows, served at a local address: the user's own.
            return snapshot, self._local_price()
        return snapshot, pricing

    def _user_price(self, name: str) -> ModelPricing:
        pricing = self._user_prices.get(name)
        if pricing is None:
            from genai_prices.types import ModelPrice

            rates = Rates(ModelPrice(**self._overrides[name]), validate=False)
            pricing = ModelPricing(_USER, "user", static=rates)
            self._user_prices[name] = pricing
        return pricing

    def _local_price(self) -> ModelPricing:
        if self._local is None:
            from genai_prices.types import ModelPrice

            self._local = ModelPricing(_LOCAL, "local", static=Rates(ModelPrice(), validate=False))
        return self._local


def _from_data(
    snapshot: Any, model: str, price_provider: str | None, *, inferred: bool
) -> ModelPricing | None:
    try:
        provider, info = snapshot.find_provider_model(model, None, price_provider, None)
    except LookupError:
        if price_provider is not None or "/" not in model:
            return None
        # A gateway's "vendor/model" name (LiteLLM's, Portkey's): genai-prices splits it itself.
        try:
            provider, info = snapshot.find_provider_model(model, None, "litellm", None)
        except LookupError:
            return None
    version = _data_version(snapshot)
    variants_apply = any(info is candidate for candidate in provider.models)
    try:
        static = Rates(info.prices) if not isinstance(info.prices, list) else None
        if static is None:
            # Checked now, so that a price genai-prices cannot apply leaves the model unpriced.
            Rates(info.get_prices(datetime.now(timezone.utc)))
    except (KeyError, ValueError):
        _logger.debug("tokenbudget: genai-prices cannot price %s/%s", provider.id, model, exc_info=True)
        return None
    return ModelPricing(
        _DATA, version, static=static, model_info=info, variants_apply=variants_apply, inferred=inferred
    )


def price_usage(
    pricing: ModelPricing,
    usage: TokenUsage,
    at: float | None = None,
    context: Mapping[str, str] | None = None,
) -> Cost:
    return pricing.cost(usage, at, context)
