"""Google Gemini through `google-genai`, the SDK of both the Gemini API and Vertex AI (`vertexai=True`).

We wrap the methods that send one HTTP request each (`Models._generate_content`,
`_generate_content_stream`, `_embed_content`, and the same on `AsyncModels`): the public
`generate_content` may send several (automatic function calling, continuations), and chats
(`client.chats.create(...).send_message`) go through them too, so every request is counted once and
reserved for before it leaves.

Usage, as the API reports it: `promptTokenCount` includes `cachedContentTokenCount`;
`toolUsePromptTokenCount` is input beside it; `thoughtsTokenCount` is output, billed as output, and
not inside `candidatesTokenCount`. Gemini API streams repeat the running totals in every chunk (the
last one wins, never the sum); Vertex AI streams send them in the last chunk only.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import AsyncGeneratorType, GeneratorType
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GenAiOperationNameValues,
    GenAiProviderNameValues,
)

from ..adapter import NoPreparation, RequestInfo, ResponseSummary, ResultIsTheStream
from ..config import Settings
from ..usage import TokenUsage, count, tokens_for_characters, total
from ._common import int_or_none
from .targets import Target

_GEMINI = GenAiProviderNameValues.GCP_GEMINI.value
_VERTEX_AI = GenAiProviderNameValues.GCP_VERTEX_AI.value
_CHAT = GenAiOperationNameValues.GENERATE_CONTENT.value
_EMBEDDINGS = GenAiOperationNameValues.EMBEDDINGS.value
_MODULE = "google.genai.models"
_AUDIO, _IMAGE, _VIDEO = "AUDIO", "IMAGE", "VIDEO"  # google.genai.types.MediaModality values


def _model_name(model: str) -> str:
    # "models/gemini-2.5-flash" and "projects/p/locations/l/publishers/google/models/gemini-2.5-flash"
    # name the same model as "gemini-2.5-flash", which is what the price data knows.
    return model.rsplit("/", 1)[-1]


def _text_length(value: Any) -> int:
    """Characters of text in `contents` of any shape the SDK takes (strings, dicts, Content/Part)."""
    if value is None:
        return 0
    if isinstance(value, str):
        return len(value)
    if isinstance(value, (list, tuple)):
        return sum(_text_length(item) for item in value)
    if isinstance(value, Mapping):
        return _text_length(value.get("text")) + _text_length(value.get("parts"))
    return _text_length(getattr(value, "text", None)) + _text_length(getattr(value, "parts", None))


def _config_value(config: Any, name: str) -> Any:
    if isinstance(config, Mapping):
        return config.get(name)
    return getattr(config, name, None)


def _by_modality(details: Any) -> dict[str, int]:
    """A `ModalityTokenCount` list as {"AUDIO": n, "IMAGE": n, ...}."""
    counts: dict[str, int] = {}
    for item in details or ():
        modality = item.modality
        name = str(getattr(modality, "value", modality))
        counts[name] = counts.get(name, 0) + (item.token_count or 0)
    return counts


def _usage(metadata: Any) -> TokenUsage | None:
    if metadata is None or metadata.prompt_token_count is None:
        return None  # Vertex's middle stream chunks carry only `trafficType`
    thoughts = metadata.thoughts_token_count
    # Audio, images and video are inside the prompt's and the candidates' counts, with prices of
    # their own (gemini-2.5-flash: audio input 1.00 against 0.30 for text, per million).
    prompt = _by_modality(metadata.prompt_tokens_details)
    cached = _by_modality(metadata.cache_tokens_details)
    candidates = _by_modality(metadata.candidates_tokens_details)
    return TokenUsage(
        input_tokens=total(metadata.prompt_token_count, metadata.tool_use_prompt_token_count),
        output_tokens=total(metadata.candidates_token_count, thoughts),
        cache_read_tokens=count(metadata.cached_content_token_count),
        reasoning_tokens=count(thoughts),
        input_audio_tokens=prompt.get(_AUDIO, 0),
        input_image_tokens=prompt.get(_IMAGE, 0),
        input_video_tokens=prompt.get(_VIDEO, 0),
        cache_audio_read_tokens=cached.get(_AUDIO, 0),
        output_audio_tokens=candidates.get(_AUDIO, 0),
        output_image_tokens=candidates.get(_IMAGE, 0),
    )


def _grounded(candidates: Any) -> bool:
    """Whether Google Search grounded the answer: Gemini 2.x bills each grounded prompt (the price
    data's web searches), whatever the number of queries it ran."""
    for candidate in candidates or ():
        metadata = candidate.grounding_metadata
        if metadata is not None and metadata.web_search_queries:
            return True
    return False


def _finish_reasons(candidates: Any) -> tuple[str, ...]:
    reasons = []
    for candidate in candidates or ():
        reason = candidate.finish_reason
        if reason is not None:
            reasons.append(str(getattr(reason, "value", reason)).lower())
    return tuple(reasons)


def _summary(response: Any) -> ResponseSummary:
    usage = _usage(response.usage_metadata)
    if usage is not None and _grounded(response.candidates):
        usage.web_searches = 1
    return ResponseSummary(
        usage=usage,
        response_model=response.model_version,
        response_id=response.response_id,
        finish_reasons=_finish_reasons(response.candidates),
    )


class _GoogleRequests(NoPreparation, ResultIsTheStream):
    def __init__(self, operation: str) -> None:
        self._operation = operation

    def describe(self, instance: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> RequestInfo:
        api_client = instance._api_client
        vertex = bool(api_client.vertexai)
        options = api_client._http_options  # a dict before google-genai 1.10, an HttpOptions after
        base_url = options.get("base_url") if isinstance(options, Mapping) else options.base_url
        url = urlsplit(str(base_url or ""))
        contents, config = kwargs.get("contents"), kwargs.get("config")
        return RequestInfo(
            provider=_VERTEX_AI if vertex else _GEMINI,
            operation=self._operation,
            model=_model_name(str(kwargs["model"])),
            max_output_tokens=int_or_none(_config_value(config, "max_output_tokens")),
            server_address=url.hostname,
            server_port=url.port or (443 if url.scheme == "https" else 80),
            cloud_region=api_client.location if vertex else None,
            estimate_input_tokens=lambda: tokens_for_characters(
                _text_length(contents) + _text_length(_config_value(config, "system_instruction"))
            ),
        )

    @staticmethod
    def is_stream(result: Any) -> bool:
        return isinstance(result, (GeneratorType, AsyncGeneratorType))


class GenerateContentAdapter(_GoogleRequests):
    def __init__(self) -> None:
        super().__init__(_CHAT)

    @staticmethod
    def summarize(result: Any) -> ResponseSummary:
        return _summary(result)

    @staticmethod
    def accumulator(hide_usage: bool) -> ContentChunks:
        return ContentChunks()


class ContentChunks:
    """`GenerateContentResponse` chunks: the usage of the last chunk that has any is the call's."""

    __slots__ = (
        "_finish_reasons",
        "_grounded",
        "_id",
        "_model",
        "_usage",
        "_usage_final",
        "output_characters",
    )

    def __init__(self) -> None:
        self.output_characters = 0
        self._model: str | None = None
        self._id: str | None = None
        self._usage: TokenUsage | None = None
        self._usage_final = False
        self._finish_reasons: tuple[str, ...] = ()
        self._grounded = False

    def on_item(self, chunk: Any) -> bool:
        candidates = chunk.candidates
        if candidates:
            content = candidates[0].content
            for part in (content.parts if content is not None else None) or ():
                text = part.text
                if text:
                    self.output_characters += len(text)
            reasons = _finish_reasons(candidates)
            if reasons:
                self._finish_reasons = reasons
            if not self._grounded:
                self._grounded = _grounded(candidates)
        usage = _usage(chunk.usage_metadata)
        if usage is not None:
            self._usage = usage
            self._usage_final = bool(self._finish_reasons)
        if self._model is None:
            self._model, self._id = chunk.model_version, chunk.response_id
        return False

    def summary(self) -> ResponseSummary:
        usage = self._usage
        if usage is not None and self._grounded:
            usage.web_searches = 1
        return ResponseSummary(
            usage=usage,
            response_model=self._model,
            response_id=self._id,
            finish_reasons=self._finish_reasons,
        )

    @property
    def complete(self) -> bool:
        return self._usage_final


class EmbedContentAdapter(_GoogleRequests):
    """Vertex AI counts each embedding's tokens (`statistics.token_count`); the Gemini API reports
    none, so the input is estimated from its text and the cost marked estimated."""

    def __init__(self) -> None:
        super().__init__(_EMBEDDINGS)

    def describe(self, instance: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> RequestInfo:
        request = super().describe(instance, args, kwargs)
        request.max_output_tokens = None
        return request

    @staticmethod
    def summarize(result: Any) -> ResponseSummary:
        counts = [
            embedding.statistics.token_count
            for embedding in result.embeddings or ()
            if embedding.statistics is not None and embedding.statistics.token_count is not None
        ]
        if not counts:
            return ResponseSummary(counts_missing=True)
        return ResponseSummary(usage=TokenUsage(input_tokens=int(sum(counts))))

    @staticmethod
    def accumulator(hide_usage: bool) -> ContentChunks:
        raise TypeError("embeddings do not stream")


def targets(settings: Settings) -> list[Target]:
    generate = GenerateContentAdapter()
    embed = EmbedContentAdapter()
    found: list[Target] = []
    for class_name, is_async in (("Models", False), ("AsyncModels", True)):
        found.append(Target(_MODULE, class_name, "_generate_content", generate, is_async=is_async))
        found.append(Target(_MODULE, class_name, "_generate_content_stream", generate, is_async=is_async))
        found.append(Target(_MODULE, class_name, "_embed_content", embed, is_async=is_async))
    return found
