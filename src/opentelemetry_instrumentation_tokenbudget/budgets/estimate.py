"""What a call will probably cost, known before it is sent, so that a budget can reserve it.

Input tokens come from the request (`RequestInfo.estimate_input_tokens`). Output tokens are the
request's own ceiling (`max_tokens` / `max_output_tokens`) when it gives one, which makes the estimate
an upper bound; otherwise the model's recent average output, learnt from the calls' real usage.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Final

from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import GenAiOperationNameValues

from ..adapter import RequestInfo
from ..pricing import PriceBook, price_usage
from ..unpriced import UnpricedWarnings
from ..usage import TokenUsage
from .store import usd_to_picodollars

_logger = logging.getLogger(__name__)

DEFAULT_OUTPUT_TOKENS: Final = 256
"""The output assumed for a model before any of its calls has finished: a short chat answer."""

_EMBEDDINGS: Final = GenAiOperationNameValues.EMBEDDINGS.value
_UNPRICED_ESTIMATE: Final = "budgets admit its calls with an estimate of $0 and cannot count their cost"


class OutputTokenAverages:
    """A moving average of output tokens per (provider, model), for at most `max_models` models.

    The first `weight` observations of a model are averaged plainly; after that each new one moves
    the average by 1/`weight` of its difference, so that the average follows a change of prompts
    within a few dozen calls while one outlier moves it little.
    """

    def __init__(
        self, initial: int = DEFAULT_OUTPUT_TOKENS, weight: int = 20, max_models: int = 1024
    ) -> None:
        self._initial = initial
        self._weight = weight
        self._max_models = max_models
        self._lock = threading.Lock()
        self._models: OrderedDict[tuple[str, str], tuple[float, int]] = OrderedDict()

    def get(self, provider: str, model: str) -> int:
        entry = self._models.get((provider, model))
        if entry is None:
            return self._initial
        return round(entry[0])

    def observe(self, provider: str, model: str, output_tokens: int) -> None:
        key = (provider, model)
        with self._lock:
            average, count = self._models.pop(key, (float(self._initial), 0))
            count = min(count + 1, self._weight)
            self._models[key] = (average + (output_tokens - average) / count, count)
            if len(self._models) > self._max_models:
                self._models.popitem(last=False)


class CostEstimator:
    """The estimated cost of a request in picodollars; 0 for a model nobody has a price for."""

    def __init__(self, prices: PriceBook, averages: OutputTokenAverages | None = None) -> None:
        self._prices = prices
        self.averages = averages or OutputTokenAverages()
        self._unpriced = UnpricedWarnings(_logger)

    def estimate(self, request: RequestInfo) -> int:
        price = self._prices.lookup(request.provider, request.model, request.price_route)
        if price is None:
            self._unpriced.warn(request.provider, request.model, _UNPRICED_ESTIMATE)
            return 0
        if request.operation == _EMBEDDINGS:
            output_tokens = 0
        elif request.max_output_tokens is not None:
            output_tokens = request.max_output_tokens
        else:
            output_tokens = self.averages.get(request.provider, request.model)
        usage = TokenUsage(input_tokens=request.estimate_input_tokens(), output_tokens=output_tokens)
        return usd_to_picodollars(price_usage(price, usage).total)


def observe_output(estimator: CostEstimator, request: RequestInfo, usage: TokenUsage) -> None:
    """Teach the estimator a finished call's output (embeddings have none to learn)."""
    if request.operation != _EMBEDDINGS:
        estimator.averages.observe(request.provider, request.model, usage.output_tokens)
