"""A local stand-in for the OpenAI, Anthropic, Gemini, Bedrock and Ollama HTTP APIs: one function
from request to response.

:class:`FakeProvider` keeps the little state a provider has (its prompt caches, and the requests it was
sent), routes each request to the fake OpenAI, Anthropic, Gemini, Bedrock or Ollama API by path
(``/v1/messages...`` is Anthropic's, ``.../models/{model}:method`` Gemini's, ``/model/{id}/...``
Bedrock's, ``/api/chat`` and ``/api/generate`` Ollama's), and fails on purpose for a few model names
(OpenAI and Anthropic):

- ``fail-429``: 429 with the provider's rate-limit error body and ``retry-after`` (``"0"`` by default);
- ``fail-500``: 500 with the provider's server error body;
- ``fail-400``: 400 ``invalid_request_error``;
- ``cut-stream``: a stream that stops after :data:`CUT_STREAM_AFTER` text chunks, with no usage chunk,
  ``message_delta``, ``response.completed`` or ``[DONE]``, as when a connection drops.

Its :meth:`FakeProvider.handle` fits ``httpx2.MockTransport`` for both ``httpx2.Client`` and
``httpx2.AsyncClient`` (bodies are readable both ways); :meth:`FakeProvider.ahandle` is the coroutine
form for code that wants one.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

import httpx2

from . import fake_anthropic, fake_bedrock, fake_gemini, fake_ollama, fake_openai
from .fake_bedrock import is_bedrock_path
from .fake_gemini import is_gemini_path
from .fake_http import Exchange, request_digest

FAIL_RATE_LIMIT_MODEL = "fail-429"
FAIL_SERVER_ERROR_MODEL = "fail-500"
FAIL_BAD_REQUEST_MODEL = "fail-400"
CUT_STREAM_MODEL = "cut-stream"
CUT_STREAM_AFTER = 3

ANTHROPIC_PATH_PREFIX = "/v1/messages"


@dataclass(frozen=True)
class SeenRequest:
    """A request the fake provider received, failed ones included."""

    method: str
    path: str
    body: dict[str, Any]


class FakeProvider:
    """A deterministic fake of the OpenAI and Anthropic APIs.

    ``delay_s`` is the pause before each streamed chunk (a whole answer waits as long as its chunks
    would); ``reply``, when given, replaces the canned answer; ``retry_after`` is the value of the
    ``retry-after`` header of ``fail-429`` answers (the SDKs treat ``"0"`` as absent and back off on
    their own, so a test that wants fast retries passes e.g. ``"0.001"``).
    """

    def __init__(self, *, delay_s: float = 0.0, reply: str | None = None, retry_after: str = "0") -> None:
        self.delay_s = delay_s
        self.reply = reply
        self.retry_after = retry_after
        self._lock = threading.Lock()
        self._seen_keys: set[str] = set()
        self._requests: list[SeenRequest] = []

    @property
    def requests(self) -> list[SeenRequest]:
        """Every request received so far, in order."""
        with self._lock:
            return list(self._requests)

    def reset(self) -> None:
        """Forget the prompt caches and the requests received."""
        with self._lock:
            self._seen_keys.clear()
            self._requests.clear()

    def transport(self) -> httpx2.MockTransport:
        """An in-process transport for ``httpx2.Client(transport=...)`` or ``httpx2.AsyncClient``."""
        return httpx2.MockTransport(self.handle)

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        """Answer one request as the real API would."""
        request.read()
        exchange, parsed = self._exchange(request)
        if parsed and is_gemini_path(exchange.path):
            return fake_gemini.handle(exchange)
        if parsed and is_bedrock_path(exchange.path):
            return fake_bedrock.handle(exchange)
        if parsed and exchange.path in fake_ollama.OLLAMA_PATHS:
            return fake_ollama.handle(exchange)
        anthropic = exchange.path.startswith(ANTHROPIC_PATH_PREFIX)
        if not parsed:
            return _bad_json(exchange, anthropic=anthropic)
        failure = _planned_failure(exchange, anthropic=anthropic)
        if failure is not None:
            return failure
        return fake_anthropic.handle(exchange) if anthropic else fake_openai.handle(exchange)

    async def ahandle(self, request: httpx2.Request) -> httpx2.Response:
        """:meth:`handle` as a coroutine; the answer's body is read asynchronously, pauses included."""
        await request.aread()
        return self.handle(request)

    def _exchange(self, request: httpx2.Request) -> tuple[Exchange, bool]:
        path = request.url.path.rstrip("/") or "/"
        body = _json_object(request.content)
        with self._lock:
            self._requests.append(SeenRequest(request.method, path, body or {}))
        exchange = Exchange(
            request=request,
            path=path,
            body=body or {},
            digest=request_digest(request),
            delay_s=self.delay_s,
            seen_before=self._seen_before,
            reply=self.reply,
            cut_after=CUT_STREAM_AFTER if (body or {}).get("model") == CUT_STREAM_MODEL else None,
            retry_after=self.retry_after,
        )
        return exchange, body is not None

    def _seen_before(self, key: str) -> bool:
        with self._lock:
            seen = key in self._seen_keys
            self._seen_keys.add(key)
            return seen


