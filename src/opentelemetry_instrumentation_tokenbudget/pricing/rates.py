"""A model's prices, compiled once, applied to one call's usage in microseconds.

genai-prices' own `ModelPrice.calc_price` re-derives its unit registry, validates and decomposes the
usage on every call, too slow for the hot path. `Rates` does that work once per price and keeps, per
call, only what depends on the usage, in the same order and with the same `Decimal` operations, so that the
totals are equal, not close: each priced unit is charged for its "leaf" count (its usage count less
the leaf counts of the priced units below it, so that e.g. cached audio tokens priced on their own
are not charged again as input tokens); a tiered price takes the rate of the highest tier whose
start the call's input tokens pass, for all the tokens; a per-request fee counts 1. The test suite
checks the totals against `genai_prices.calc_price` across the price data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import ROUND_CEILING, Decimal
from functools import cache
from typing import TYPE_CHECKING, Any, Final, NamedTuple, TypeVar

from ..semconv import TokenbudgetPriceSourceValues
from ..usage import TokenUsage

if TYPE_CHECKING:
    from genai_prices.units import UnitRegistry

_ZERO: Final = Decimal(0)
PICODOLLARS_EXPONENT: Final = -12
PICODOLLARS_PER_USD: Final = 10**-PICODOLLARS_EXPONENT
"""The unit of budgets and stores: every per-token price of the data is a whole number of them."""
MAX_PICODOLLARS: Final = 2**63 - 1
"""The most one ledger entry holds: SQLite INTEGER and Redis HINCRBY are signed 64-bit."""
_PICODOLLARS_PER_USD_DECIMAL: Final = Decimal(PICODOLLARS_PER_USD)
"""A Decimal, so that each conversion does not turn the int into one again."""


def usd_to_picodollars(amount: Decimal) -> int:
    """Round up, so that what a ledger holds is never less than what was spent."""
    return int((amount * _PICODOLLARS_PER_USD_DECIMAL).to_integral_value(rounding=ROUND_CEILING))


def picodollars_to_usd(amount: int) -> Decimal:
    return Decimal(amount) / PICODOLLARS_PER_USD


_REQUESTS: Final = "requests"
_Amount = TypeVar("_Amount", int, Decimal)

# genai-prices' usage key -> the `TokenUsage` field holding it, where the names differ.
_FIELD_FOR_USAGE_KEY: Final[Mapping[str, str]] = {"output_reasoning_tokens": "reasoning_tokens"}
_USAGE_FIELDS: Final = frozenset(TokenUsage.__dataclass_fields__)

# Where a unit's charge goes in the breakdown on the span.
_INPUT, _CACHE_READ, _CACHE_WRITE, _OUTPUT, _FEES = range(5)


@cache
def unit_registry() -> UnitRegistry:
    from genai_prices.data_units import unit_data
    from genai_prices.units import UnitRegistry

    return UnitRegistry(unit_data)


class Cost:
    """The cost of one call in USD, exact, with its breakdown: `total`, and the token parts `input`,
    `cache_read`, `cache_write` and `output` (`total` also holds per-request and per-tool-use fees,
    which are in none of the parts).

    Nearly every price is a whole number of picodollars per unit, and so is every call's cost at it:
    such a cost is kept in those integers (`in_picodollars`) and its Decimals are made only when read,
    since a call needs no more than floats for the span (`float_total`, `float_parts`) and the integer
    total for budgets (`spent_picodollars`). Other costs are kept as the exact Decimals they were
    computed as (`in_usd`).
    """

    __slots__ = ("_picodollars", "_usd", "inferred", "source", "version")

    def __init__(
        self,
        picodollars: tuple[int, int, int, int, int] | None,
        usd: tuple[Decimal, Decimal, Decimal, Decimal, Decimal] | None,
        source: TokenbudgetPriceSourceValues,
        version: str,
        inferred: bool,
    ) -> None:
        # (total, input, cache_read, cache_write, output), one of the two.
        self._picodollars = picodollars
        self._usd = usd
        self.source = source
        self.version = version
        self.inferred = inferred
        """The price was found by the model's name alone (a gateway or an unknown host)."""

    @classmethod
    def in_picodollars(
        cls,
        total: int,
        parts: Sequence[int],
        *,
        source: TokenbudgetPriceSourceValues,
        version: str,
        inferred: bool = False,
    ) -> Cost:
        """`parts` by `_INPUT`, `_CACHE_READ`, `_CACHE_WRITE`, `_OUTPUT` (and `_FEES`, in the total only)."""
        return cls(_breakdown(total, parts), None, source, version, inferred)

    @classmethod
    def in_usd(
        cls,
        total: Decimal,
        parts: Sequence[Decimal],
        *,
        source: TokenbudgetPriceSourceValues,
        version: str,
        inferred: bool = False,
    ) -> Cost:
        """`parts` as for `in_picodollars`."""
        return cls(None, _breakdown(total, parts), source, version, inferred)

    @property
    def total(self) -> Decimal:
        return self._amount(0)

    @property
    def input(self) -> Decimal:
        return self._amount(1)

    @property
    def cache_read(self) -> Decimal:
        return self._amount(2)

    @property
    def cache_write(self) -> Decimal:
        return self._amount(3)

    @property
    def output(self) -> Decimal:
        return self._amount(4)

    @property
    def total_picodollars(self) -> int | None:
        """`total` in whole picodollars, when the prices are whole picodollars per unit."""
        return None if self._picodollars is None else self._picodollars[0]

    def spent_picodollars(self) -> int:
        """`total` in whole picodollars, rounded up: what budgets and spend limits count."""
        whole = self._picodollars
        return whole[0] if whole is not None else usd_to_picodollars(self.total)

    def float_total(self) -> float:
        """`total` as a float, correctly rounded from the exact amount, as `float_parts` are."""
        whole = self._picodollars
        return whole[0] / PICODOLLARS_PER_USD if whole is not None else float(self.total)

    def float_parts(self) -> tuple[float, float, float, float]:
        """`input`, `cache_read`, `cache_write` and `output` as floats, each correctly rounded from the
        exact amount (int / int is, as float(Decimal) is, without the trip through a string)."""
        whole = self._picodollars
        if whole is not None:
            return (
                whole[1] / PICODOLLARS_PER_USD,
                whole[2] / PICODOLLARS_PER_USD,
                whole[3] / PICODOLLARS_PER_USD,
                whole[4] / PICODOLLARS_PER_USD,
            )
        return (float(self.input), float(self.cache_read), float(self.cache_write), float(self.output))

    def _amount(self, index: int) -> Decimal:
        whole = self._picodollars
        if whole is not None:
            return _usd(whole[index])
        assert self._usd is not None  # one of the two is always set
        return self._usd[index]

    def __repr__(self) -> str:
        return (
            f"Cost(total={self.total}, input={self.input}, cache_read={self.cache_read},"
            f" cache_write={self.cache_write}, output={self.output}, source={self.source.value!r},"
            f" version={self.version!r}, inferred={self.inferred})"
        )


