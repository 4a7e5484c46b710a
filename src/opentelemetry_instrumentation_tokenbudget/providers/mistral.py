"""Mistral through its own SDK (`mistralai`): `chat.complete`, `chat.complete_async`, `chat.stream`,
`chat.stream_async`, `embeddings.create` and `embeddings.create_async`.

`chat.parse*` go through `complete` / `stream` and are counted there. Usage is OpenAI's shape:
`prompt_tokens` includes `prompt_tokens_details.cached_tokens` (an untyped extra of the SDK's
`UsageInfo`, hence a plain dict); Magistral's reasoning has no count of its own and is inside
`completion_tokens`. Streams send the usage in their last chunk (the one with a `finish_reason`)
without being asked. The SDK moved from `mistralai.chat` (1.x, 2.x) to `mistralai.client.chat` (3.x):
both are targets, and the one that is not there is skipped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GenAiOperationNameValues,
    GenAiProviderNameValues,
)

from ..adapter import NoPreparation, RequestInfo, ResponseSummary, ResultIsTheStream
from ..config import Settings
from ..usage import TokenUsage, count, required
from ._common import endpoint_of, estimate_tokens, int_or_none, prompt_prefix
from .targets import Target

_MISTRAL = GenAiProviderNameValues.MISTRAL_AI.value
_CHAT = GenAiOperationNameValues.CHAT.value
_EMBEDDINGS = GenAiOperationNameValues.EMBEDDINGS.value
_PACKAGES = ("mistralai.client", "mistralai")


def _field(value: Any, name: str) -> Any:
    if isinstance(value, Mapping):
        return value.get(name)
    return getattr(value, name, None)


def _usage(usage: Any) -> TokenUsage:
    return TokenUsage(
        input_tokens=required(_field(usage, "prompt_tokens")),
        output_tokens=required(_field(usage, "completion_tokens")),
        cache_read_tokens=count(_field(_field(usage, "prompt_tokens_details"), "cached_tokens")),
    )


def _finish_reasons(choices: Any) -> tuple[str, ...]:
    return tuple(str(choice.finish_reason) for choice in choices or () if choice.finish_reason)


class _MistralRequests(NoPreparation, ResultIsTheStream):
    def __init__(self, settings: Settings, operation: str, streams: bool) -> None:
        self._settings = settings
        self._operation = operation
        self._streams = streams

    def describe(self, instance: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> RequestInfo:
        # A per-call `server_url` wins over the client's, as in the SDK.
        url = kwargs.get("server_url") or instance.sdk_configuration.get_server_details()[0]
        endpoint = endpoint_of(instance, url, _MISTRAL, self._settings.base_url_providers)
        chat = self._operation == _CHAT
        prompt = kwargs.get("messages") if chat else kwargs.get("inputs")
        return RequestInfo(
            provider=endpoint.provider,
            operation=self._operation,
            model=str(kwargs["model"]),
            max_output_tokens=int_or_none(kwargs.get("max_tokens")) if chat else None,
            server_address=endpoint.address,
            server_port=endpoint.port,
            price_route=endpoint.route,
            estimate_input_tokens=lambda: estimate_tokens(prompt),
            prompt_prefix=(lambda: prompt_prefix(prompt)) if chat else None,
        )

    def is_stream(self, result: Any) -> bool:
        # Only `stream` / `stream_async` return streams (an `EventStream`, or a generator in early 1.x).
        return self._streams and result is not None

    @staticmethod
    def accumulator(hide_usage: bool) -> MistralChunks:
        return MistralChunks()


class ChatAdapter(_MistralRequests):
    def __init__(self, settings: Settings, streams: bool) -> None:
        super().__init__(settings, _CHAT, streams)

    @staticmethod
    def summarize(result: Any) -> ResponseSummary:
        usage = result.usage
        return ResponseSummary(
            usage=_usage(usage) if usage is not None else None,
            response_model=result.model,
            response_id=result.id,
            finish_reasons=_finish_reasons(result.choices),
        )


class EmbeddingsAdapter(_MistralRequests):
    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, _EMBEDDINGS, streams=False)

    @staticmethod
    def summarize(result: Any) -> ResponseSummary:
        usage = result.usage
        return ResponseSummary(
            usage=TokenUsage(input_tokens=required(_field(usage, "prompt_tokens")))
            if usage is not None
            else None,
            response_model=result.model,
            response_id=result.id,
        )


class MistralChunks:
    """`CompletionEvent`s, each holding a chunk in `data`; the last one carries the usage."""

    __slots__ = ("_finish_reasons", "_id", "_model", "_usage", "output_characters")

    def __init__(self) -> None:
        self.output_characters = 0
        self._model: str | None = None
        self._id: str | None = None
        self._finish_reasons: list[str] = []
        self._usage: TokenUsage | None = None

    def on_item(self, event: Any) -> bool:
        chunk = event.data
        if self._model is None:
            self._model, self._id = chunk.model, chunk.id
        for choice in chunk.choices:
            if choice.finish_reason:
                self._finish_reasons.append(str(choice.finish_reason))
            content = choice.delta.content
            if isinstance(content, str):
                self.output_characters += len(content)
        if chunk.usage is not None:
            self._usage = _usage(chunk.usage)
        return False

    def summary(self) -> ResponseSummary:
        return ResponseSummary(
            usage=self._usage,
            response_model=self._model,
            response_id=self._id,
            finish_reasons=tuple(self._finish_reasons),
        )

    @property
    def complete(self) -> bool:
        return self._usage is not None


def targets(settings: Settings) -> list[Target]:
    complete, stream = ChatAdapter(settings, streams=False), ChatAdapter(settings, streams=True)
    embeddings = EmbeddingsAdapter(settings)
    found: list[Target] = []
    for package in _PACKAGES:
        found += [
            Target(f"{package}.chat", "Chat", "complete", complete, is_async=False),
            Target(f"{package}.chat", "Chat", "complete_async", complete, is_async=True),
            Target(f"{package}.chat", "Chat", "stream", stream, is_async=False),
            Target(f"{package}.chat", "Chat", "stream_async", stream, is_async=True),
            Target(f"{package}.embeddings", "Embeddings", "create", embeddings, is_async=False),
            Target(f"{package}.embeddings", "Embeddings", "create_async", embeddings, is_async=True),
        ]
    return found
