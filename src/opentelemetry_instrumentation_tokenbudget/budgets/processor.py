"""`BudgetSpanProcessor`: counts into the budgets the GenAI calls that other instrumentations traced.

Calls made through our wrappers are settled by the wrappers themselves, whatever the sampler decided
(an unsampled span never reaches a processor). This processor covers the rest: finished inference
spans of other instrumentations (another provider SDK's, OpenLLMetry's, openinference's) that carry
token counts. It prices those that have no cost of their own and settles them into the same ledger.

Each call is counted once:

- our own spans are skipped: the wrapper has settled them;
- a span that starts while one of our calls is in progress (the Anthropic SDK starts its own CLIENT
  span inside ours) is the same call, so it is skipped; so is a span that was current when one of
  our calls began (an instrumentation that wraps the SDK outside ours);
- only inference operations are counted (``chat``, ``text_completion``, ``generate_content``,
  ``embeddings``), never agent or workflow spans, whose token counts sum their children's.

It never blocks the thread that ends a span: pricing and the store's round trip happen on one
background thread, fed through a bounded deque (spans beyond it are dropped and logged): appending
to a deque takes no lock, where a `queue.Queue` takes two per span. Its memory is
bounded. There is no `remove_span_processor`, so after `uninstrument()` it stays attached, inert.
Only spans that were sampled reach it: an unsampled span of another instrumentation is not counted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Final

from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_OPERATION_NAME,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_SYSTEM,
    GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
    GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
    GenAiOperationNameValues,
)
from opentelemetry.util.types import AttributeValue

from ..attribution import call_attribution
from ..call import CALL_IN_PROGRESS_KEY, CURRENCY, UPSTREAM_CACHE_WRITE_INPUT_TOKENS
from ..forksafe import renew_after_fork, renew_locks_after_fork
from ..pricing import PriceBook, price_usage
from ..semconv import GEN_AI_USAGE_COST_AMOUNT, GEN_AI_USAGE_COST_CURRENCY
from ..unpriced import UnpricedWarnings
from ..usage import TokenUsage
from .guard import BudgetGuard, call_attributes

_logger = logging.getLogger(__name__)

INFERENCE_OPERATIONS: Final = frozenset(
    operation.value
    for operation in (
        GenAiOperationNameValues.CHAT,
        GenAiOperationNameValues.TEXT_COMPLETION,
        GenAiOperationNameValues.GENERATE_CONTENT,
        GenAiOperationNameValues.EMBEDDINGS,
    )
)
_UNPRICED_FOREIGN_SPAN: Final = "budgets cannot count the spans of other instrumentations that call it"
# Costs in USD that other instrumentations put on their spans: LiteLLM's (its own price of the call,
# cache reads included, which its spans do not count apart), OpenLIT's.
_FOREIGN_COST_KEYS: Final = ("gen_ai.cost.total_cost", "gen_ai.usage.cost")
_UNBOUNDED: Final = float("inf")
# The cache token counts as OpenLLMetry and others spell them, before the conventions' dotted names.
_LEGACY_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read_input_tokens"
_LEGACY_CACHE_CREATION_INPUT_TOKENS: Final = "gen_ai.usage.cache_creation_input_tokens"
MAX_TRACKED_SPANS: Final = 10_000
MAX_PENDING_SPANS: Final = 10_000
# The worker pauses (sleep(0)) after this many spans in a row: short enough that the threads ending
# spans get the GIL back soon, long enough that a backlog still drains fast (benchmarks/README.md).
_SPANS_BETWEEN_PAUSES: Final = 16


# Not frozen: the caller's thread builds one per span (see `usage.TokenUsage`).
@dataclass(slots=True)
class _Finished:
    attributes: Mapping[str, AttributeValue]
    attribution: Mapping[str, AttributeValue]
    ended_at: float


def _scope_name(span: ReadableSpan) -> str | None:
    scope = getattr(span, "instrumentation_scope", None)
    return scope.name if scope is not None else None


class _BoundedMap:
    """Span id -> value for spans still open, forgetting the oldest past `capacity` (spans never ended)."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._lock = threading.Lock()
        renew_locks_after_fork(self, "_lock")
        self._items: OrderedDict[int, object] = OrderedDict()

    def put(self, span_id: int, value: object) -> None:
        with self._lock:
            self._items[span_id] = value
            if len(self._items) > self._capacity:
                self._items.popitem(last=False)

    def pop(self, span_id: int) -> object | None:
        if not self._items:
            return None
        with self._lock:
            return self._items.pop(span_id, None)


