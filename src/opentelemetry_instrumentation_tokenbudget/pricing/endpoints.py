"""Where a client's base URL points, and which prices apply there.

The provider is matched from the URL by genai-prices itself (its providers' API URL patterns), not by
a table of hosts kept here. The semantic conventions and genai-prices name providers in two different
vocabularies (`x_ai` / `x-ai`, `aws.bedrock` / `aws`...): `PRICE_PROVIDER_IDS` and
`_PROVIDER_NAMES` are the one place that translates between them.

What the URL says decides how a call is priced (`PriceRoute`):

- a provider genai-prices knows: that provider's prices;
- a local model server on its usual port (Ollama, vLLM, LM Studio, llama.cpp), or a base URL the
  user named as a local server: free unless the user priced it;
- another port on a local address: the model's price wherever the data knows it, marked inferred,
  and free when no price data knows the model (a local model under its own name);
- any other host (a gateway, a proxy, a company's LLM endpoint): the model's price wherever the data
  knows it, marked inferred, else unpriced. Never free.
"""

from __future__ import annotations

import enum
import ipaddress
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Final
from urllib.parse import urlsplit

from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import GenAiProviderNameValues

_logger = logging.getLogger(__name__)

_P = GenAiProviderNameValues

# gen_ai.provider.name -> genai-prices provider id, where the two differ or are worth stating.
PRICE_PROVIDER_IDS: Final[Mapping[str, str]] = {
    _P.OPENAI.value: "openai",
    _P.ANTHROPIC.value: "anthropic",
    _P.AWS_BEDROCK.value: "aws",
    _P.AZURE_AI_OPENAI.value: "azure",
    _P.AZURE_AI_INFERENCE.value: "azure",
    _P.GCP_GEMINI.value: "google",
    _P.GCP_VERTEX_AI.value: "google",
    _P.GCP_GEN_AI.value: "google",
    _P.X_AI.value: "x-ai",
    _P.MISTRAL_AI.value: "mistral",
    _P.COHERE.value: "cohere",
    _P.DEEPSEEK.value: "deepseek",
    _P.GROQ.value: "groq",
    _P.PERPLEXITY.value: "perplexity",
}

# genai-prices provider id -> gen_ai.provider.name, for providers that the conventions name. Others
# (openrouter, together, fireworks...) keep genai-prices' id.
_PROVIDER_NAMES: Final[Mapping[str, str]] = {
    "openai": _P.OPENAI.value,
    "anthropic": _P.ANTHROPIC.value,
    "aws": _P.AWS_BEDROCK.value,
    "azure": _P.AZURE_AI_OPENAI.value,
    "google": _P.GCP_GEMINI.value,
    "x-ai": _P.X_AI.value,
    "mistral": _P.MISTRAL_AI.value,
    "cohere": _P.COHERE.value,
    "deepseek": _P.DEEPSEEK.value,
    "groq": _P.GROQ.value,
    "perplexity": _P.PERPLEXITY.value,
}

# Local servers' default ports.
LOCAL_SERVER_PORTS: Final[Mapping[int, str]] = {
    11434: "ollama",
    8000: "vllm",
    1234: "lm_studio",
    8080: "llama_cpp",
}
OPENAI_COMPATIBLE: Final = "openai_compatible"
LOCAL_SERVER_NAMES: Final = frozenset({*LOCAL_SERVER_PORTS.values(), OPENAI_COMPATIBLE})


class RouteKind(enum.Enum):
    PROVIDER = "provider"
    """A provider that the price data knows: its prices."""
    LOCAL_SERVER = "local_server"
    """A recognised local model server: free unless the user priced it."""
    LOCAL_ADDRESS = "local_address"
    """A local address on no known server's port: the model's price if the data knows it (inferred),
    else free."""
    UNKNOWN_HOST = "unknown_host"
    """A gateway, proxy or any host nobody recognises: the model's price if the data knows it
    (inferred), else unpriced."""


