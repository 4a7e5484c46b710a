"""What a call will probably cost, known before it is sent, so that a budget can reserve it.

Input tokens come from the request (`RequestInfo.estimate_input_tokens`). Output tokens depend on the
reservation mode:

- ``"expected"`` (the default): a high percentile (p95) of the recent outputs of the same model,
  capped by the request's ``max_tokens`` / ``max_output_tokens``. Frameworks send the model's maximum
  as ``max_tokens`` (64000 for claude-haiku-4-5), and reserving it would refuse calls that cost a
  cent. The price: a call whose output beats the percentile costs more than it reserved, so a budget
  can be passed by at most the excess of the calls in flight at that moment.
- ``"strict"``: the request's ceiling itself, which makes the estimate an upper bound on the output
  and the limit one that is never passed (as far as the prompt's count is right).

A ceiling or an observed output that is not a whole number of tokens in [0, `MAX_TOKENS`] is ignored:
the caller's own ``max_tokens=-5`` goes to the provider unchanged, to be refused by it, and one absurd
response never reaches the percentile.
"""

from __future__ import annotations

import bisect
import logging
import math
import threading
from collections import OrderedDict, deque
from typing import Final, Literal

from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import GenAiOperationNameValues

from ..adapter import RequestInfo
from ..forksafe import renew_locks_after_fork
from ..pricing import PriceBook, price_usage, usd_to_picodollars
from ..unpriced import UnpricedWarnings
from ..usage import TokenUsage

_logger = logging.getLogger(__name__)

ReservationMode = Literal["expected", "strict"]
RESERVATION_MODES: Final = ("expected", "strict")

DEFAULT_OUTPUT_TOKENS: Final = 256
"""The output assumed for a model before any of its calls has finished: a short chat answer."""

MAX_TOKENS: Final = 10_000_000
"""More tokens than any model reads or writes in one call (the largest context windows hold a few
million): a count above it is a malformed value, not a call."""

_EMBEDDINGS: Final = GenAiOperationNameValues.EMBEDDINGS.value
_UNPRICED_ESTIMATE: Final = "budgets admit its calls with an estimate of $0 and cannot count their cost"


def plausible_tokens(value: object) -> int | None:
    """`value` if it is a token count that can be believed, else None."""
    if type(value) is int and 0 <= value <= MAX_TOKENS:
        return value
    return None


class _Recent:
    """The last outputs of one model, in arrival order and sorted, with the percentile cached."""

    __slots__ = ("arrivals", "percentile", "sorted")

    def __init__(self, size: int) -> None:
        self.arrivals: deque[int] = deque(maxlen=size)
        self.sorted: list[int] = []
        self.percentile = 0


class OutputTokenPercentiles:
    """A high percentile of the last `window` output counts per (provider, model), for at most
    `max_models` models (the least recently seen are forgotten): memory is bounded by
    `window * max_models` integers whatever the traffic.
    """

    def __init__(
        self,
        initial: int = DEFAULT_OUTPUT_TOKENS,
        *,
        quantile: float = 0.95,
        window: int = 100,
        max_models: int = 1024,
    ) -> None:
        if not 0 < quantile <= 1 or window < 1 or max_models < 1:
            raise ValueError("quantile must be in (0, 1], window and max_models at least 1")
        self._initial = initial
        self._quantile = quantile
        self._window = window
        self._max_models = max_models
        self._lock = threading.Lock()
        renew_locks_after_fork(self, "_lock")
        self._models: OrderedDict[tuple[str, str], _Recent] = OrderedDict()

    def get(self, provider: str, model: str) -> int:
        recent = self._models.get((provider, model))
        return self._initial if recent is None else recent.percentile

    def observe(self, provider: str, model: str, output_tokens: object) -> None:
        tokens = plausible_tokens(output_tokens)
        if tokens is None:
            return
        key = (provider, model)
        # By hand rather than `with`, on every call's path: see `MemoryStore.reserve`.
        lock = self._lock
        lock.acquire()
        try:
            models = self._models
            recent = models.get(key)
            if recent is None:
                recent = models[key] = _Recent(self._window)
                if len(models) > self._max_models:
                    models.popitem(last=False)
            else:
                models.move_to_end(key)
            if len(recent.arrivals) == self._window:
                del recent.sorted[bisect.bisect_left(recent.sorted, recent.arrivals[0])]
            recent.arrivals.append(tokens)
            bisect.insort(recent.sorted, tokens)
            # The nearest-rank percentile: a value that was observed, never an interpolation.
            rank = math.ceil(self._quantile * len(recent.sorted))
            recent.percentile = recent.sorted[rank - 1 if rank > 1 else 0]
        finally:
            lock.release()


class CostEstimator:
    """The estimated cost of a request in picodollars; 0 for a model nobody has a price for."""

    def __init__(
        self,
        prices: PriceBook,
        outputs: OutputTokenPercentiles | None = None,
        *,
        mode: ReservationMode = "expected",
    ) -> None:
        self._prices = prices
        self.outputs = outputs or OutputTokenPercentiles()
        self._strict = mode == "strict"
        self._unpriced = UnpricedWarnings(_logger)

    def estimate(self, request: RequestInfo) -> int:
        price = self._prices.lookup(request.provider, request.model, request.price_route)
        if price is None:
            self._unpriced.warn(request.provider, request.model, _UNPRICED_ESTIMATE)
            return 0
        # Comparisons rather than min() and max(), whose keyword parsing costs more on every call.
        input_tokens = request.estimate_input_tokens()
        if input_tokens < 0:
            input_tokens = 0
        elif input_tokens > MAX_TOKENS:
            input_tokens = MAX_TOKENS
        output_tokens = self.output_tokens(request)
        rates = price.token_rates()
        if rates is not None and input_tokens <= rates.max_input_tokens:
            # Whole picodollars per token: the same figure as the Decimal price below, in integers.
            per_call, per_input_token, per_output_token, _ = rates
            return per_call + per_input_token * input_tokens + per_output_token * output_tokens
        usage = TokenUsage(input_tokens=input_tokens, output_tokens=output_tokens)
        return usd_to_picodollars(price_usage(price, usage).total)

    def output_tokens(self, request: RequestInfo) -> int:
        if request.operation == _EMBEDDINGS:
            return 0
        ceiling = plausible_tokens(request.max_output_tokens)
        if ceiling is not None and self._strict:
            return ceiling
        expected = self.outputs.get(request.provider, request.model)
        return expected if ceiling is None or expected < ceiling else ceiling


def observe_output(estimator: CostEstimator, request: RequestInfo, usage: TokenUsage) -> None:
    """Teach the estimator a finished call's output (embeddings have none to learn)."""
    if request.operation != _EMBEDDINGS:
        estimator.outputs.observe(request.provider, request.model, usage.output_tokens)
