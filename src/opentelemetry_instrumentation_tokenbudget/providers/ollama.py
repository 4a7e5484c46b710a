"""Ollama through its own SDK (`ollama`): `chat`, `generate`, `embed` (and the older `embeddings`), on
`Client` and `AsyncClient`, plain and streamed, and the module's own `ollama.chat(...)` functions.

Those functions are methods of a client made when `ollama` is imported, bound before we could wrap
them; so we wrap the one method that all of them call, `_request(cls, method, path, json=...,
stream=...)`, and let every other path (`pull`, `list`, `show`...) pass untouched (`describe`
returns None for them), as for botocore.

Usage, as Ollama reports it: `prompt_eval_count` and `eval_count` in the final object (`done: true`),
the only line of a stream that has them; no cached or thinking count (thinking is inside
`eval_count`). Where the server is decides the price (`pricing.endpoints`): a local host on Ollama's
port is a local model, free unless the user priced it; another host is not free unless the user
names it in `local_servers`.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import AsyncGeneratorType, GeneratorType
from typing import Any

from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import GenAiOperationNameValues

from ..adapter import NoPreparation, RequestInfo, ResponseSummary, ResultIsTheStream
from ..config import Settings
from ..pricing.endpoints import LOCAL_SERVER_PORTS
from ..usage import TokenUsage, count
from ._common import endpoint_of, estimate_tokens, int_or_none, prompt_prefix
from .targets import Target

_OLLAMA = LOCAL_SERVER_PORTS[11434]
_OPERATIONS: Mapping[str, str] = {
    "/api/chat": GenAiOperationNameValues.CHAT.value,
    "/api/generate": GenAiOperationNameValues.TEXT_COMPLETION.value,
    "/api/embed": GenAiOperationNameValues.EMBEDDINGS.value,
    "/api/embeddings": GenAiOperationNameValues.EMBEDDINGS.value,
}
_EMBEDDINGS = GenAiOperationNameValues.EMBEDDINGS.value


def _usage(response: Any) -> TokenUsage | None:
    prompt, output = getattr(response, "prompt_eval_count", None), getattr(response, "eval_count", None)
    if prompt is None and output is None:
        return None
    return TokenUsage(input_tokens=count(prompt), output_tokens=count(output))


def _summary(response: Any) -> ResponseSummary:
    usage = _usage(response)
    reason = getattr(response, "done_reason", None)
    return ResponseSummary(
        usage=usage,
        response_model=getattr(response, "model", None),
        finish_reasons=(reason,) if reason else (),
        # The older /api/embeddings reports no count at all: estimated from the request instead.
        counts_missing=usage is None,
    )


def _text_of(response: Any) -> int:
    message = getattr(response, "message", None)
    parts = (
        (message.content, getattr(message, "thinking", None))
        if message is not None
        else (getattr(response, "response", None), getattr(response, "thinking", None))
    )
    return sum(len(part) for part in parts if isinstance(part, str))


class OllamaAdapter(NoPreparation, ResultIsTheStream):
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def describe(self, instance: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> RequestInfo | None:
        # _request(cls, method, path, json=..., stream=...)
        operation = _OPERATIONS.get(args[2]) if len(args) > 2 and isinstance(args[2], str) else None
        if operation is None:
            return None
        body = kwargs.get("json") or {}
        endpoint = endpoint_of(
            instance, instance._client.base_url, _OLLAMA, self._settings.base_url_providers
        )
        prompt: tuple[Any, ...] = (
            body.get("system"),
            body.get("messages"),
            body.get("prompt"),
            body.get("input"),
        )
        options = body.get("options")
        return RequestInfo(
            provider=endpoint.provider,
            operation=operation,
            model=str(body.get("model") or ""),
            max_output_tokens=int_or_none(options.get("num_predict"))
            if isinstance(options, Mapping)
            else None,
            server_address=endpoint.address,
            server_port=endpoint.port,
            price_route=endpoint.route,
            estimate_input_tokens=lambda: estimate_tokens(*prompt),
            prompt_prefix=None if operation == _EMBEDDINGS else lambda: prompt_prefix(*prompt),
        )

    @staticmethod
    def summarize(result: Any) -> ResponseSummary:
        return _summary(result)

    @staticmethod
    def is_stream(result: Any) -> bool:
        return isinstance(result, (GeneratorType, AsyncGeneratorType))

    @staticmethod
    def accumulator(hide_usage: bool) -> OllamaParts:
        return OllamaParts()


class OllamaParts:
    """The NDJSON lines of a stream, parsed by the SDK; the last one (`done: true`) has the counts."""

    __slots__ = ("_final", "_model", "output_characters")

    def __init__(self) -> None:
        self.output_characters = 0
        self._model: str | None = None
        self._final: ResponseSummary | None = None

    def on_item(self, part: Any) -> bool:
        self.output_characters += _text_of(part)
        if self._model is None:
            self._model = getattr(part, "model", None)
        if getattr(part, "done", False):
            self._final = _summary(part)
        return False

    def summary(self) -> ResponseSummary:
        return self._final or ResponseSummary(response_model=self._model)

    @property
    def complete(self) -> bool:
        return self._final is not None and self._final.usage is not None


def targets(settings: Settings) -> list[Target]:
    adapter = OllamaAdapter(settings)
    return [
        Target("ollama._client", "Client", "_request", adapter, is_async=False),
        Target("ollama._client", "AsyncClient", "_request", adapter, is_async=True),
    ]
