"""Settings that shape what each call records, read once at `instrument()` time."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .semconv import TOKENBUDGET_FEATURE, TOKENBUDGET_PROJECT, TOKENBUDGET_TENANT

# Attribution keys that go on metrics unless the user says otherwise: few distinct values each.
# user.id and session.id stay on spans only, since one time series per user would swamp a backend.
DEFAULT_METRIC_ATTRIBUTION_KEYS = frozenset({TOKENBUDGET_PROJECT, TOKENBUDGET_FEATURE, TOKENBUDGET_TENANT})


@dataclass(frozen=True)
class Settings:
    metric_attribution_keys: frozenset[str] = DEFAULT_METRIC_ATTRIBUTION_KEYS
    """Attribution attributes copied onto metric points; every other one stays on spans only."""

    inject_stream_usage: bool = True
    """Ask OpenAI-style streams for their usage chunk when the caller did not, and hide that chunk."""

    anthropic_sdk_spans: bool = False
    """Keep the Anthropic SDK's own span of each call we record. Off by default: it would be a second
    GenAI span with the same token counts, which backends that sum tokens over spans count twice."""

    baggage_attribution: frozenset[str] = frozenset()
    """Attribution attributes read from received W3C baggage when `cost_attributes` does not set them."""

    record_error_messages: bool = False
    """Put a provider error's message in the span's status description. Off by default: providers echo
    the request in their messages, prompt text included; error.type and the HTTP status are always set."""

    base_url_providers: Mapping[str, str] = field(default_factory=dict)
    """`gen_ai.provider.name` by base URL prefix, for gateways and servers we cannot recognise, e.g.
    ``{"http://gpu-box:9000/v1": "vllm", "https://llm-gateway.internal/openai": "openai"}``."""
