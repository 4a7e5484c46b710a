"""Replays recorded provider exchanges (vcrpy cassettes in tests/cassettes/) to the real SDKs.

The SDK under test sends its real request through an `httpx2.MockTransport` (or `httpx.MockTransport`
for the SDKs built on httpx: groq, mistralai, ollama, cohere); the transport answers
with the next recorded response for that method and path, exactly as the provider sent it (gzip
bodies included). A request the cassette does not hold fails the test loudly.
"""

from __future__ import annotations

import json
import sys
from collections import deque
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx2
import yaml

CASSETTES = Path(__file__).parent / "cassettes"

# Hop-by-hop and length headers describe the original transfer, not the body we replay.
_DROPPED_HEADERS = frozenset({"content-length", "transfer-encoding", "connection"})


class Cassette:
    def __init__(self, name: str) -> None:
        data = yaml.safe_load((CASSETTES / name).read_text())
        self.name = name
        self._pending: dict[tuple[str, str], deque[dict[str, Any]]] = {}
        self.requests: list[dict[str, Any]] = []
        self.recorded_requests: list[Any] = []
        for interaction in data["interactions"]:
            request = interaction["request"]
            # Compared decoded: Bedrock's model ids are percent-encoded in the path ("v1%3A0").
            key = (request["method"].upper(), unquote(urlsplit(request["uri"]).path))
            self._pending.setdefault(key, deque()).append(interaction["response"])
            self.recorded_requests.append(request)

    def handle(self, request: Any) -> Any:
        """Answers an `httpx2.Request` with an `httpx2.Response`, an `httpx.Request` with an
        `httpx.Response`."""
        key = (request.method, request.url.path)
        queue = self._pending.get(key)
        if not queue:
            raise AssertionError(f"{self.name}: no recorded response left for {key}")
        recorded = queue.popleft()
        body = request.read()
        self.requests.append(json.loads(body) if body else {})
        # Some cassettes keep a JSON body parsed (`parsed_body`) rather than as it was sent.
        content = recorded["body"]["string"] if "body" in recorded else json.dumps(recorded["parsed_body"])
        if isinstance(content, str):
            content = content.encode()
        headers = [
            (name, value)
            for name, values in recorded.get("headers", {}).items()
            if name.lower() not in _DROPPED_HEADERS
            for value in values
        ]
        flavour = sys.modules[type(request).__module__.partition(".")[0]]
        return flavour.Response(recorded["status"]["code"], headers=headers, content=content)

    async def handle_async(self, request: Any) -> Any:
        await request.aread()
        return self.handle(request)

    @property
    def exhausted(self) -> bool:
        return not any(self._pending.values())


def openai_client(cassette: Cassette, base_url: str = "https://api.openai.com/v1") -> Any:
    import openai

    transport = httpx2.MockTransport(cassette.handle)
    return openai.OpenAI(
        api_key="test", base_url=base_url, http_client=httpx2.Client(transport=transport), max_retries=0
    )


def async_openai_client(cassette: Cassette, base_url: str = "https://api.openai.com/v1") -> Any:
    import openai

    transport = httpx2.MockTransport(cassette.handle_async)
    return openai.AsyncOpenAI(
        api_key="test", base_url=base_url, http_client=httpx2.AsyncClient(transport=transport), max_retries=0
    )


def anthropic_client(cassette: Cassette) -> Any:
    import anthropic

    transport = httpx2.MockTransport(cassette.handle)
    return anthropic.Anthropic(
        api_key="test",
        base_url="https://api.anthropic.com",
        http_client=httpx2.Client(transport=transport),
        max_retries=0,
    )


def async_anthropic_client(cassette: Cassette) -> Any:
    import anthropic

    transport = httpx2.MockTransport(cassette.handle_async)
    return anthropic.AsyncAnthropic(
        api_key="test",
        base_url="https://api.anthropic.com",
        http_client=httpx2.AsyncClient(transport=transport),
        max_retries=0,
    )
