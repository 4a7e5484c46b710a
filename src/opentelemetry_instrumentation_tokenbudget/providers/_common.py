"""Reading requests the same way for every provider: where the client points, how long the prompt is."""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Mapping
from typing import Any, Final

from ..pricing.endpoints import Endpoint, RouteKind, classify
from ..prompt_prefix import PREFIX_CHARACTERS
from ..usage import tokens_for_characters
from .gateway_cost import watch_gateway_cost

# Per client: the URL object it had, the settings it was classified under, and the answer. Weak, so
# that clients the application drops are not kept alive; the identity checks notice a new base URL.
_endpoints: weakref.WeakKeyDictionary[Any, tuple[object, str, Mapping[str, str], Endpoint]] = (
    weakref.WeakKeyDictionary()
)


# Hosts that the price data does not name, where a gateway that reports costs may sit.
_GATEWAY_KINDS: Final = frozenset({RouteKind.UNKNOWN_HOST, RouteKind.LOCAL_ADDRESS})


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
    endpoint = classify(str(url), default_provider, tuple(overrides.items()))
    if endpoint.route.kind in _GATEWAY_KINDS:
        watch_gateway_cost(client)
    with contextlib.suppress(TypeError):
        _endpoints[client] = (url, default_provider, overrides, endpoint)
    return endpoint


def text_length(value: Any) -> int:
    """Characters of text in a prompt of any shape (strings, content parts, nested messages)."""
    # Exact types first: the ABC check of `Mapping` costs more than the rest of a small prompt.
    kind = type(value)
    if kind is str:
        return len(value)
    if kind is list or kind is tuple:
        return sum(map(text_length, value))
    if kind is dict or isinstance(value, Mapping):
        total = 0
        for key, item in value.items():
            if key in _TEXT_KEYS:
                total += text_length(item)
        return total
    if isinstance(value, str):
        return len(value)
    if isinstance(value, (list, tuple)):
        return sum(map(text_length, value))
    return 0


_TEXT_KEYS = frozenset({"content", "text", "input", "system", "instructions", "messages", "prompt"})


def _collect(value: Any, out: list[str], wanted: int) -> int:
    """Append the texts of `value` to `out` in order until `wanted` characters; what is still wanted."""
    if isinstance(value, str):
        out.append(value)
        return wanted - len(value)
    if isinstance(value, Mapping):
        for key, item in value.items():
            if key in _TEXT_KEYS:
                wanted = _collect(item, out, wanted)
                if wanted <= 0:
                    break
    elif isinstance(value, (list, tuple)):
        for item in value:
            wanted = _collect(item, out, wanted)
            if wanted <= 0:
                break
    return wanted


def prompt_prefix(*parts: Any) -> str:
    """The prompt's text in order, up to `PREFIX_CHARACTERS` characters (what `prompt_prefix.prefix_hash`
    reads); shorter when the whole prompt is."""
    collected: list[str] = []
    wanted = PREFIX_CHARACTERS
    for part in parts:
        wanted = _collect(part, collected, wanted)
        if wanted <= 0:
            return "".join(collected)[:PREFIX_CHARACTERS]
    return "".join(collected)


def estimate_tokens(*parts: Any) -> int:
    return tokens_for_characters(sum(map(text_length, parts)))


def given(value: Any) -> bool:
    """False for None and for the SDKs' "not given" sentinels (`Omit`, `NotGiven`)."""
    return value is not None and type(value).__name__ not in ("Omit", "NotGiven")


def int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
