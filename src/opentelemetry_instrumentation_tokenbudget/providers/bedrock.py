"""Amazon Bedrock through `boto3` / `botocore`: Converse, ConverseStream, InvokeModel and
InvokeModelWithResponseStream, for every model family Bedrock serves.

botocore builds each client's methods at run time, so we wrap the one method they all call,
`BaseClient._make_api_call(operation_name, api_params)`, and let every other AWS call pass untouched
(`describe` returns None for them).

Usage, as Bedrock reports it: Converse's `inputTokens` excludes `cacheReadInputTokens` and
`cacheWriteInputTokens` (the conventions' input includes them); ConverseStream's usage is in its final
`metadata` event. InvokeModel bodies are model-native, but every InvokeModel response carries the
counts in `X-Amzn-Bedrock-*-Token-Count` headers, which we read instead of the body (a
`StreamingBody` can be read once, and it is the caller's). InvokeModelWithResponseStream's last
chunk adds `amazon-bedrock-invocationMetrics`. Event streams reach the caller as botocore parsed
them, behind a proxy that only looks.

Inference profile ids (`us.`, `eu.`, `apac.`, `global.` prefixes, or their ARNs) are priced as such:
genai-prices knows that a regional profile costs more than the global one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GenAiOperationNameValues,
    GenAiProviderNameValues,
)

from ..adapter import NoPreparation, RequestInfo, ResponseSummary
from ..config import Settings
from ..usage import TokenUsage, count, required, tokens_for_characters, total
from ._common import int_or_none, text_length
from .targets import Target

_BEDROCK = GenAiProviderNameValues.AWS_BEDROCK.value
_CHAT = GenAiOperationNameValues.CHAT.value
_EMBEDDINGS = GenAiOperationNameValues.EMBEDDINGS.value
_SERVICE = "bedrock-runtime"
_OPERATIONS = frozenset({"Converse", "ConverseStream", "InvokeModel", "InvokeModelWithResponseStream"})
_METRICS_KEY = b"amazon-bedrock-invocationMetrics"
_HEADER_PREFIX = "x-amzn-bedrock-"


@cache
def _event_stream_class() -> type:
    from botocore.eventstream import EventStream

    event_stream: type = EventStream
    return event_stream


def _model_name(model_id: str) -> str:
    # An ARN ("arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-...")
    # names its model or profile after the last slash.
    return model_id.rsplit("/", 1)[-1]


def _converse_usage(usage: Mapping[str, Any]) -> TokenUsage:
    cache_read = usage.get("cacheReadInputTokens")
    cache_write = usage.get("cacheWriteInputTokens")
    return TokenUsage(
        input_tokens=total(required(usage.get("inputTokens")), cache_read, cache_write),
        output_tokens=count(usage.get("outputTokens")),
        cache_read_tokens=count(cache_read),
        cache_write_tokens=count(cache_write),
    )


def _invocation_usage(counts: Mapping[str, Any]) -> TokenUsage:
    """From InvokeModel's headers or a stream's `amazon-bedrock-invocationMetrics` (same names)."""
    cache_read = _number(counts.get("cacheReadInputTokenCount"))
    cache_write = _number(counts.get("cacheWriteInputTokenCount"))
    return TokenUsage(
        input_tokens=total(_number(counts.get("inputTokenCount")), cache_read, cache_write),
        output_tokens=count(_number(counts.get("outputTokenCount"))),
        cache_read_tokens=count(cache_read),
        cache_write_tokens=count(cache_write),
    )


def _number(value: object) -> object:
    """A header's decimal digits as the int they spell (headers are text); anything else as it is."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return value


def _header_counts(headers: Mapping[str, str]) -> dict[str, str]:
    # "x-amzn-bedrock-cache-read-input-token-count" -> "cacheReadInputTokenCount"
    counts = {}
    for name, value in headers.items():
        if name.startswith(_HEADER_PREFIX) and name.endswith("-token-count"):
            words = name[len(_HEADER_PREFIX) :].split("-")
            counts[words[0] + "".join(word.title() for word in words[1:])] = value
    return counts


