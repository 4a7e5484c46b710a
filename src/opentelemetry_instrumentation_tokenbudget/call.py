"""The life of one LLM call, whatever the provider: admit, span, response, usage, cost, metrics.

Provider adapters describe the request (`RequestInfo`) and summarise the response
(`ResponseSummary`); everything else happens here, once, for every provider.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from decimal import Decimal
from typing import Any, Final, Protocol

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.semconv._incubating.attributes.cloud_attributes import CLOUD_REGION
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_OPERATION_NAME,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MAX_TOKENS,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_RESPONSE_FINISH_REASONS,
    GEN_AI_RESPONSE_ID,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_TOKEN_TYPE,
    GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
    GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
    GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
    GenAiTokenTypeValues,
)
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.http_attributes import HTTP_RESPONSE_STATUS_CODE
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.util.types import AttributeValue

from .adapter import RequestInfo, ResponseSummary
from .attribution import call_attribution
from .config import Settings
from .errors import BudgetExceededError
from .limits import MAX_ATTRIBUTE_LENGTH, MAX_FINISH_REASONS, capped, capped_or_none
from .metrics import CallInstruments, add_metric_attribution
from .pricing import (
    MAX_PICODOLLARS,
    Cost,
    PriceBook,
    picodollars_to_usd,
    usd_to_picodollars,
)
from .prompt_prefix import prefix_hash
from .semconv import (
    GEN_AI_USAGE_COST_AMOUNT,
    GEN_AI_USAGE_COST_CURRENCY,
    GEN_AI_USAGE_COST_SOURCE,
    TOKENBUDGET_CLIENT_UNPRICED_CALLS,
    TOKENBUDGET_COST_CACHE_READ,
    TOKENBUDGET_COST_CACHE_WRITE,
    TOKENBUDGET_COST_ESTIMATED,
    TOKENBUDGET_COST_INPUT,
    TOKENBUDGET_COST_LIBRARY,
    TOKENBUDGET_COST_OUTPUT,
    TOKENBUDGET_COST_UNPRICED,
    TOKENBUDGET_COST_UPSTREAM,
    TOKENBUDGET_PRICE_INFERRED,
    TOKENBUDGET_PRICE_SOURCE,
    TOKENBUDGET_PRICE_VERSION,
    TOKENBUDGET_PROMPT_PREFIX_HASH,
    TOKENBUDGET_USAGE_BILLED_UNITS,
    TOKENBUDGET_USAGE_WEB_SEARCHES,
    GenAiUsageCostSourceValues,
)
from .unpriced import UnpricedWarnings
from .usage import TokenUsage, checked

_logger = logging.getLogger(__name__)

# The conventions renamed cache_creation to cache_write in the GenAI repository (unreleased); we emit
# the released name, and this is the one line to change when the rename ships. Spans of other
# instrumentations may already carry the new name, which `UPSTREAM_CACHE_WRITE_INPUT_TOKENS` reads.
GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: Final = GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS
UPSTREAM_CACHE_WRITE_INPUT_TOKENS: Final = "gen_ai.usage.cache_write.input_tokens"

# The modality breakdown of open-telemetry/semantic-conventions-genai#440 (merged in the GenAI
# repository, not yet in a released opentelemetry-semantic-conventions).
GEN_AI_USAGE_AUDIO_INPUT_TOKENS: Final = "gen_ai.usage.audio.input_tokens"
GEN_AI_USAGE_AUDIO_OUTPUT_TOKENS: Final = "gen_ai.usage.audio.output_tokens"
GEN_AI_USAGE_AUDIO_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.audio.cache_read.input_tokens"
GEN_AI_USAGE_IMAGE_INPUT_TOKENS: Final = "gen_ai.usage.image.input_tokens"
GEN_AI_USAGE_IMAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.image.output_tokens"
GEN_AI_USAGE_VIDEO_INPUT_TOKENS: Final = "gen_ai.usage.video.input_tokens"

CURRENCY: Final = "USD"

# Set in the context while the provider's SDK runs our call, so that a GenAI span that another
# instrumentation (or the Anthropic SDK itself) starts inside it is known to be the same call. Its
# value is the `LLMCall`, for what the SDK's HTTP layer sees of the call (a gateway's cost header).
CALL_IN_PROGRESS_KEY: Final = otel_context.create_key("tokenbudget-call-in-progress")


class Admission(Protocol):
    """A budget reservation held for one call until it is settled or released."""


class SpendGuard(Protocol):
    """The budget side of a call (see `budgets/`): admit before the request, settle after it."""

    def admit(self, request: RequestInfo, attribution: Mapping[str, AttributeValue]) -> Admission | None:
        """Reserve the call's estimated cost, or raise `BudgetExceededError`."""
        ...

    def settle(
        self,
        admission: Admission | None,
        request: RequestInfo,
        spent: int | None,
        span: Span,
        usage: TokenUsage | None = None,
    ) -> None:
        """Replace the reservation with what the call `spent`, in whole picodollars rounded up (None:
        unpriced); `usage` teaches the estimates."""
        ...

    def release(self, admission: Admission | None) -> None: ...


