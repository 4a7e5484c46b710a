"""From token usage to money: which price applies where a call went (`endpoints`), the price data
resolved and cached (`book`), and the arithmetic of one call (`rates`)."""

from .book import ModelPricing, PriceBook, price_usage
from .endpoints import Endpoint, PriceRoute, RouteKind, classify
from .rates import Cost

__all__ = [
    "Cost",
    "Endpoint",
    "ModelPricing",
    "PriceBook",
    "PriceRoute",
    "RouteKind",
    "classify",
    "price_usage",
]
