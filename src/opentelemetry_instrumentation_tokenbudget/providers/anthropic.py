"""Anthropic: `messages.create` (plain and streamed), `messages.parse`, `messages.stream()`, and the same
under `beta`."""

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
from ..usage import TokenUsage, count, required, total
from ._common import endpoint_of, estimate_tokens, int_or_none, prompt_prefix
from .anthropic_tracing import keep_sdk_spans_out_of_our_calls
from .targets import StreamManagerTarget, Target

_ANTHROPIC = GenAiProviderNameValues.ANTHROPIC.value
_CHAT = GenAiOperationNameValues.CHAT.value


@cache
def _stream_classes() -> tuple[type, ...]:
    from anthropic import AsyncStream, Stream

    return (Stream, AsyncStream)


def _one_hour_writes(usage: Any) -> int:
    # Present in responses since the one-hour cache exists; older ones wrote for five minutes only.
    breakdown = getattr(usage, "cache_creation", None)
    return count(getattr(breakdown, "ephemeral_1h_input_tokens", None))


def message_usage(usage: Any) -> TokenUsage:
    """Anthropic counts cache reads and writes apart from `input_tokens`; the conventions include them."""
    cache_read = getattr(usage, "cache_read_input_tokens", None)
    cache_write = getattr(usage, "cache_creation_input_tokens", None)
    details = getattr(usage, "output_tokens_details", None)
    return TokenUsage(
        input_tokens=total(required(getattr(usage, "input_tokens", None)), cache_read, cache_write),
        output_tokens=required(getattr(usage, "output_tokens", None)),
        cache_read_tokens=count(cache_read),
        cache_write_tokens=count(cache_write),
        cache_write_1h_tokens=_one_hour_writes(usage),
        reasoning_tokens=count(getattr(details, "thinking_tokens", None)),
        web_searches=_web_searches(usage),
    )


def _web_searches(usage: Any) -> int:
    # Billed per search, on top of the tokens, when the server-side web search tool ran.
    server_tools = getattr(usage, "server_tool_use", None)
    return count(getattr(server_tools, "web_search_requests", None))


def message_summary(message: Any) -> ResponseSummary:
    stop_reason = getattr(message, "stop_reason", None)
    usage = getattr(message, "usage", None)
    return ResponseSummary(
        usage=message_usage(usage) if usage is not None else None,
        response_model=message.model,
        response_id=message.id,
        finish_reasons=(stop_reason,) if stop_reason else (),
    )


