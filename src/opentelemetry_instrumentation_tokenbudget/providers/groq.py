"""Groq through its own SDK (`groq`): `chat.completions.create`, sync and async, plain and streamed.

The request and the usage block are OpenAI's shape: `prompt_tokens` includes
`prompt_tokens_details.cached_tokens` and `completion_tokens` includes
`completion_tokens_details.reasoning_tokens`, as the conventions count them. Groq streams report the
usage whether asked or not, in the last chunk under `x_groq.usage`; newer responses repeat it as the
chunk's top-level `usage`. It is one usage in two places: read once, never added.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GenAiOperationNameValues,
    GenAiProviderNameValues,
)

from ..adapter import NoPreparation, RequestInfo, ResponseSummary, ResultIsTheStream
from ..config import Settings
from ..usage import TokenUsage, count, required
from ._common import endpoint_of, estimate_tokens, given, int_or_none, prompt_prefix
from .targets import Target

_GROQ = GenAiProviderNameValues.GROQ.value
_CHAT = GenAiOperationNameValues.CHAT.value


@cache
def _stream_classes() -> tuple[type, ...]:
    from groq import AsyncStream, Stream

    return (Stream, AsyncStream)


def _field(value: Any, name: str) -> Any:
    # Releases before 1.0 keep the token details as untyped extras: plain dicts, not models.
    if isinstance(value, Mapping):
        return value.get(name)
    return getattr(value, name, None)


def completion_usage(usage: Any) -> TokenUsage:
    """`prompt_tokens` already includes the cached tokens, `completion_tokens` the reasoning ones."""
    return TokenUsage(
        input_tokens=required(_field(usage, "prompt_tokens")),
        output_tokens=required(_field(usage, "completion_tokens")),
        cache_read_tokens=count(_field(_field(usage, "prompt_tokens_details"), "cached_tokens")),
        reasoning_tokens=count(_field(_field(usage, "completion_tokens_details"), "reasoning_tokens")),
    )


def _finish_reasons(choices: Any) -> tuple[str, ...]:
    return tuple(choice.finish_reason for choice in choices or () if choice.finish_reason)


class GroqChatAdapter(NoPreparation, ResultIsTheStream):
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def describe(self, instance: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> RequestInfo:
        client = instance._client
        endpoint = endpoint_of(client, client._base_url, _GROQ, self._settings.base_url_providers)
        max_tokens = kwargs.get("max_completion_tokens")
        if not given(max_tokens):
            max_tokens = kwargs.get("max_tokens")
        messages = kwargs.get("messages")
        return RequestInfo(
            provider=endpoint.provider,
            operation=_CHAT,
            model=str(kwargs["model"]),
            max_output_tokens=int_or_none(max_tokens),
            server_address=endpoint.address,
            server_port=endpoint.port,
            price_route=endpoint.route,
            estimate_input_tokens=lambda: estimate_tokens(messages),
            prompt_prefix=lambda: prompt_prefix(messages),
        )

    @staticmethod
    def summarize(result: Any) -> ResponseSummary:
        usage = result.usage
        return ResponseSummary(
            usage=completion_usage(usage) if usage is not None else None,
            response_model=result.model,
            response_id=result.id,
            finish_reasons=_finish_reasons(result.choices),
        )

    @staticmethod
    def is_stream(result: Any) -> bool:
        return isinstance(result, _stream_classes())

    @staticmethod
    def accumulator(hide_usage: bool) -> GroqChunks:
        return GroqChunks()


class GroqChunks:
    """Chat completion chunks; the last one carries the usage (`x_groq.usage`, maybe also `usage`)."""

    __slots__ = ("_finish_reasons", "_id", "_model", "_usage", "output_characters")

    def __init__(self) -> None:
        self.output_characters = 0
        self._model: str | None = None
        self._id: str | None = None
        self._finish_reasons: list[str] = []
        self._usage: TokenUsage | None = None

    def on_item(self, chunk: Any) -> bool:
        if self._model is None:
            self._model, self._id = chunk.model, chunk.id
        for choice in chunk.choices:
            if choice.finish_reason:
                self._finish_reasons.append(choice.finish_reason)
            delta = choice.delta
            # Reasoning text (`reasoning_format="parsed"`) is output too, billed as such.
            for text in (delta.content, getattr(delta, "reasoning", None)):
                if isinstance(text, str):
                    self.output_characters += len(text)
        # getattr: releases before the top-level `usage` field keep only `x_groq.usage`.
        usage = getattr(chunk, "usage", None)
        if usage is None:
            usage = getattr(chunk.x_groq, "usage", None)
        if usage is not None:
            self._usage = completion_usage(usage)
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
    chat = GroqChatAdapter(settings)
    module = "groq.resources.chat.completions"
    return [
        Target(module, "Completions", "create", chat, is_async=False),
        Target(module, "AsyncCompletions", "create", chat, is_async=True),
    ]
