"""OpenAI (and every server that speaks its API): chat completions, Responses, embeddings, completions."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from decimal import Decimal
from functools import cache
from typing import Any

from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GenAiOperationNameValues,
    GenAiProviderNameValues,
)

from ..adapter import ApiAdapter, NoPreparation, RequestInfo, ResponseSummary, ResultIsTheStream
from ..config import Settings
from ..limits import MAX_FINISH_REASONS
from ..usage import TokenUsage, count, required
from ._common import endpoint_of, estimate_tokens, given, int_or_none, prompt_prefix
from .targets import Target

_logger = logging.getLogger(__name__)

_OPENAI = GenAiProviderNameValues.OPENAI.value
# The header by which the SDK tells its own transport layer how the caller will read the response.
_RAW_RESPONSE_HEADER = "X-Stainless-Raw-Response"
_CHAT = GenAiOperationNameValues.CHAT.value
_TEXT_COMPLETION = GenAiOperationNameValues.TEXT_COMPLETION.value
_EMBEDDINGS = GenAiOperationNameValues.EMBEDDINGS.value


@cache
def _stream_classes() -> tuple[type, ...]:
    from openai import AsyncStream, Stream

    return (Stream, AsyncStream)


def _is_stream(result: Any) -> bool:
    return isinstance(result, _stream_classes())


def _provider_cost(usage: Any) -> Decimal | None:
    """The cost a gateway such as OpenRouter put into the usage block. One that is not a number comes
    back as NaN, so that the core ignores and counts it rather than taking it for no cost at all.

    With OpenRouter's BYOK (your own provider key), `cost` is only OpenRouter's fee; the provider
    bills `cost_details.upstream_inference_cost` to your key. Both are money the call costs you: the
    call's cost is their sum (`_upstream_cost` keeps the provider's part apart)."""
    extra = getattr(usage, "model_extra", None) or {}
    cost = _amount(extra.get("cost"))
    upstream = _upstream_cost(usage) if extra.get("is_byok") is True else None
    if cost is None or upstream is None:
        return cost
    return cost + upstream


def _upstream_cost(usage: Any) -> Decimal | None:
    extra = getattr(usage, "model_extra", None) or {}
    details = extra.get("cost_details")
    return _amount(details.get("upstream_inference_cost")) if isinstance(details, Mapping) else None


def _amount(value: object) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:
            return Decimal(str(value))
        except ArithmeticError:
            pass
    return _NOT_AN_AMOUNT


_NOT_AN_AMOUNT = Decimal("NaN")


def _service_tier(result: Any) -> str | None:
    """The tier OpenAI says it served the call in (``flex``, ``priority``, ``default``): prices
    depend on it. What the response says, not what was asked (``auto`` becomes the tier used)."""
    tier = getattr(result, "service_tier", None)
    return tier if isinstance(tier, str) else None


def _completion_usage(usage: Any) -> TokenUsage:
    """`prompt_tokens` already includes `cached_tokens`, and `completion_tokens` the reasoning ones."""
    prompt_details = getattr(usage, "prompt_tokens_details", None)
    completion_details = getattr(usage, "completion_tokens_details", None)
    return TokenUsage(
        input_tokens=required(getattr(usage, "prompt_tokens", None)),
        output_tokens=required(getattr(usage, "completion_tokens", None)),
        cache_read_tokens=count(getattr(prompt_details, "cached_tokens", None)),
        # OpenRouter reports the tokens written to a provider's cache (Anthropic's, Gemini's) here.
        cache_write_tokens=count(getattr(prompt_details, "cache_write_tokens", None)),
        reasoning_tokens=count(getattr(completion_details, "reasoning_tokens", None)),
        # Audio models (gpt-4o-audio-preview) report their audio tokens inside the totals.
        input_audio_tokens=count(getattr(prompt_details, "audio_tokens", None)),
        output_audio_tokens=count(getattr(completion_details, "audio_tokens", None)),
    )


def _hands_over_the_body(kwargs: Mapping[str, Any]) -> bool:
    """`with_streaming_response` gives the caller the HTTP body itself, read as lines or bytes more
    often than parsed: a usage chunk it did not ask for would show there, and nothing of ours could
    hide it. Such a stream goes as asked, and is costed from its text if it is parsed."""
    headers = kwargs.get("extra_headers")
    return isinstance(headers, Mapping) and headers.get(_RAW_RESPONSE_HEADER) == "stream"


def _finish_reasons(choices: Any) -> tuple[str, ...]:
    # A list, not a generator: resuming a generator per choice costs more than the list.
    return tuple([choice.finish_reason for choice in choices or () if choice.finish_reason])


class _OpenAIRequests(ResultIsTheStream):
    def __init__(self, settings: Settings, operation: str) -> None:
        self._settings = settings
        self._operation = operation

    def _request(
        self, instance: Any, kwargs: Mapping[str, Any], max_tokens: Any, *prompt: Any
    ) -> RequestInfo:
        client = instance._client
        # The SDK's `base_url` property runs an import on every read; the attribute behind it does not.
        endpoint = endpoint_of(client, client._base_url, _OPENAI, self._settings.base_url_providers)
        return RequestInfo(
            provider=endpoint.provider,
            operation=self._operation,
            model=str(kwargs["model"]),
            max_output_tokens=int_or_none(max_tokens),
            server_address=endpoint.address,
            server_port=endpoint.port,
            price_route=endpoint.route,
            estimate_input_tokens=lambda: estimate_tokens(*prompt),
            prompt_prefix=None if self._operation == _EMBEDDINGS else lambda: prompt_prefix(*prompt),
        )

    def prepare(self, kwargs: dict[str, Any]) -> bool:
        """Ask a stream for its usage chunk if the caller did not; True means it must be hidden."""
        if kwargs.get("stream") is not True or not self._settings.inject_stream_usage:
            return False
        if _hands_over_the_body(kwargs):
            return False
        options = kwargs.get("stream_options")
        if given(options) and isinstance(options, Mapping):
            if options.get("include_usage") is True:
                return False
            kwargs["stream_options"] = {**options, "include_usage": True}
        else:
            kwargs["stream_options"] = {"include_usage": True}
        return True

    @staticmethod
    def is_stream(result: Any) -> bool:
        return _is_stream(result)


class ChatCompletionsAdapter(_OpenAIRequests):
    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, _CHAT)

    def describe(self, instance: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> RequestInfo:
        max_tokens = kwargs.get("max_completion_tokens")
        if not given(max_tokens):
            max_tokens = kwargs.get("max_tokens")
        return self._request(instance, kwargs, max_tokens, kwargs.get("messages"))

    @staticmethod
    def summarize(result: Any) -> ResponseSummary:
        usage = result.usage
        # A gateway's cost sits in the usage block's extra fields; OpenAI itself sends none.
        reports_cost = usage is not None and bool(getattr(usage, "model_extra", None))
        return ResponseSummary(
            usage=_completion_usage(usage) if usage is not None else None,
            response_model=result.model,
            response_id=result.id,
            finish_reasons=_finish_reasons(result.choices),
            provider_cost=_provider_cost(usage) if reports_cost else None,
            upstream_cost=_upstream_cost(usage) if reports_cost else None,
            service_tier=_service_tier(result),
        )

    @staticmethod
    def accumulator(hide_usage: bool) -> CompletionChunks:
        return CompletionChunks(hide_usage)


class CompletionsAdapter(ChatCompletionsAdapter):
    """The legacy text completions API: the same usage block and stream shape as chat."""

    def __init__(self, settings: Settings) -> None:
        _OpenAIRequests.__init__(self, settings, _TEXT_COMPLETION)

    def describe(self, instance: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> RequestInfo:
        return self._request(instance, kwargs, kwargs.get("max_tokens"), kwargs.get("prompt"))


class CompletionChunks:
    """Chat and text completion chunks: usage arrives in one last chunk whose `choices` is empty."""

    __slots__ = (
        "_finish_reasons",
        "_hide_usage",
        "_id",
        "_model",
        "_provider_cost",
        "_service_tier",
        "_upstream_cost",
        "_usage",
        "output_characters",
    )

    def __init__(self, hide_usage: bool) -> None:
        self._hide_usage = hide_usage
        self.output_characters = 0
        self._model: str | None = None
        self._id: str | None = None
        self._finish_reasons: list[str] = []
        self._usage: TokenUsage | None = None
        self._provider_cost: Decimal | None = None
        self._service_tier: str | None = None
        self._upstream_cost: Decimal | None = None

    def on_item(self, chunk: Any) -> bool:
        usage = getattr(chunk, "usage", None)
        if not self._hide_usage:
            self._read(chunk, usage)
            return False
        # The usage we asked for, which the caller did not: never shown, whatever it holds.
        try:
            self._read(chunk, usage)
        except Exception:
            _logger.debug("tokenbudget: could not read a stream's usage chunk", exc_info=True)
        if not getattr(chunk, "choices", None):
            # A chunk without choices is ours if it carries usage, or if it comes after a finish
            # reason, where OpenAI sends the usage chunk (even with `"usage": null`); one before
            # is the server's own (Azure's prompt filter results).
            return usage is not None or bool(self._finish_reasons)
        # A server that puts the usage on a chunk with content: the content is the caller's, the
        # usage is not (without our request the chunk would have come without it).
        if usage is not None:
            with contextlib.suppress(Exception):
                chunk.usage = None
        return False

    def _read(self, chunk: Any, usage: Any) -> None:
        if self._model is None:
            self._model = chunk.model
            self._id = chunk.id
        for choice in chunk.choices or ():
            if choice.finish_reason and len(self._finish_reasons) < MAX_FINISH_REASONS:
                self._finish_reasons.append(choice.finish_reason)
            # Chat chunks carry `delta.content`; legacy completion chunks carry `text`.
            delta = getattr(choice, "delta", None)
            text = getattr(delta, "content", None) if delta is not None else getattr(choice, "text", None)
            if isinstance(text, str):
                self.output_characters += len(text)
        if usage is None:
            return
        self._usage = _completion_usage(usage)
        self._provider_cost = _provider_cost(usage)
        self._service_tier = _service_tier(chunk)
        self._upstream_cost = _upstream_cost(usage)

    def summary(self) -> ResponseSummary:
        return ResponseSummary(
            usage=self._usage,
            response_model=self._model,
            response_id=self._id,
            finish_reasons=tuple(self._finish_reasons),
            provider_cost=self._provider_cost,
            upstream_cost=self._upstream_cost,
            service_tier=self._service_tier,
        )

    @property
    def complete(self) -> bool:
        return self._usage is not None


def _responses_usage(usage: Any) -> TokenUsage:
    input_details = getattr(usage, "input_tokens_details", None)
    output_details = getattr(usage, "output_tokens_details", None)
    return TokenUsage(
        input_tokens=required(getattr(usage, "input_tokens", None)),
        output_tokens=required(getattr(usage, "output_tokens", None)),
        cache_read_tokens=count(getattr(input_details, "cached_tokens", None)),
        reasoning_tokens=count(getattr(output_details, "reasoning_tokens", None)),
    )


def _web_searches(response: Any) -> int:
    """Web searches the hosted tool ran: one `web_search_call` item each in the output."""
    return sum(
        1
        for item in getattr(response, "output", None) or ()
        if getattr(item, "type", None) == "web_search_call"
    )


def _response_summary(response: Any) -> ResponseSummary:
    usage = response.usage
    status = getattr(response, "status", None)
    token_usage = _responses_usage(usage) if usage is not None else None
    if token_usage is not None:
        token_usage.web_searches = _web_searches(response)
    return ResponseSummary(
        usage=token_usage,
        response_model=response.model,
        response_id=response.id,
        finish_reasons=(status,) if isinstance(status, str) else (),
        provider_cost=_provider_cost(usage) if usage is not None else None,
        upstream_cost=_upstream_cost(usage) if usage is not None else None,
        service_tier=_service_tier(response),
    )


class ResponsesAdapter(NoPreparation, _OpenAIRequests):
    """The Responses API always reports usage, in its `response.completed` (or `.incomplete`) event."""

    def __init__(self, settings: Settings) -> None:
        _OpenAIRequests.__init__(self, settings, _CHAT)

    def describe(self, instance: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> RequestInfo:
        return self._request(
            instance, kwargs, kwargs.get("max_output_tokens"), kwargs.get("input"), kwargs.get("instructions")
        )

    @staticmethod
    def summarize(result: Any) -> ResponseSummary:
        return _response_summary(result)

    @staticmethod
    def accumulator(hide_usage: bool) -> ResponseEvents:
        return ResponseEvents()


_FINAL_RESPONSE_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


class ResponseEvents:
    __slots__ = ("_final", "_model", "output_characters")

    def __init__(self) -> None:
        self._final: ResponseSummary | None = None
        self._model: str | None = None
        self.output_characters = 0

    def on_item(self, event: Any) -> bool:
        event_type = event.type
        if event_type == "response.output_text.delta":
            self.output_characters += len(event.delta)
        elif event_type == "response.created":
            self._model = event.response.model
        elif event_type in _FINAL_RESPONSE_EVENTS:
            self._final = _response_summary(event.response)
        return False

    def summary(self) -> ResponseSummary:
        return self._final or ResponseSummary(response_model=self._model)

    @property
    def complete(self) -> bool:
        return self._final is not None and self._final.usage is not None


class EmbeddingsAdapter(NoPreparation, _OpenAIRequests):
    def __init__(self, settings: Settings) -> None:
        _OpenAIRequests.__init__(self, settings, _EMBEDDINGS)

    def describe(self, instance: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> RequestInfo:
        return self._request(instance, kwargs, None, kwargs.get("input"))

    @staticmethod
    def summarize(result: Any) -> ResponseSummary:
        usage = result.usage
        return ResponseSummary(
            usage=TokenUsage(input_tokens=required(getattr(usage, "prompt_tokens", None)))
            if usage is not None
            else None,
            response_model=result.model,
        )

    @staticmethod
    def accumulator(hide_usage: bool) -> CompletionChunks:
        raise TypeError("embeddings do not stream")


def targets(settings: Settings) -> list[Target]:
    chat = ChatCompletionsAdapter(settings)
    responses = ResponsesAdapter(settings)
    chat_module = "openai.resources.chat.completions.completions"
    responses_module = "openai.resources.responses.responses"
    methods: list[tuple[str, str, str, ApiAdapter]] = [
        (chat_module, "Completions", "create", chat),
        (chat_module, "Completions", "parse", chat),
        (responses_module, "Responses", "create", responses),
        (responses_module, "Responses", "parse", responses),
        ("openai.resources.embeddings", "Embeddings", "create", EmbeddingsAdapter(settings)),
        ("openai.resources.completions", "Completions", "create", CompletionsAdapter(settings)),
    ]
    found: list[Target] = []
    for module, sync_class, method, adapter in methods:
        found.append(Target(module, sync_class, method, adapter, is_async=False))
        found.append(Target(module, f"Async{sync_class}", method, adapter, is_async=True))
    # The beta Responses resource sends its own request; absent from SDKs that predate it.
    beta_module = "openai.resources.beta.responses.responses"
    found.append(Target(beta_module, "Responses", "create", responses, is_async=False, lazy=True))
    found.append(Target(beta_module, "AsyncResponses", "create", responses, is_async=True, lazy=True))
    return found