def _json_object(content: bytes) -> dict[str, Any] | None:
    """The request's JSON object; ``{}`` for an empty body, ``None`` when it is not a JSON object."""
    if not content.strip():
        return {}
    try:
        body = json.loads(content)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _bad_json(exchange: Exchange, *, anthropic: bool) -> httpx2.Response:
    if anthropic:
        return fake_anthropic.error(
            exchange, 400, "invalid_request_error", "The request body is not valid JSON."
        )
    message = "We could not parse the JSON body of your request."
    return fake_openai.error(exchange, 400, message, "invalid_request_error")


def _planned_failure(exchange: Exchange, *, anthropic: bool) -> httpx2.Response | None:
    model = exchange.model
    if model not in (FAIL_RATE_LIMIT_MODEL, FAIL_SERVER_ERROR_MODEL, FAIL_BAD_REQUEST_MODEL):
        return None
    return _anthropic_failure(exchange, model) if anthropic else _openai_failure(exchange, model)


def _openai_failure(exchange: Exchange, model: str) -> httpx2.Response:
    if model == FAIL_RATE_LIMIT_MODEL:
        message = f"Rate limit reached for {model} on requests per min (RPM): Limit 3, Used 3, Requested 1."
        return fake_openai.error(
            exchange,
            429,
            message,
            "requests",
            code="rate_limit_exceeded",
            headers={"retry-after": exchange.retry_after},
        )
    if model == FAIL_SERVER_ERROR_MODEL:
        message = "The server had an error while processing your request. Sorry about that!"
        return fake_openai.error(exchange, 500, message, "server_error")
    message = f"The model `{model}` rejects every request: this fake provider fails it on purpose."
    return fake_openai.error(exchange, 400, message, "invalid_request_error", param="model")


def _anthropic_failure(exchange: Exchange, model: str) -> httpx2.Response:
    if model == FAIL_RATE_LIMIT_MODEL:
        message = "Number of requests has exceeded your per-minute rate limit."
        headers = {"retry-after": exchange.retry_after}
        return fake_anthropic.error(exchange, 429, "rate_limit_error", message, headers=headers)
    if model == FAIL_SERVER_ERROR_MODEL:
        return fake_anthropic.error(exchange, 500, "api_error", "Internal server error")
    message = f"model: {model} rejects every request: this fake provider fails it on purpose."
    return fake_anthropic.error(exchange, 400, "invalid_request_error", message)


default_provider = FakeProvider()


def handle(request: httpx2.Request) -> httpx2.Response:
    """:meth:`FakeProvider.handle` of the module's shared :data:`default_provider`."""
    return default_provider.handle(request)


async def ahandle(request: httpx2.Request) -> httpx2.Response:
    """:meth:`FakeProvider.ahandle` of the module's shared :data:`default_provider`."""
    return await default_provider.ahandle(request)