class TokenRates(NamedTuple):
    """A price that is linear in input and output tokens, in whole picodollars, for calls of at most
    `max_input_tokens` input tokens (below a long-context tier's start)."""

    per_call: int
    per_input_token: int
    per_output_token: int
    max_input_tokens: int


_NOT_YET: Final = object()
_NO_TIER: Final = 2**63 - 1


class Rates:
    """One set of prices (one `genai_prices.types.ModelPrice`), ready to apply."""

    __slots__ = ("_charges", "_first_tier_start", "_leaves", "_linear", "_tiered", "_whole_charges")

    def __init__(self, model_price: Any, *, validate: bool = True) -> None:
        """`model_price`: a genai-prices `ModelPrice`. Raises (KeyError, ValueError) when genai-prices
        would not price with it: an unknown or invalid price key, or (`validate`) a set of prices that
        leaves some combination of units without a price. The user's own prices are not validated:
        a cache price without its parent falls back to the input price, as it always did."""
        from genai_prices.types import TieredPrices
        from genai_prices.validation import validate_priced_units

        registry = unit_registry()
        priced: list[tuple[Any, Decimal, tuple[tuple[int, Decimal], ...]]] = []
        for key, value in vars(model_price).items():
            if key.startswith("_") or value is None:
                continue
            unit = registry.unit_for_price_key(key)
            if isinstance(value, TieredPrices):
                # Highest start first: the first tier the input passes is the one that applies.
                tiers = tuple(sorted(((tier.start, tier.price) for tier in value.tiers), reverse=True))
                priced.append((unit, value.base, tiers))
            elif isinstance(value, Decimal) and value.is_finite() and value >= 0:
                priced.append((unit, value, ()))
            else:
                raise ValueError(f"price {key}={value!r} is not a finite non-negative price")
        if validate:
            validate_priced_units([unit for unit, _, _ in priced], registry)
        # Leaf counts are computed most specific unit first; a unit's descendants (the priced units
        # whose dimensions include all of its own) therefore come before it.
        leaf_units = sorted(
            (unit for unit, _, _ in priced if unit.usage_key != _REQUESTS),
            key=lambda unit: (-len(unit.dimensions), unit.usage_key),
        )
        leaf_index = {unit.usage_key: position for position, unit in enumerate(leaf_units)}
        self._leaves: tuple[tuple[str | None, tuple[int, ...]], ...] = tuple(
            (
                _field_for(unit.usage_key),
                tuple(
                    leaf_index[other.usage_key]
                    for other in leaf_units
                    if other is not unit and unit.dimensions.items() <= other.dimensions.items()
                ),
            )
            for unit in leaf_units
        )
        # Charged in the order of the price's keys, the order genai-prices sums in (a Decimal sum
        # may round at each step). A leaf index of -1 is a per-request fee: one request.
        self._charges: tuple[tuple[int, Decimal, tuple[tuple[int, Decimal], ...], int, int], ...] = tuple(
            (
                -1 if unit.usage_key == _REQUESTS else leaf_index[unit.usage_key],
                price,
                tiers,
                unit.per,
                _part(unit.dimensions),
            )
            for unit, price, tiers in priced
        )
        self._tiered = any(tiers for _, _, tiers in priced)
        self._whole_charges = _in_picodollars(self._charges)
        """The same charges with each rate in whole picodollars per unit, or None when a rate is not
        (the Decimal arithmetic then prices every call)."""
        starts = [start for _, _, tiers in priced for start, _ in tiers]
        self._first_tier_start = min(starts) if starts else None
        self._linear: object = _NOT_YET

    def token_rates(self) -> TokenRates | None:
        """What a call of only input and output tokens costs, as integers: for such a call of at most
        `max_input_tokens` input tokens, `apply` gives the same total, exactly (budgets' estimates are
        such calls, one per request). None for prices that are not whole picodollars per token."""
        linear = self._linear
        if linear is _NOT_YET:
            linear = self._linear = self._whole_token_rates()
        return linear  # type: ignore[return-value]  # a TokenRates or None once computed

    def _whole_token_rates(self) -> TokenRates | None:
        # The base rates: a tier applies to calls whose input passes its start, and no start is negative.
        source = TokenbudgetPriceSourceValues.USER
        per_call = self.apply(TokenUsage(), source, "").total
        per_input = self.apply(TokenUsage(input_tokens=1), source, "").total - per_call
        per_output = self.apply(TokenUsage(output_tokens=1), source, "").total - per_call
        whole = [usd * PICODOLLARS_PER_USD for usd in (per_call, per_input, per_output)]
        if any(picodollars != picodollars.to_integral_value() for picodollars in whole):
            return None
        first_tier = self._first_tier_start
        if first_tier is not None and first_tier < 1:
            return None
        return TokenRates(
            per_call=int(whole[0]),
            per_input_token=int(whole[1]),
            per_output_token=int(whole[2]),
            max_input_tokens=_NO_TIER if first_tier is None else first_tier,
        )

    def apply(
        self, usage: TokenUsage, source: TokenbudgetPriceSourceValues, version: str, inferred: bool = False
    ) -> Cost:
        leaves: list[int] = []
        for field, descendants in self._leaves:
            leaf = getattr(usage, field) if field is not None else 0
            for descendant in descendants:
                leaf -= leaves[descendant]
            # An inconsistent usage (more cached than input tokens) is charged for what is there;
            # genai-prices raises on it, and a call must not go unrecorded for it.
            leaves.append(leaf if leaf > 0 else 0)
        input_tokens = usage.input_tokens if self._tiered else 0
        whole = self._whole_charges
        if whole is not None:
            return _whole_cost(whole, leaves, input_tokens, source=source, version=version, inferred=inferred)
        parts = [_ZERO, _ZERO, _ZERO, _ZERO, _ZERO]
        total = _ZERO
        for index, price, tiers, per, part in self._charges:
            count = leaves[index] if index >= 0 else 1
            if not count:
                continue
            rate = price
            for start, tier_price in tiers:
                if input_tokens > start:
                    rate = tier_price
                    break
            charge = rate * Decimal(count) / per
            total += charge
            parts[part] += charge
        return Cost.in_usd(total, parts, source=source, version=version, inferred=inferred)


