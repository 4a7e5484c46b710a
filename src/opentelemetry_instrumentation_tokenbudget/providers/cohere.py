"""Cohere's v2 API through its own SDK (`cohere`): `ClientV2.chat`, `chat_stream` and `embed`, the same
on `AsyncClientV2`, and on the v1 client's `client.v2`.

Usage, as Cohere reports it: `usage.billed_units` is what Cohere bills; `usage.tokens` counts what
the model read, the prompt template included (69 tokens for a 7-token question). We price the billed
units, report them as the call's tokens, and say so (`tokenbudget.usage.billed_units`). Streams
carry the usage in their `message-end` event. `chat_stream` is a generator function: the request
leaves when the caller first asks for an event, after the budget reserved it.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import AsyncGeneratorType, GeneratorType
from typing import Any

from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GenAiOperationNameValues,
    GenAiProviderNameValues,
)

from ..adapter import NoPreparation, RequestInfo, ResponseSummary, ResultIsTheStream
from ..config import Settings
from ..usage import TokenUsage, count
from ._common import endpoint_of, estimate_tokens, given, int_or_none, prompt_prefix
from .targets import Target

_COHERE = GenAiProviderNameValues.COHERE.value
_CHAT = GenAiOperationNameValues.CHAT.value
_EMBEDDINGS = GenAiOperationNameValues.EMBEDDINGS.value
_MODULE = "cohere.v2.client"


def _billed(units: Any) -> TokenUsage | None:
    """Cohere's counts are floats in its schema, whole numbers on the wire."""
    if units is None:
        return None
    return TokenUsage(
        input_tokens=count(_whole(getattr(units, "input_tokens", None))),
        output_tokens=count(_whole(getattr(units, "output_tokens", None))),
    )


def _whole(value: object) -> object:
    """A float that is a whole number as the int it is; anything else as it is (for `count`)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _summary(usage: Any, response_id: str | None, finish_reason: Any) -> ResponseSummary:
    billed = _billed(getattr(usage, "billed_units", None)) if usage is not None else None
    return ResponseSummary(
        usage=billed,
        response_id=response_id,
        finish_reasons=(str(finish_reason).lower(),) if finish_reason else (),
        usage_is_billed_units=billed is not None,
    )


class _CohereRequests(NoPreparation, ResultIsTheStream):
    def __init__(self, settings: Settings, operation: str) -> None:
        self._settings = settings
        self._operation = operation

    def describe(self, instance: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> RequestInfo:
        # Releases before 5.14 keep the wrapper on the client; later ones on its raw client.
        wrapper = getattr(instance, "_client_wrapper", None) or instance._raw_client._client_wrapper
        url = wrapper.get_base_url()
        endpoint = endpoint_of(instance, url, _COHERE, self._settings.base_url_providers)
        chat = self._operation == _CHAT
        prompt = kwargs.get("messages") if chat else kwargs.get("texts") or kwargs.get("inputs")
        max_tokens = kwargs.get("max_tokens")
        return RequestInfo(
            provider=endpoint.provider,
            operation=self._operation,
            model=str(kwargs["model"]),
            max_output_tokens=int_or_none(max_tokens) if chat and given(max_tokens) else None,
            server_address=endpoint.address,
            server_port=endpoint.port,
            price_route=endpoint.route,
            estimate_input_tokens=lambda: estimate_tokens(prompt),
            prompt_prefix=(lambda: prompt_prefix(prompt)) if chat else None,
        )

    @staticmethod
    def is_stream(result: Any) -> bool:
        return isinstance(result, (GeneratorType, AsyncGeneratorType))

    @staticmethod
    def accumulator(hide_usage: bool) -> CohereEvents:
        return CohereEvents()


class ChatAdapter(_CohereRequests):
    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, _CHAT)

    @staticmethod
    def summarize(result: Any) -> ResponseSummary:
        return _summary(result.usage, result.id, result.finish_reason)


class EmbedAdapter(_CohereRequests):
    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, _EMBEDDINGS)

    @staticmethod
    def summarize(result: Any) -> ResponseSummary:
        meta = result.meta
        return _summary(meta, result.id, None)


class CohereEvents:
    """v2 chat stream events; `message-end` carries the usage, `message-start` the id."""

    __slots__ = ("_final", "_id", "output_characters")

    def __init__(self) -> None:
        self.output_characters = 0
        self._id: str | None = None
        self._final: ResponseSummary | None = None

    def on_item(self, event: Any) -> bool:
        kind = getattr(event, "type", None)
        if kind == "content-delta":
            content = event.delta.message.content
            for text in (getattr(content, "text", None), getattr(content, "thinking", None)):
                if isinstance(text, str):
                    self.output_characters += len(text)
        elif kind == "message-start":
            self._id = event.id
        elif kind == "message-end":
            delta = event.delta
            self._final = _summary(delta.usage, self._id, delta.finish_reason)
        return False

    def summary(self) -> ResponseSummary:
        return self._final or ResponseSummary(response_id=self._id)

    @property
    def complete(self) -> bool:
        return self._final is not None and self._final.usage is not None


def targets(settings: Settings) -> list[Target]:
    chat, embed = ChatAdapter(settings), EmbedAdapter(settings)
    return [
        Target(_MODULE, "V2Client", "chat", chat, is_async=False),
        Target(_MODULE, "V2Client", "chat_stream", chat, is_async=False),
        Target(_MODULE, "V2Client", "embed", embed, is_async=False),
        Target(_MODULE, "AsyncV2Client", "chat", chat, is_async=True),
        # An async generator function: calling it returns the stream at once, nothing to await.
        Target(_MODULE, "AsyncV2Client", "chat_stream", chat, is_async=False),
        Target(_MODULE, "AsyncV2Client", "embed", embed, is_async=True),
    ]
