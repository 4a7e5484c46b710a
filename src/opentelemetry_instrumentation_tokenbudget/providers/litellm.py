"""LiteLLM's SDK: `litellm.completion`, `acompletion`, `text_completion`, `atext_completion`,
`embedding`, `aembedding`, `responses` and `aresponses`, for every provider LiteLLM reaches.

LiteLLM sends OpenAI requests with the OpenAI client's low-level `post()` and other providers through
its own HTTP client, so the SDK methods we wrap elsewhere do not see its calls: we wrap LiteLLM's own
functions, the one place every call passes. The call is in progress while LiteLLM runs it, so an SDK
method of ours that it happens to reach inside (its Responses bridge calls `completion`) records
nothing more: each call is counted once, and its budget reserved before the request leaves.

The provider is LiteLLM's own reading of the model prefix (`anthropic/claude-...`, `ollama/llama3`)
and `api_base`, so a local model server is free and `anthropic/...` is priced as Anthropic. LiteLLM
normalises usage to OpenAI's shape (`prompt_tokens` includes cache reads and writes,
`completion_tokens` the reasoning), which is the conventions' sense. The cost LiteLLM computed from
its own price table (`_hidden_params["response_cost"]`, or `usage.cost` in a stream) is recorded
beside ours for comparison, and is the call's cost when our price data does not know the model.

`litellm` takes seconds to import: its functions are wrapped when the application imports it.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GenAiOperationNameValues,
    GenAiProviderNameValues,
)

from ..adapter import NoPreparation, RequestInfo, ResponseSummary, ResultIsTheStream
from ..config import Settings
from ..pricing.endpoints import classify, route_for_provider
from ..usage import TokenUsage
from ._common import estimate_tokens, given, int_or_none, prompt_prefix
from .openai import _completion_usage, _responses_usage
from .targets import Target

_P = GenAiProviderNameValues
_CHAT = GenAiOperationNameValues.CHAT.value
_TEXT_COMPLETION = GenAiOperationNameValues.TEXT_COMPLETION.value
_EMBEDDINGS = GenAiOperationNameValues.EMBEDDINGS.value

# LiteLLM's provider names -> gen_ai.provider.name, where the two differ; others keep LiteLLM's name.
_PROVIDER_NAMES: Mapping[str, str] = {
    "openai": _P.OPENAI.value,
    "text-completion-openai": _P.OPENAI.value,
    "anthropic": _P.ANTHROPIC.value,
    "azure": _P.AZURE_AI_OPENAI.value,
    "azure_text": _P.AZURE_AI_OPENAI.value,
    "azure_ai": _P.AZURE_AI_INFERENCE.value,
    "gemini": _P.GCP_GEMINI.value,
    "vertex_ai": _P.GCP_VERTEX_AI.value,
    "vertex_ai_beta": _P.GCP_VERTEX_AI.value,
    "bedrock": _P.AWS_BEDROCK.value,
    "mistral": _P.MISTRAL_AI.value,
    "cohere": _P.COHERE.value,
    "cohere_chat": _P.COHERE.value,
    "groq": _P.GROQ.value,
    "deepseek": _P.DEEPSEEK.value,
    "xai": _P.X_AI.value,
    "perplexity": _P.PERPLEXITY.value,
    "ollama": "ollama",
    "ollama_chat": "ollama",
    "hosted_vllm": "vllm",
    "lm_studio": "lm_studio",
}


def _amount(value: object) -> Decimal | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return Decimal(str(value))
    return None


def _library_cost(response: Any) -> Decimal | None:
    hidden = getattr(response, "_hidden_params", None)
    return _amount(hidden.get("response_cost")) if isinstance(hidden, Mapping) else None


def _is_stream(result: Any) -> bool:
    # LiteLLM's streams (`CustomStreamWrapper`, `TextCompletionStreamWrapper`, the Responses
    # iterators) are iterators; its whole responses are pydantic models, which are not.
    kind = type(result)
    return hasattr(kind, "__next__") or hasattr(kind, "__anext__")


class _LiteLLMCalls(ResultIsTheStream):
    def __init__(
        self, settings: Settings, operation: str, positional: tuple[str, ...], prompt_keys: tuple[str, ...]
    ) -> None:
        self._settings = settings
        self._operation = operation
        self._positional = positional
        """The function's leading parameters, which callers may pass by position."""
        self._prompt_keys = prompt_keys

    def describe(self, instance: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> RequestInfo:
        from litellm import get_llm_provider

        arguments = {**dict(zip(self._positional, args, strict=False)), **kwargs}
        model, litellm_provider, _key, api_base = get_llm_provider(
            model=str(arguments["model"]),
            custom_llm_provider=arguments.get("custom_llm_provider"),
            api_base=arguments.get("api_base") or arguments.get("base_url"),
        )
        provider = _PROVIDER_NAMES.get(litellm_provider, litellm_provider)
        if api_base:
            endpoint = classify(str(api_base), provider, tuple(self._settings.base_url_providers.items()))
            provider, address, port, route = (
                endpoint.provider,
                endpoint.address,
                endpoint.port,
                endpoint.route,
            )
        else:
            address, port, route = None, None, route_for_provider(provider)
        prompt = [arguments.get(key) for key in self._prompt_keys]
        max_tokens = arguments.get("max_completion_tokens")
        if not given(max_tokens):
            max_tokens = arguments.get("max_tokens", arguments.get("max_output_tokens"))
        return RequestInfo(
            provider=provider,
            operation=self._operation,
            model=model,
            max_output_tokens=int_or_none(max_tokens),
            server_address=address,
            server_port=port,
            price_route=route,
            estimate_input_tokens=lambda: estimate_tokens(*prompt),
            prompt_prefix=None if self._operation == _EMBEDDINGS else lambda: prompt_prefix(*prompt),
        )

    @staticmethod
    def is_stream(result: Any) -> bool:
        return _is_stream(result)


class CompletionAdapter(_LiteLLMCalls):
    """`completion`, `acompletion` (chat) and `text_completion`, `atext_completion`: OpenAI-shaped
    responses, and streams of chunks whose usage comes last when asked for."""

    def prepare(self, kwargs: dict[str, Any]) -> bool:
        """Ask a stream for its usage chunk if the caller did not; True means it must be hidden.
        LiteLLM takes `stream_options` for every provider (its stream wrapper adds the usage chunk
        itself where the provider has no such option)."""
        if kwargs.get("stream") is not True or not self._settings.inject_stream_usage:
            return False
        options = kwargs.get("stream_options")
        if isinstance(options, Mapping) and options.get("include_usage") is True:
            return False
        kwargs["stream_options"] = (
            {**options, "include_usage": True} if isinstance(options, Mapping) else {"include_usage": True}
        )
        return True

    @staticmethod
    def summarize(result: Any) -> ResponseSummary:
        usage = getattr(result, "usage", None)
        return ResponseSummary(
            usage=_completion_usage(usage) if usage is not None else None,
            response_model=result.model,
            response_id=result.id,
            finish_reasons=tuple(
                choice.finish_reason for choice in result.choices or () if choice.finish_reason
            ),
            library_cost=_library_cost(result),
        )

    @staticmethod
    def accumulator(hide_usage: bool) -> LiteLLMChunks:
        return LiteLLMChunks(hide_usage)


class LiteLLMChunks:
    """`ModelResponseStream` chunks: the usage (and LiteLLM's `cost`) arrive in one last chunk whose
    `choices` is empty."""

    __slots__ = (
        "_finish_reasons",
        "_hide_usage",
        "_id",
        "_library_cost",
        "_model",
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
        self._library_cost: Decimal | None = None

    def on_item(self, chunk: Any) -> bool:
        if self._model is None:
            self._model = chunk.model
            self._id = chunk.id
        choices = chunk.choices or ()
        for choice in choices:
            if choice.finish_reason:
                self._finish_reasons.append(choice.finish_reason)
            delta = getattr(choice, "delta", None)
            text = getattr(delta, "content", None) if delta is not None else getattr(choice, "text", None)
            if isinstance(text, str):
                self.output_characters += len(text)
        usage = getattr(chunk, "usage", None)
        if usage is None:
            return False
        self._usage = _completion_usage(usage)
        self._library_cost = _amount(getattr(usage, "cost", None))
        return self._hide_usage and not choices

    def summary(self) -> ResponseSummary:
        return ResponseSummary(
            usage=self._usage,
            response_model=self._model,
            response_id=self._id,
            finish_reasons=tuple(self._finish_reasons),
            library_cost=self._library_cost,
        )

    @property
    def complete(self) -> bool:
        return self._usage is not None


def _response_summary(response: Any) -> ResponseSummary:
    usage = getattr(response, "usage", None)
    status = getattr(response, "status", None)
    return ResponseSummary(
        usage=_responses_usage(usage) if usage is not None else None,
        response_model=getattr(response, "model", None),
        response_id=getattr(response, "id", None),
        finish_reasons=(status,) if isinstance(status, str) else (),
        library_cost=_library_cost(response),
    )


class ResponsesAdapter(NoPreparation, _LiteLLMCalls):
    """`responses`, `aresponses`: the Responses API's shape, usage in the `response.completed` event."""

    @staticmethod
    def summarize(result: Any) -> ResponseSummary:
        return _response_summary(result)

    @staticmethod
    def accumulator(hide_usage: bool) -> ResponseEvents:
        return ResponseEvents()


_FINAL_RESPONSE_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


class ResponseEvents:
    __slots__ = ("_final", "output_characters")

    def __init__(self) -> None:
        self._final: ResponseSummary | None = None
        self.output_characters = 0

    def on_item(self, event: Any) -> bool:
        event_type = getattr(event, "type", None)
        if event_type == "response.output_text.delta":
            self.output_characters += len(event.delta or "")
        elif event_type in _FINAL_RESPONSE_EVENTS:
            self._final = _response_summary(event.response)
        return False

    def summary(self) -> ResponseSummary:
        return self._final or ResponseSummary()

    @property
    def complete(self) -> bool:
        return self._final is not None and self._final.usage is not None


class EmbeddingAdapter(NoPreparation, _LiteLLMCalls):
    @staticmethod
    def summarize(result: Any) -> ResponseSummary:
        usage = getattr(result, "usage", None)
        return ResponseSummary(
            usage=TokenUsage(input_tokens=usage.prompt_tokens or 0) if usage is not None else None,
            response_model=getattr(result, "model", None),
            library_cost=_library_cost(result),
            counts_missing=usage is None,
        )

    @staticmethod
    def accumulator(hide_usage: bool) -> LiteLLMChunks:
        raise TypeError("embeddings do not stream")


def targets(settings: Settings) -> list[Target]:
    chat = CompletionAdapter(settings, _CHAT, ("model", "messages"), ("messages",))
    text = CompletionAdapter(settings, _TEXT_COMPLETION, ("prompt", "model"), ("prompt",))
    embedding = EmbeddingAdapter(settings, _EMBEDDINGS, ("model", "input"), ("input",))
    # The Responses API is a chat operation, as it is in the OpenAI adapter.
    responses = ResponsesAdapter(settings, _CHAT, ("input", "model"), ("instructions", "input"))
    found: list[Target] = []
    for sync_name, async_name, adapter in (
        ("completion", "acompletion", chat),
        ("text_completion", "atext_completion", text),
        ("embedding", "aembedding", embedding),
        ("responses", "aresponses", responses),
    ):
        # The package's own names, which applications call (`litellm.completion`); a release without
        # one of them (older ones lack `responses`) is skipped.
        found.append(Target("litellm", "", sync_name, adapter, is_async=False, lazy=True))
        found.append(Target("litellm", "", async_name, adapter, is_async=True, lazy=True))
    return found