class LedgerSink(Protocol):
    def add(self, span: Span) -> None:
        """Takes the ended span of a call; never raises, never writes on the caller's thread."""

    def add_row(self, row: tuple[Any, ...]) -> None:
        """Takes a row made already (`ledger.record.refused_row`)."""

    def close(self) -> None:
        """Writes what is left."""


class Runtime:
    """Everything that `instrument()` set up, shared by all wrappers until `uninstrument()`."""

    def __init__(
        self,
        tracer: Tracer,
        instruments: CallInstruments,
        prices: PriceBook,
        settings: Settings,
        guard: SpendGuard | None = None,
    ) -> None:
        self.tracer = tracer
        self.instruments = instruments
        self.prices = prices
        self.settings = settings
        self.guard = guard
        self.ledger: LedgerSink | None = None
        self.enabled = True
        self.unpriced = UnpricedWarnings(_logger)
        self._rejected_costs = 0

    def rejected_provider_cost(self, request: RequestInfo, amount: object) -> None:
        """A cost in the response that is no amount of money (negative, NaN, infinite, or more than
        `MAX_CALL_USD`): the computed cost is used instead; the first and every thousandth are logged
        with the running count."""
        self._rejected_costs += 1
        if self._rejected_costs == 1 or self._rejected_costs % 1000 == 0:
            _logger.warning(
                "tokenbudget: %s reported a cost of %r for model %r, which is not an amount of money; the"
                " cost computed from the price data is used (%d such costs so far)",
                request.server_address or request.provider,
                amount,
                request.model,
                self._rejected_costs,
            )


def _span_attributes(
    request: RequestInfo, attribution: Mapping[str, AttributeValue]
) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = {
        GEN_AI_OPERATION_NAME: request.operation,
        GEN_AI_PROVIDER_NAME: request.provider,
        GEN_AI_REQUEST_MODEL: request.model,
    }
    if request.max_output_tokens is not None:
        attributes[GEN_AI_REQUEST_MAX_TOKENS] = request.max_output_tokens
    if request.server_address is not None:
        attributes[SERVER_ADDRESS] = request.server_address
    if request.server_port is not None:
        attributes[SERVER_PORT] = request.server_port
    if request.cloud_region is not None:
        attributes[CLOUD_REGION] = request.cloud_region
    if request.prompt_prefix is not None:
        _add_prefix_hash(attributes, request.prompt_prefix)
    attributes.update(attribution)
    return attributes


def _add_prefix_hash(attributes: dict[str, AttributeValue], prefix: Callable[[], str]) -> None:
    try:
        digest = prefix_hash(prefix())
    except Exception:
        _logger.debug("tokenbudget: could not hash a prompt prefix", exc_info=True)
        return
    if digest is not None:
        attributes[TOKENBUDGET_PROMPT_PREFIX_HASH] = digest


