"""The HTTP side of the fake providers: the parsed request they answer, and the responses they send.

A response body is a :class:`PacedStream`, which both sync and async clients can read and which waits
before each piece, so that one handler serves ``httpx2.Client`` and ``httpx2.AsyncClient`` alike and the
simulated latency never blocks an event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx2

# A fixed creation time keeps every response byte-for-byte reproducible.
CREATED = 1_760_000_000

JSON_CONTENT_TYPE = "application/json"
SSE_CONTENT_TYPE = "text/event-stream; charset=utf-8"
NDJSON_CONTENT_TYPE = "application/x-ndjson"


@dataclass(frozen=True)
class Exchange:
    """One request as the per-provider code sees it, with what the :class:`FakeProvider` decided for it."""

    request: httpx2.Request
    path: str
    body: dict[str, Any]
    digest: str
    delay_s: float
    # Returns whether this key was seen before, and remembers it: the provider's prompt-cache state.
    seen_before: Callable[[str], bool]
    reply: str | None = None
    cut_after: int | None = None
    retry_after: str = "0"

    @property
    def model(self) -> str:
        model = self.body.get("model")
        return model if isinstance(model, str) else ""

    def make_id(self, prefix: str, length: int = 24) -> str:
        """An id that depends only on the request, so that the same request gets the same id."""
        salt = hashlib.sha256((prefix + self.digest).encode()).hexdigest()
        return prefix + salt[:length]


def request_digest(request: httpx2.Request) -> str:
    """A fingerprint of what was asked, not of where: the same call to another port gets the same ids."""
    return hashlib.sha256(
        request.method.encode() + request.url.raw_path + b"\n" + request.content
    ).hexdigest()


class PacedStream(httpx2.SyncByteStream, httpx2.AsyncByteStream):
    """A response body sent in pieces, each after ``delay_s`` seconds."""

    def __init__(self, pieces: Sequence[bytes], delay_s: float = 0.0) -> None:
        self._pieces = list(pieces)
        self._delay_s = delay_s

    def __iter__(self) -> Iterator[bytes]:
        for piece in self._pieces:
            if self._delay_s > 0:
                time.sleep(self._delay_s)
            yield piece

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self._pieces:
            if self._delay_s > 0:
                await asyncio.sleep(self._delay_s)
            yield piece


def dump(payload: object) -> bytes:
    """JSON as the providers send it: compact, non-ASCII kept."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def json_response(
    exchange: Exchange,
    status: int,
    payload: object,
    *,
    request_id_header: str,
    delay_s: float = 0.0,
    headers: Mapping[str, str] | None = None,
) -> httpx2.Response:
    """A whole JSON body, sent after ``delay_s`` (the time a real model takes to write all of it)."""
    body = dump(payload)
    all_headers = {
        "content-type": JSON_CONTENT_TYPE,
        "content-length": str(len(body)),
        request_id_header: exchange.make_id("req_", 32),
        **(headers or {}),
    }
    return httpx2.Response(
        status, headers=all_headers, stream=PacedStream([body], delay_s), request=exchange.request
    )


def sse_event(data: object, event: str | None = None) -> bytes:
    """One server-sent event; ``data`` that is already a string (``[DONE]``) is sent as it is."""
    text = data if isinstance(data, str) else dump(data).decode()
    prefix = f"event: {event}\n" if event is not None else ""
    return f"{prefix}data: {text}\n\n".encode()


def sse_response(
    exchange: Exchange, events: Sequence[bytes], *, first_content: int, request_id_header: str
) -> httpx2.Response:
    """A stream of events, cut short after ``exchange.cut_after`` content events when asked to.

    ``first_content`` is the index of the first event that carries generated text; a cut stream keeps
    what comes before it and that many content events, then simply ends, as when a connection drops.
    """
    if exchange.cut_after is not None:
        events = events[: first_content + exchange.cut_after]
    headers = {"content-type": SSE_CONTENT_TYPE, request_id_header: exchange.make_id("req_", 32)}
    return httpx2.Response(
        200, headers=headers, stream=PacedStream(events, exchange.delay_s), request=exchange.request
    )