def _request_id(result: Mapping[str, Any]) -> str | None:
    metadata = result.get("ResponseMetadata") or {}
    request_id = metadata.get("RequestId")
    return request_id if isinstance(request_id, str) else None


class BedrockRuntimeAdapter(NoPreparation):
    def describe(self, instance: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> RequestInfo | None:
        operation = args[0] if args else kwargs.get("operation_name")
        if operation not in _OPERATIONS:
            return None
        meta = instance.meta
        if meta.service_model.service_name != _SERVICE:
            return None
        params = args[1] if len(args) > 1 else kwargs.get("api_params") or {}
        model = _model_name(str(params["modelId"]))
        url = urlsplit(meta.endpoint_url)
        inference = params.get("inferenceConfig") or {}
        prompt: tuple[Any, ...] = (params.get("messages"), params.get("system"))
        body = params.get("body")
        body_length = len(body) if isinstance(body, (str, bytes)) else 0
        return RequestInfo(
            provider=_BEDROCK,
            operation=_EMBEDDINGS if "embed" in model else _CHAT,
            model=model,
            max_output_tokens=int_or_none(inference.get("maxTokens")),
            server_address=url.hostname,
            server_port=url.port or (443 if url.scheme == "https" else 80),
            cloud_region=meta.region_name,
            estimate_input_tokens=lambda: tokens_for_characters(
                sum(text_length(part) for part in prompt) + body_length
            ),
        )

    @staticmethod
    def summarize(result: Any) -> ResponseSummary:
        usage = result.get("usage")
        if usage is not None:  # Converse
            stop_reason = result.get("stopReason")
            return ResponseSummary(
                usage=_converse_usage(usage),
                response_id=_request_id(result),
                finish_reasons=(stop_reason,) if stop_reason else (),
            )
        headers = (result.get("ResponseMetadata") or {}).get("HTTPHeaders") or {}
        counts = _header_counts(headers)
        return ResponseSummary(
            usage=_invocation_usage(counts) if counts else None,
            response_id=_request_id(result),
            counts_missing=not counts,
        )

    @staticmethod
    def is_stream(result: Any) -> bool:
        return isinstance(result.get("stream") or result.get("body"), _event_stream_class())

    @staticmethod
    def stream_of(result: Any) -> Any:
        return result["stream"] if "stream" in result else result["body"]

    @staticmethod
    def with_stream(result: Any, observed: Any) -> Any:
        result["stream" if "stream" in result else "body"] = observed
        return result

    @staticmethod
    def accumulator(hide_usage: bool) -> BedrockEvents:
        return BedrockEvents()


class BedrockEvents:
    """ConverseStream events (`contentBlockDelta`, `messageStop`, `metadata`) and
    InvokeModelWithResponseStream `chunk` events, whose last one carries the invocation metrics."""

    __slots__ = ("_stop_reason", "_usage", "output_characters")

    def __init__(self) -> None:
        self.output_characters = 0
        self._usage: TokenUsage | None = None
        self._stop_reason: str | None = None

    def on_item(self, event: Any) -> bool:
        delta = event.get("contentBlockDelta")
        if delta is not None:
            text = delta.get("delta", {}).get("text")
            if isinstance(text, str):
                self.output_characters += len(text)
            return False
        chunk = event.get("chunk")
        if chunk is not None:
            payload = chunk.get("bytes") or b""
            # Parsed only when it holds the metrics: the model's own event JSON is the caller's.
            if _METRICS_KEY in payload:
                self._usage = _invocation_usage(json.loads(payload)[_METRICS_KEY.decode()])
            return False
        metadata = event.get("metadata")
        if metadata is not None and "usage" in metadata:
            self._usage = _converse_usage(metadata["usage"])
        stop = event.get("messageStop")
        if stop is not None:
            self._stop_reason = stop.get("stopReason")
        return False

    def summary(self) -> ResponseSummary:
        return ResponseSummary(
            usage=self._usage, finish_reasons=(self._stop_reason,) if self._stop_reason else ()
        )

    @property
    def complete(self) -> bool:
        return self._usage is not None


def targets(settings: Settings) -> list[Target]:
    return [
        Target("botocore.client", "BaseClient", "_make_api_call", BedrockRuntimeAdapter(), is_async=False)
    ]