@dataclass(frozen=True, slots=True)
class PriceRoute:
    kind: RouteKind
    price_provider: str | None = None
    """genai-prices' provider id, for `RouteKind.PROVIDER`."""
    _hash: int = field(init=False, repr=False, compare=False)
    """Made once: a route is part of the price cache's key, looked up twice per call, and the hash of
    the enum and the fields would be computed in Python each time."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.kind.value, self.price_provider)))

    def __hash__(self) -> int:
        return self._hash


@dataclass(frozen=True, slots=True)
class Endpoint:
    provider: str
    """`gen_ai.provider.name`."""
    address: str | None
    port: int | None
    route: PriceRoute


def price_provider_id(provider_name: str) -> str:
    """genai-prices' id for a `gen_ai.provider.name` (itself when the two vocabularies agree)."""
    return PRICE_PROVIDER_IDS.get(provider_name, provider_name)


def route_for_provider(provider_name: str) -> PriceRoute:
    """How to price calls to a provider named by the conventions' name, when no URL says more."""
    if provider_name in LOCAL_SERVER_NAMES:
        return PriceRoute(RouteKind.LOCAL_SERVER)
    return PriceRoute(RouteKind.PROVIDER, price_provider_id(provider_name))


def local_server_name(base_url: str) -> str:
    """The provider name of a local model server the user named by its base URL: the server usual on
    its port, else `openai_compatible`."""
    try:
        port = urlsplit(base_url).port
    except ValueError:
        port = None
    return LOCAL_SERVER_PORTS.get(port or 0, OPENAI_COMPATIBLE)


def _is_local_host(host: str) -> bool:
    if host in ("localhost", "host.docker.internal") or host.endswith((".local", ".localhost", ".internal")):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_link_local


def _provider_from_price_data(base_url: str) -> str | None:
    # Imported here: genai-prices is slow to import, which applications should not pay at start-up.
    from genai_prices import data_snapshot

    try:
        return data_snapshot.get_snapshot().find_provider(None, None, base_url).id
    except LookupError:
        return None


def _name_for(price_provider: str, host: str) -> str:
    if price_provider == "azure" and host.endswith(".services.ai.azure.com"):
        return _P.AZURE_AI_INFERENCE.value
    if price_provider == "google" and host.endswith("aiplatform.googleapis.com"):
        return _P.GCP_VERTEX_AI.value
    return _PROVIDER_NAMES.get(price_provider, price_provider)


@lru_cache(maxsize=256)
def classify(  # noqa: PLR0911  # one return per kind of endpoint, in the order they are tried
    base_url: str,
    default_provider: str,
    overrides: tuple[tuple[str, str], ...] = (),
    local_servers: tuple[str, ...] = (),
) -> Endpoint:
    """The endpoint behind a client's base URL.

    `default_provider` is the SDK's own provider (the OpenAI SDK's is ``openai``): the name that the
    conventions give a call to a host nobody recognises. `overrides` are the user's
    ``base_url_providers`` (base URL prefix -> provider name), `local_servers` the user's
    ``local_servers`` (base URL prefixes of local model servers). A URL that cannot be parsed is an
    unknown host.
    """
    try:
        parts = urlsplit(base_url)
        host = (parts.hostname or "").lower()
        port = parts.port or (443 if parts.scheme == "https" else 80 if parts.scheme == "http" else None)
    except ValueError:
        _logger.debug("tokenbudget: base URL %r cannot be parsed", base_url)
        return Endpoint(default_provider, None, None, PriceRoute(RouteKind.UNKNOWN_HOST))
    address = host or None
    for prefix, provider in overrides:
        if base_url.startswith(prefix):
            return Endpoint(provider, address, port, route_for_provider(provider))
    for prefix in local_servers:
        if base_url.startswith(prefix):
            name = LOCAL_SERVER_PORTS.get(port or 0, OPENAI_COMPATIBLE)
            return Endpoint(name, address, port, PriceRoute(RouteKind.LOCAL_SERVER))
    price_provider = _provider_from_price_data(base_url)
    if price_provider is not None:
        return Endpoint(
            _name_for(price_provider, host), address, port, PriceRoute(RouteKind.PROVIDER, price_provider)
        )
    if _is_local_host(host):
        server = LOCAL_SERVER_PORTS.get(port or 0)
        if server is not None:
            return Endpoint(server, address, port, PriceRoute(RouteKind.LOCAL_SERVER))
        return Endpoint(default_provider, address, port, PriceRoute(RouteKind.LOCAL_ADDRESS))
    return Endpoint(default_provider, address, port, PriceRoute(RouteKind.UNKNOWN_HOST))