class BudgetSpanProcessor(SpanProcessor):
    def __init__(
        self,
        guard: BudgetGuard,
        prices: PriceBook,
        *,
        own_scope: str,
        baggage_attribution: frozenset[str] = frozenset(),
        max_pending: int = MAX_PENDING_SPANS,
    ) -> None:
        self._guard = guard
        self._prices = prices
        self._own_scope = own_scope
        self._baggage_attribution = baggage_attribution
        self._covered = _BoundedMap(MAX_TRACKED_SPANS)
        self._attribution = _BoundedMap(MAX_TRACKED_SPANS)
        self._max_pending = max_pending
        self._pending: deque[_Finished] = deque()
        # Set by a producer when it hands over a span, cleared by the worker before it sleeps.
        self._wake = threading.Event()
        # True while the worker holds a span it took from `_pending`; with `_pending` empty and this
        # False, everything handed over is settled.
        self._busy = False
        self._worker: threading.Thread | None = None
        self._worker_lock = threading.Lock()
        self._active = True
        self._dropped = 0
        self._unpriced = UnpricedWarnings(_logger)
        renew_after_fork(self._after_fork)

    def _after_fork(self) -> None:
        # The worker thread did not survive the fork, and the spans it had yet to settle are the
        # parent's, which settles them: the child starts empty, and its first span starts a worker.
        self._pending.clear()
        self._busy = False
        self._wake = threading.Event()
        self._worker = None
        self._worker_lock = threading.Lock()

    # ---- what our wrappers tell it ---------------------------------------------------------------

    def cover(self, span_id: int) -> None:
        """The span `span_id` was current when one of our calls began: its cost is that call's."""
        if self._active and span_id:
            self._covered.put(span_id, True)

    # ---- SpanProcessor ---------------------------------------------------------------------------

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if not self._active or _scope_name(span) == self._own_scope:
            return  # our own calls are budgeted by the wrappers
        try:
            span_id = span.get_span_context().span_id
            # The SDK passes the context the span was started with, or None for the current one.
            context = parent_context if parent_context is not None else otel_context.get_current()
            if context.get(CALL_IN_PROGRESS_KEY) is not None:
                self._covered.put(span_id, True)
                return
            attribution = call_attribution(self._baggage_attribution, context)
            if attribution:
                self._attribution.put(span_id, attribution)
        except Exception:
            _logger.debug("tokenbudget: budget processor on_start failed", exc_info=True)

    def on_end(self, span: ReadableSpan) -> None:
        if not self._active or _scope_name(span) == self._own_scope:
            return
        try:
            context = span.get_span_context()
            span_id = context.span_id if context is not None else 0
            covered = self._covered.pop(span_id)
            attribution = self._attribution.pop(span_id)
            if covered is not None:
                return
            attributes = span.attributes or {}
            if attributes.get(GEN_AI_OPERATION_NAME) not in INFERENCE_OPERATIONS:
                return
            if GEN_AI_USAGE_INPUT_TOKENS not in attributes and GEN_AI_USAGE_OUTPUT_TOKENS not in attributes:
                return
            # The guard's clock, read as the span ends, rather than the span's end time: the same
            # instant, measured as the wrappers measure it, so that both pick the same window.
            finished = _Finished(
                # Not copied: the SDK made them immutable when the span ended.
                attributes,
                attribution if isinstance(attribution, Mapping) else {},
                self._guard.now(),
            )
            self._enqueue(finished)
        except Exception:
            _logger.debug("tokenbudget: budget processor on_end failed", exc_info=True)

    def shutdown(self) -> None:
        self.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Wait until every span handed over so far is settled, or the timeout passes."""
        deadline = time.monotonic() + timeout_millis / 1000
        while self._pending or self._busy:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.001)
        return True

    def close(self) -> None:
        self._active = False
        self._wake.set()

    # ---- the background thread -------------------------------------------------------------------

    def _enqueue(self, finished: _Finished) -> None:
        if len(self._pending) >= self._max_pending:
            self._dropped += 1
            if self._dropped == 1 or self._dropped % 1000 == 0:
                _logger.warning(
                    "tokenbudget: %d GenAI spans of other instrumentations were not counted into budgets:"
                    " the queue of spans waiting to be priced is full",
                    self._dropped,
                )
            return
        self._pending.append(finished)
        if not self._wake.is_set():
            self._wake.set()
        if self._worker is None:
            with self._worker_lock:
                if self._worker is None:
                    self._worker = threading.Thread(
                        target=self._work, name="tokenbudget-span-processor", daemon=True
                    )
                    self._worker.start()

    def _work(self) -> None:
        pending = self._pending
        settled_since_pause = 0
        while self._active:
            self._busy = True
            try:
                finished = pending.popleft()
            except IndexError:
                self._busy = False
                self._wake.clear()
                # A span appended between popleft() and clear() found the event still set and did
                # not set it again: look once more before sleeping.
                if not pending:
                    self._wake.wait(1.0)
                continue
            try:
                self._settle(finished)
            except Exception:
                _logger.debug("tokenbudget: could not count a span into budgets", exc_info=True)
            finally:
                self._busy = False
            settled_since_pause += 1
            if settled_since_pause == _SPANS_BETWEEN_PAUSES:
                # Settling is background work. Without a pause, while spans end in a burst, this
                # thread takes about half of the GIL from the threads that end them for as long as
                # its backlog lasts, which makes their span endings several times slower; sleep(0)
                # lets them have it.
                settled_since_pause = 0
                time.sleep(0)

    def _settle(self, finished: _Finished) -> None:
        # Copied here, on the worker, not by the thread that ended the span: the SDK's attribute
        # mapping answers each look-up in Python, and a dict answers the many that follow in C.
        attributes = dict(finished.attributes)
        provider = _text(attributes.get(GEN_AI_PROVIDER_NAME)) or _text(attributes.get(GEN_AI_SYSTEM))
        model = _text(attributes.get(GEN_AI_RESPONSE_MODEL)) or _text(attributes.get(GEN_AI_REQUEST_MODEL))
        operation = _text(attributes.get(GEN_AI_OPERATION_NAME))
        cost = self._cost(attributes, provider, model)
        if cost is None:
            return
        matched = call_attributes(
            {**attributes, **finished.attribution},
            provider,
            _text(attributes.get(GEN_AI_REQUEST_MODEL)) or model,
            operation,
        )
        self._guard.record(matched, cost, finished.ended_at)

    def _cost(self, attributes: Mapping[str, AttributeValue], provider: str, model: str) -> Decimal | None:
        amount = attributes.get(GEN_AI_USAGE_COST_AMOUNT)
        if (
            isinstance(amount, (int, float))
            and attributes.get(GEN_AI_USAGE_COST_CURRENCY, CURRENCY) == CURRENCY
        ):
            try:
                return Decimal(str(amount))
            except InvalidOperation:
                return None
        foreign = _foreign_cost(attributes)
        if foreign is not None:
            return foreign
        price = self._prices.lookup(provider, model) if provider and model else None
        if price is None:
            self._unpriced.warn(provider, model, _UNPRICED_FOREIGN_SPAN)
            return None
        cache_read = _count(attributes.get(GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS)) or _count(
            attributes.get(_LEGACY_CACHE_READ_INPUT_TOKENS)
        )
        cache_write = (
            _count(attributes.get(UPSTREAM_CACHE_WRITE_INPUT_TOKENS))
            or _count(attributes.get(GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS))
            or _count(attributes.get(_LEGACY_CACHE_CREATION_INPUT_TOKENS))
        )
        # The conventions count cached tokens inside input_tokens; a span without input_tokens (the
        # Anthropic SDK's own) is at least its cached tokens.
        input_tokens = attributes.get(GEN_AI_USAGE_INPUT_TOKENS)
        usage = TokenUsage(
            input_tokens=_count(input_tokens) if input_tokens is not None else cache_read + cache_write,
            output_tokens=_count(attributes.get(GEN_AI_USAGE_OUTPUT_TOKENS)),
            cache_read_tokens=cache_read,
            cache_write_tokens=cache_write,
        )
        return price_usage(price, usage).total


def _foreign_cost(attributes: Mapping[str, AttributeValue]) -> Decimal | None:
    """A cost in USD that another instrumentation put on its span under its own name; one that is no
    amount of money (negative, NaN) is ignored, and the span priced from its tokens."""
    for key in _FOREIGN_COST_KEYS:
        value = attributes.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < _UNBOUNDED:
            return Decimal(repr(value))
    return None


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _count(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return 0