def _add_usage_attributes(attributes: dict[str, AttributeValue], usage: TokenUsage) -> None:
    attributes[GEN_AI_USAGE_INPUT_TOKENS] = usage.input_tokens
    attributes[GEN_AI_USAGE_OUTPUT_TOKENS] = usage.output_tokens
    if usage.cache_read_tokens:
        attributes[GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = usage.cache_read_tokens
    if usage.cache_write_tokens:
        attributes[GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS] = usage.cache_write_tokens
    if usage.reasoning_tokens:
        attributes[GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = usage.reasoning_tokens
    # Most calls are text only; the modality breakdown and tool fees are checked only when present.
    if (
        usage.input_audio_tokens
        or usage.output_audio_tokens
        or usage.web_searches
        or (usage.input_image_tokens or usage.output_image_tokens or usage.input_video_tokens)
    ):
        _add_modality_attributes(attributes, usage)


def _add_modality_attributes(attributes: dict[str, AttributeValue], usage: TokenUsage) -> None:
    for name, count in (
        (GEN_AI_USAGE_AUDIO_INPUT_TOKENS, usage.input_audio_tokens),
        (GEN_AI_USAGE_AUDIO_OUTPUT_TOKENS, usage.output_audio_tokens),
        (GEN_AI_USAGE_AUDIO_CACHE_READ_INPUT_TOKENS, usage.cache_audio_read_tokens),
        (GEN_AI_USAGE_IMAGE_INPUT_TOKENS, usage.input_image_tokens),
        (GEN_AI_USAGE_IMAGE_OUTPUT_TOKENS, usage.output_image_tokens),
        (GEN_AI_USAGE_VIDEO_INPUT_TOKENS, usage.input_video_tokens),
        (TOKENBUDGET_USAGE_WEB_SEARCHES, usage.web_searches),
    ):
        if count:
            attributes[name] = count


def _bounded(summary: ResponseSummary) -> ResponseSummary:
    """`summary` with the strings that the response chose cut to length, and any that are no
    strings dropped: they go to span names' neighbours, metric series and price lookups."""
    model, response_id, reasons = summary.response_model, summary.response_id, summary.finish_reasons
    if (
        (model is None or (type(model) is str and len(model) <= MAX_ATTRIBUTE_LENGTH))
        and (response_id is None or (type(response_id) is str and len(response_id) <= MAX_ATTRIBUTE_LENGTH))
        and (not reasons or _short_strings(reasons))
    ):
        return summary
    return replace(
        summary,
        response_model=capped_or_none(model),
        response_id=capped_or_none(response_id),
        finish_reasons=tuple(
            reason for reason in map(capped_or_none, reasons[:MAX_FINISH_REASONS]) if reason is not None
        ),
    )


def _short_strings(values: tuple[str, ...]) -> bool:
    if len(values) > MAX_FINISH_REASONS:
        return False
    # A loop rather than all() over a generator, which costs more than the one check most calls need.
    for value in values:  # noqa: SIM110
        if type(value) is not str or len(value) > MAX_ATTRIBUTE_LENGTH:
            return False
    return True


def _add_cost_attributes(attributes: dict[str, AttributeValue], cost: Cost, total: float) -> None:
    attributes[GEN_AI_USAGE_COST_AMOUNT] = total
    attributes[GEN_AI_USAGE_COST_CURRENCY] = CURRENCY
    attributes[GEN_AI_USAGE_COST_SOURCE] = _LOCAL
    input_usd, cache_read, cache_write, output = cost.float_parts()
    attributes[TOKENBUDGET_COST_INPUT] = input_usd
    attributes[TOKENBUDGET_COST_OUTPUT] = output
    # Like the cache token counts, the cache parts appear when the call used the cache: most calls do
    # not, and every attribute is paid for by every span processor and exporter downstream.
    if cache_read:
        attributes[TOKENBUDGET_COST_CACHE_READ] = cache_read
    if cache_write:
        attributes[TOKENBUDGET_COST_CACHE_WRITE] = cache_write
    attributes[TOKENBUDGET_PRICE_SOURCE] = cost.source.value
    attributes[TOKENBUDGET_PRICE_VERSION] = cost.version
    if cost.inferred:
        attributes[TOKENBUDGET_PRICE_INFERRED] = True


class LLMCall:
    """One call in flight. `end` or `fail` finishes it; whichever comes first wins."""

    __slots__ = (
        "_admission",
        "_attribution",
        "_ended",
        "_runtime",
        "_start",
        "gateway_cost",
        "request",
        "span",
    )

    def __init__(self, runtime: Runtime, request: RequestInfo, context: otel_context.Context) -> None:
        """`context` is the caller's, read once by the wrapper: each read of the current context
        costs a little, and a call needs it four times."""
        self._runtime = runtime
        self.request = request
        self._attribution = call_attribution(runtime.settings.baggage_attribution, context)
        self._ended = False
        self.gateway_cost: Decimal | None = None
        """What a gateway's response header said the call cost (`providers.gateway_cost`)."""
        # Budgets first: a refused call must not send a request, nor leave a span behind.
        guard = runtime.guard
        if guard is None:
            self._admission = None
        else:
            try:
                self._admission = guard.admit(request, self._attribution)
            except BudgetExceededError as refusal:
                if runtime.ledger is not None:
                    safely(_ledger_refusal, runtime.ledger, request, self._attribution, refusal, context)
                raise
        self.span = runtime.tracer.start_span(
            f"{request.operation} {request.model}",
            context,
            kind=SpanKind.CLIENT,
            attributes=_span_attributes(request, self._attribution),
        )
        self._start = time.perf_counter()

    def activate(self, context: otel_context.Context | None = None) -> object:
        """Make the call's span current while the SDK sends the request (`context`: the caller's,
        the current one when None)."""
        in_call = trace.set_span_in_context(
            self.span, otel_context.set_value(CALL_IN_PROGRESS_KEY, self, context)
        )
        return otel_context.attach(in_call)

    @staticmethod
    def deactivate(token: object) -> None:
        otel_context.detach(token)  # type: ignore[arg-type]  # the token that activate() returned

    def end(self, summary: ResponseSummary, *, estimated: bool = False) -> None:
        if self._ended:
            return
        self._ended = True
        try:
            self._record(summary, estimated=estimated, error=None)
        finally:
            self._end_span()

    def fail(self, error: BaseException, partial: ResponseSummary | None = None) -> None:
        """The provider raised (or a stream broke): what arrived is still counted, marked estimated."""
        if self._ended:
            return
        self._ended = True
        try:
            try:
                self._mark_failed(error)
            finally:
                self._record(partial or ResponseSummary(), estimated=True, error=error)
        finally:
            self._end_span()

    def release_unsent(self) -> None:
        """No request was sent (a stream manager never entered): the span ends with nothing recorded
        and the reservation is released, not charged."""
        if self._ended:
            return
        self._ended = True
        try:
            guard = self._runtime.guard
            if guard is not None:
                guard.release(self._admission)
        finally:
            self._end_span()

    def _mark_failed(self, error: BaseException) -> None:
        """error.type and the HTTP status; the message only when asked (`record_error_messages`),
        since providers echo the request, prompt included, in their error messages."""
        attributes: dict[str, AttributeValue] = {ERROR_TYPE: type(error).__qualname__}
        status_code = getattr(error, "status_code", None)
        if type(status_code) is int:
            attributes[HTTP_RESPONSE_STATUS_CODE] = status_code
        self.span.set_attributes(attributes)
        if self._runtime.settings.record_error_messages:
            self.span.set_status(Status(StatusCode.ERROR, str(error)))
        else:
            self.span.set_status(Status(StatusCode.ERROR))

    def _end_span(self) -> None:
        self.span.end()
        ledger = self._runtime.ledger
        if ledger is not None:
            ledger.add(self.span)

    def _record(self, summary: ResponseSummary, *, estimated: bool, error: BaseException | None) -> None:
        """Tokens, then cost, then the budget: each is done even if the one before it failed, and the
        reservation is settled or released whatever happened."""
        usage = summary.usage
        spent: int | None = None
        try:
            summary = _bounded(summary)
            if usage is not None:
                usage, invalid = checked(usage, self.request.estimate_input_tokens)
                estimated = estimated or invalid
            spent = self._record_telemetry(summary, usage, estimated=estimated, error=error)
        finally:
            guard = self._runtime.guard
            if guard is not None:
                if usage is None and error is not None:
                    guard.release(self._admission)
                else:
                    guard.settle(self._admission, self.request, spent, self.span, usage)

    def _record_telemetry(
        self,
        summary: ResponseSummary,
        usage: TokenUsage | None,
        *,
        estimated: bool,
        error: BaseException | None,
    ) -> int | None:
        """The span's and the metrics' part of `_record`; the call's cost in picodollars (None:
        unpriced)."""
        instruments = self._runtime.instruments
        duration = time.perf_counter() - self._start
        metric_attributes = self._metric_attributes(summary, error)
        instruments.duration.record(duration, metric_attributes)

        # Gathered and set at once: the SDK takes its span lock and validates per call of set_attributes.
        span_attributes: dict[str, AttributeValue] = {}
        if summary.response_model is not None:
            span_attributes[GEN_AI_RESPONSE_MODEL] = summary.response_model
        if summary.response_id is not None:
            span_attributes[GEN_AI_RESPONSE_ID] = summary.response_id
        if summary.finish_reasons:
            span_attributes[GEN_AI_RESPONSE_FINISH_REASONS] = summary.finish_reasons

        spent: int | None = None
        if usage is not None:
            _add_usage_attributes(span_attributes, usage)
            if summary.usage_is_billed_units:
                span_attributes[TOKENBUDGET_USAGE_BILLED_UNITS] = True
            if estimated:
                span_attributes[TOKENBUDGET_COST_ESTIMATED] = True
            token_usage = instruments.token_usage
            token_usage.record(usage.input_tokens, {**metric_attributes, GEN_AI_TOKEN_TYPE: _INPUT})
            token_usage.record(usage.output_tokens, {**metric_attributes, GEN_AI_TOKEN_TYPE: _OUTPUT})
            spent = self._priced(summary, usage, metric_attributes, span_attributes)
        if span_attributes:
            self.span.set_attributes(span_attributes)
        return spent

    def _priced(
        self,
        summary: ResponseSummary,
        usage: TokenUsage,
        metric_attributes: Mapping[str, AttributeValue],
        span_attributes: dict[str, AttributeValue],
    ) -> int | None:
        """The cost in picodollars, or None; a price that fails to apply leaves the call unpriced (flagged and
        counted, as for a model without a price), its tokens recorded all the same."""
        costed = dict(span_attributes)
        try:
            spent = self._cost(summary, usage, metric_attributes, costed)
        except Exception:
            _logger.debug("tokenbudget: could not price a call", exc_info=True)
            span_attributes[TOKENBUDGET_COST_UNPRICED] = True
            self._runtime.instruments.unpriced_calls.add(1, metric_attributes)
            return None
        span_attributes.update(costed)
        return spent

    def _cost(
        self,
        summary: ResponseSummary,
        usage: TokenUsage,
        metric_attributes: Mapping[str, AttributeValue],
        span_attributes: dict[str, AttributeValue],
    ) -> int | None:
        runtime = self._runtime
        request = self.request
        provider_cost = summary.provider_cost
        if provider_cost is None:
            provider_cost = self.gateway_cost
        if provider_cost is not None:
            if _is_money(provider_cost):
                amount = float(provider_cost)
                span_attributes[GEN_AI_USAGE_COST_AMOUNT] = amount
                span_attributes[GEN_AI_USAGE_COST_CURRENCY] = CURRENCY
                span_attributes[GEN_AI_USAGE_COST_SOURCE] = _PROVIDER
                upstream = summary.upstream_cost
                if upstream is not None and _is_money(upstream):
                    span_attributes[TOKENBUDGET_COST_UPSTREAM] = float(upstream)
                runtime.instruments.cost.record(
                    amount, {**metric_attributes, **_PROVIDER_COST_METRIC_ATTRIBUTES}
                )
                return usd_to_picodollars(provider_cost)
            runtime.rejected_provider_cost(request, provider_cost)
        model = summary.response_model or request.model
        route = request.price_route
        prices = runtime.prices
        price = prices.lookup(request.provider, model, route)
        if price is None and model != request.model:
            price = prices.lookup(request.provider, request.model, route)
        library_cost = summary.library_cost
        if library_cost is not None and not _is_money(library_cost):
            runtime.rejected_provider_cost(request, library_cost)
            library_cost = None
        if library_cost is not None:
            span_attributes[TOKENBUDGET_COST_LIBRARY] = float(library_cost)
        if price is None and library_cost is not None:
            amount = float(library_cost)
            span_attributes[GEN_AI_USAGE_COST_AMOUNT] = amount
            span_attributes[GEN_AI_USAGE_COST_CURRENCY] = CURRENCY
            span_attributes[GEN_AI_USAGE_COST_SOURCE] = _PROVIDER
            runtime.instruments.cost.record(amount, {**metric_attributes, **_PROVIDER_COST_METRIC_ATTRIBUTES})
            return usd_to_picodollars(library_cost)
        if price is None:
            span_attributes[TOKENBUDGET_COST_UNPRICED] = True
            runtime.instruments.unpriced_calls.add(1, metric_attributes)
            runtime.unpriced.warn(request.provider, model, _UNPRICED_CALL, request.server_address)
            return None
        # When the request was sent, for prices that depend on the time of day.
        sent_at = time.time() - (time.perf_counter() - self._start)
        service_tier = summary.service_tier
        cost = price.cost(usage, sent_at, {_SERVICE_TIER: service_tier} if service_tier else None)
        total = cost.float_total()
        _add_cost_attributes(span_attributes, cost, total)
        runtime.instruments.cost.record(total, {**metric_attributes, **_LOCAL_COST_METRIC_ATTRIBUTES})
        return cost.spent_picodollars()

    def _metric_attributes(
        self, summary: ResponseSummary, error: BaseException | None
    ) -> dict[str, AttributeValue]:
        request = self.request
        attributes: dict[str, AttributeValue] = {
            GEN_AI_OPERATION_NAME: request.operation,
            GEN_AI_PROVIDER_NAME: request.provider,
            GEN_AI_REQUEST_MODEL: request.model,
        }
        if summary.response_model is not None:
            attributes[GEN_AI_RESPONSE_MODEL] = summary.response_model
        if request.server_address is not None:
            attributes[SERVER_ADDRESS] = request.server_address
            if request.server_port is not None:
                attributes[SERVER_PORT] = request.server_port
        if error is not None:
            attributes[ERROR_TYPE] = type(error).__qualname__
        add_metric_attribution(attributes, self._attribution, self._runtime.settings.metric_attribution_keys)
        return attributes


MAX_CALL_USD: Final = picodollars_to_usd(MAX_PICODOLLARS)
"""About 9.2 million USD, the most a budget's ledger entry holds (2**63 - 1 picodollars): a call said
to cost more is a malformed figure, and a figure far past it is too large to convert at all."""


def _is_money(amount: Decimal) -> bool:
    return amount.is_finite() and 0 <= amount <= MAX_CALL_USD


# The cost metric says which currency and how the amount was obtained, as the proposal requires.
_LOCAL: Final = GenAiUsageCostSourceValues.LOCAL.value
_PROVIDER: Final = GenAiUsageCostSourceValues.PROVIDER.value
_LOCAL_COST_METRIC_ATTRIBUTES: Final[Mapping[str, AttributeValue]] = {
    GEN_AI_USAGE_COST_CURRENCY: CURRENCY,
    GEN_AI_USAGE_COST_SOURCE: _LOCAL,
}
_PROVIDER_COST_METRIC_ATTRIBUTES: Final[Mapping[str, AttributeValue]] = {
    GEN_AI_USAGE_COST_CURRENCY: CURRENCY,
    GEN_AI_USAGE_COST_SOURCE: _PROVIDER,
}
# The key of genai-prices' price context under which OpenAI-style service tiers are priced.
_SERVICE_TIER: Final = "service_tier"
_UNPRICED_CALL: Final = (
    f"its calls have no cost attribute and are counted in {TOKENBUDGET_CLIENT_UNPRICED_CALLS}"
)
_INPUT: Final = GenAiTokenTypeValues.INPUT.value
_OUTPUT: Final = GenAiTokenTypeValues.OUTPUT.value


def new_call(
    runtime: Runtime, describe: Callable[[], RequestInfo | None], context: otel_context.Context
) -> LLMCall | None:
    """Start a call, or return None when it is not an LLM call or our own code failed (the user's call
    then goes on bare).

    `BudgetExceededError` is the one exception that passes: the user asked for it.
    """
    try:
        request = describe()
        if request is None:
            return None
        # The caller's model name goes into span names, metric series and the estimates' state.
        request.model = capped(request.model)
        return LLMCall(runtime, request, context)
    except BudgetExceededError:
        raise
    except Exception:
        _logger.debug("tokenbudget: could not start recording a call", exc_info=True)
        return None


def _ledger_refusal(
    ledger: LedgerSink,
    request: RequestInfo,
    attribution: Mapping[str, AttributeValue],
    refusal: BudgetExceededError,
    context: otel_context.Context,
) -> None:
    # Imported here: the ledger's module is loaded only when a ledger is on.
    from .ledger.record import refused_row

    ledger.add_row(
        refused_row(
            provider=request.provider,
            operation=request.operation,
            model=request.model,
            attribution=attribution,
            error_type=type(refusal).__qualname__,
            trace_id=trace.get_current_span(context).get_span_context().trace_id,
            at_unix_nano=time.time_ns(),
        )
    )


def safely(action: Callable[..., Any], *args: Any) -> None:
    """Run a piece of our own bookkeeping; an error in it is logged, never raised into the user's code."""
    try:
        action(*args)
    except Exception:
        _logger.debug("tokenbudget: bookkeeping failed", exc_info=True)
