"""From token usage to money: which price applies where a call went (`endpoints`), the price data
resolved and cached (`book`), and the arithmetic of one call (`rates`)."""

from .book import ModelPricing, PriceBook, price_usage
from .endpoints import Endpoint, PriceRoute, RouteKind, classify
from .rates import (
    MAX_PICODOLLARS,
    PICODOLLARS_PER_USD,
    Cost,
    TokenRates,
    picodollars_to_usd,
    usd_to_picodollars,
)

__all__ = [
    "MAX_PICODOLLARS",
    "PICODOLLARS_PER_USD",
    "Cost",
    "Endpoint",
    "ModelPricing",
    "PriceBook",
    "PriceRoute",
    "RouteKind",
    "TokenRates",
    "classify",
    "picodollars_to_usd",
    "price_usage",
    "usd_to_picodollars",
]