class MessagesAdapter(NoPreparation, ResultIsTheStream):
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def describe(self, instance: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> RequestInfo:
        client = instance._client
        if not self._settings.anthropic_sdk_spans:
            keep_sdk_spans_out_of_our_calls(client)
        endpoint = endpoint_of(client, client._base_url, _ANTHROPIC, self._settings.base_url_providers)
        messages, system = kwargs.get("messages"), kwargs.get("system")
        return RequestInfo(
            provider=endpoint.provider,
            operation=_CHAT,
            model=str(kwargs["model"]),
            max_output_tokens=int_or_none(kwargs.get("max_tokens")),
            server_address=endpoint.address,
            server_port=endpoint.port,
            price_route=endpoint.route,
            estimate_input_tokens=lambda: estimate_tokens(messages, system),
            # The system prompt comes first in the request the model sees, so first in the prefix.
            prompt_prefix=lambda: prompt_prefix(system, messages),
        )

    @staticmethod
    def is_stream(result: Any) -> bool:
        return isinstance(result, _stream_classes())

    @staticmethod
    def summarize(result: Any) -> ResponseSummary:
        return message_summary(result)

    @staticmethod
    def accumulator(hide_usage: bool) -> MessageEvents:
        return MessageEvents()

    @staticmethod
    def summarize_stream_manager(stream: Any) -> tuple[ResponseSummary, bool]:
        """The summary of a `MessageStream`, whose snapshot the SDK keeps up to date, and whether it
        saw the final usage."""
        # The public property asserts that a snapshot exists (anthropic 2 added a private
        # `_current_snapshot_or_none`; earlier releases have only the property).
        try:
            snapshot = stream.current_message_snapshot
        except AssertionError:
            return ResponseSummary(), False
        if snapshot is None:
            return ResponseSummary(), False
        summary = message_summary(snapshot)
        return summary, snapshot.stop_reason is not None


class MessageEvents:
    """Raw stream events. `message_start` carries a placeholder `output_tokens`; `message_delta`
    carries the cumulative count, which REPLACES it (adding them counts the first tokens twice)."""

    __slots__ = ("_id", "_model", "_stop_reason", "_usage", "_usage_final", "output_characters")

    def __init__(self) -> None:
        self.output_characters = 0
        self._model: str | None = None
        self._id: str | None = None
        self._stop_reason: str | None = None
        self._usage: dict[str, object] = {}
        """The counts as reported, checked when the summary is made (`usage.count`)."""
        self._usage_final = False

    def on_item(self, event: Any) -> bool:
        event_type = event.type
        # Deltas first: all but a handful of a stream's events are deltas.
        if event_type == "content_block_delta":
            delta = event.delta
            text = (
                getattr(delta, "text", None)
                or getattr(delta, "thinking", None)
                or getattr(delta, "partial_json", None)
            )
            if isinstance(text, str):
                self.output_characters += len(text)
        elif event_type == "message_start":
            message = event.message
            self._model, self._id = message.model, message.id
            self._take_usage(message.usage)
        elif event_type == "message_delta":
            self._take_usage(event.usage)
            self._stop_reason = event.delta.stop_reason or self._stop_reason
            self._usage_final = True
        return False

    def _take_usage(self, usage: Any) -> None:
        for field in (
            "input_tokens",
            "output_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
        ):
            value = getattr(usage, field, None)
            if value is not None:
                self._usage[field] = value
        if getattr(usage, "cache_creation", None) is not None:
            self._usage["cache_write_1h_tokens"] = _one_hour_writes(usage)
        details = getattr(usage, "output_tokens_details", None)
        if details is not None:
            self._usage["thinking_tokens"] = count(getattr(details, "thinking_tokens", None))
        if getattr(usage, "server_tool_use", None) is not None:
            self._usage["web_searches"] = _web_searches(usage)

    def summary(self) -> ResponseSummary:
        usage = None
        if self._usage:
            read = self._usage.get
            cache_read = read("cache_read_input_tokens")
            cache_write = read("cache_creation_input_tokens")
            usage = TokenUsage(
                input_tokens=total(required(read("input_tokens")), cache_read, cache_write),
                output_tokens=required(read("output_tokens")),
                cache_read_tokens=count(cache_read),
                cache_write_tokens=count(cache_write),
                cache_write_1h_tokens=count(read("cache_write_1h_tokens")),
                reasoning_tokens=count(read("thinking_tokens")),
                web_searches=count(read("web_searches")),
            )
        return ResponseSummary(
            usage=usage,
            response_model=self._model,
            response_id=self._id,
            finish_reasons=(self._stop_reason,) if self._stop_reason else (),
        )

    @property
    def complete(self) -> bool:
        return self._usage_final


def targets(settings: Settings) -> list[Target]:
    messages = MessagesAdapter(settings)
    found: list[Target] = []
    for module in ("anthropic.resources.messages.messages", "anthropic.resources.beta.messages.messages"):
        for class_name, is_async in (("Messages", False), ("AsyncMessages", True)):
            found.append(Target(module, class_name, "create", messages, is_async=is_async))
            # Structured outputs: `parse` sends its own request rather than going through `create`.
            found.append(Target(module, class_name, "parse", messages, is_async=is_async))
            found.append(StreamManagerTarget(module, class_name, "stream", messages, is_async=is_async))
    return found