WholeCharge = tuple[int, int, tuple[tuple[int, int], ...], int]


def _in_picodollars(
    charges: tuple[tuple[int, Decimal, tuple[tuple[int, Decimal], ...], int, int], ...],
) -> tuple[WholeCharge, ...] | None:
    def whole(price: Decimal, per: int) -> int | None:
        picodollars = price * PICODOLLARS_PER_USD / per
        return int(picodollars) if picodollars == picodollars.to_integral_value() else None

    result: list[WholeCharge] = []
    for index, price, tiers, per, part in charges:
        rate = whole(price, per)
        tier_rates = [(start, whole(tier_price, per)) for start, tier_price in tiers]
        if rate is None or any(tier_rate is None for _, tier_rate in tier_rates):
            return None
        result.append((index, rate, tuple((start, r) for start, r in tier_rates if r is not None), part))
    return tuple(result)


def _whole_cost(
    charges: tuple[WholeCharge, ...],
    leaves: list[int],
    input_tokens: int,
    *,
    source: TokenbudgetPriceSourceValues,
    version: str,
    inferred: bool,
) -> Cost:
    """`Rates.apply` in integers: each charge is a whole number of picodollars, so the sums are exact
    and equal to the Decimal ones (which are exact too at these magnitudes)."""
    parts = [0, 0, 0, 0, 0]
    total = 0
    for index, base_rate, tiers, part in charges:
        count = leaves[index] if index >= 0 else 1
        if not count:
            continue
        rate = base_rate
        for start, tier_rate in tiers:
            if input_tokens > start:
                rate = tier_rate
                break
        charge = rate * count
        total += charge
        parts[part] += charge
    return Cost.in_picodollars(total, parts, source=source, version=version, inferred=inferred)


def _breakdown(
    total: _Amount, parts: Sequence[_Amount]
) -> tuple[_Amount, _Amount, _Amount, _Amount, _Amount]:
    """(total, input, cache_read, cache_write, output), as a `Cost` keeps them."""
    return (total, parts[_INPUT], parts[_CACHE_READ], parts[_CACHE_WRITE], parts[_OUTPUT])


def _usd(picodollars: int) -> Decimal:
    return Decimal(picodollars).scaleb(PICODOLLARS_EXPONENT) if picodollars else _ZERO


def _field_for(usage_key: str) -> str | None:
    field = _FIELD_FOR_USAGE_KEY.get(usage_key, usage_key)
    return field if field in _USAGE_FIELDS else None


def _part(dimensions: Mapping[str, str]) -> int:
    kind = dimensions.get("token_type")
    if kind == "cache_read":
        return _CACHE_READ
    if kind == "cache_write":
        return _CACHE_WRITE
    direction = dimensions.get("direction")
    if dimensions.get("family") == "tokens" and direction == "input":
        return _INPUT
    if dimensions.get("family") == "tokens" and direction == "output":
        return _OUTPUT
    return _FEES
