"""Reading requests the same way for every provider: where the client points, how long the prompt is."""

from __future__ import annotations

import contextlib
import ipaddress
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import GenAiProviderNameValues

from ..usage import tokens_for_characters

# Hosted services that speak the OpenAI API, by host name suffix.
_HOSTED_OPENAI_COMPATIBLE: Mapping[str, str] = {
    "api.openai.com": GenAiProviderNameValues.OPENAI.value,
    "openai.azure.com": GenAiProviderNameValues.AZURE_AI_OPENAI.value,
    "api.groq.com": GenAiProviderNameValues.GROQ.value,
    "api.deepseek.com": GenAiProviderNameValues.DEEPSEEK.value,
    "api.mistral.ai": GenAiProviderNameValues.MISTRAL_AI.value,
    "api.x.ai": GenAiProviderNameValues.X_AI.value,
    "api.perplexity.ai": GenAiProviderNameValues.PERPLEXITY.value,
    "openrouter.ai": "openrouter",
    "api.together.xyz": "together",
    "api.fireworks.ai": "fireworks",
}

# Local servers' default ports. A local address on another port is still local, just unnamed.
_LOCAL_SERVER_PORTS: Mapping[int, str] = {
    11434: "ollama",
    8000: "vllm",
    1234: "lm_studio",
    8080: "llama_cpp",
}
OPENAI_COMPATIBLE = "openai_compatible"


@dataclass(frozen=True, slots=True)
class Endpoint:
    provider: str
    address: str | None
    port: int | None


def _is_local_host(host: str) -> bool:
    if host in ("localhost", "host.docker.internal") or host.endswith((".local", ".localhost", ".internal")):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_link_local


@lru_cache(maxsize=256)
def _classify(base_url: str, default_provider: str, overrides: tuple[tuple[str, str], ...]) -> Endpoint:
    parts = urlsplit(base_url)
    host = (parts.hostname or "").lower()
    port = parts.port or (443 if parts.scheme == "https" else 80 if parts.scheme == "http" else None)
    for prefix, provider in overrides:
        if base_url.startswith(prefix):
            return Endpoint(provider, host or None, port)
    if default_provider != GenAiProviderNameValues.OPENAI.value:
        return Endpoint(default_provider, host or None, port)
    for suffix, provider in _HOSTED_OPENAI_COMPATIBLE.items():
        if host == suffix or host.endswith("." + suffix):
            return Endpoint(provider, host, port)
    if _is_local_host(host):
        return Endpoint(_LOCAL_SERVER_PORTS.get(port or 0, OPENAI_COMPATIBLE), host, port)
    return Endpoint(OPENAI_COMPATIBLE, host or None, port)


# Per client: the URL object it had, the settings it was classified under, and the answer. Weak, so
# that clients the application drops are not kept alive; the identity checks notice a new base URL.
_endpoints: weakref.WeakKeyDictionary[Any, tuple[object, str, Mapping[str, str], Endpoint]] = (
    weakref.WeakKeyDictionary()
)


def endpoint_of(client: Any, url: object, default_provider: str, overrides: Mapping[str, str]) -> Endpoint:
    """Which provider a client really talks to, from the base URL that its adapter read (`url`; the
    result is kept per `client` until that URL object changes).

    The OpenAI SDK pointed at Ollama is Ollama, not OpenAI: it must not be priced as OpenAI.
    """
    try:
        cached = _endpoints.get(client)
    except TypeError:  # a client that cannot be weakly referenced
        cached = None
    if cached is not None and cached[0] is url and cached[1] == default_provider and cached[2] is overrides:
        return cached[3]
    endpoint = _classify(str(url), default_provider, tuple(overrides.items()))
    with contextlib.suppress(TypeError):
        _endpoints[client] = (url, default_provider, overrides, endpoint)
    return endpoint


def text_length(value: Any) -> int:
    """Characters of text in a prompt of any shape (strings, content parts, nested messages)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, Mapping):
        return sum(text_length(item) for key, item in value.items() if key in _TEXT_KEYS)
    if isinstance(value, (list, tuple)):
        return sum(text_length(item) for item in value)
    return 0


_TEXT_KEYS = frozenset({"content", "text", "input", "system", "instructions", "messages", "prompt"})


def estimate_tokens(*parts: Any) -> int:
    return tokens_for_characters(sum(text_length(part) for part in parts))


def given(value: Any) -> bool:
    """False for None and for the SDKs' "not given" sentinels (`Omit`, `NotGiven`)."""
    return value is not None and type(value).__name__ not in ("Omit", "NotGiven")


def int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
