"""`SpendRecord`: one call as the offline commands read it, whatever the source."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final

from ..semconv import TOKENBUDGET_FEATURE, TOKENBUDGET_PROJECT, TOKENBUDGET_TENANT

KEY_ALIASES: Final[Mapping[str, str]] = {
    "model": "gen_ai.request.model",
    "provider": "gen_ai.provider.name",
    "operation": "gen_ai.operation.name",
    "project": TOKENBUDGET_PROJECT,
    "feature": TOKENBUDGET_FEATURE,
    "tenant": TOKENBUDGET_TENANT,
    "user": "user.id",
    "session": "session.id",
    "variant": "variant",
}
UNSET: Final = "(none)"


@dataclass(frozen=True, slots=True)
class SpendRecord:
    start: float
    provider: str
    request_model: str
    operation: str = "chat"
    response_model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: Decimal | None = None
    estimated: bool = False
    max_tokens: int | None = None
    prompt_prefix_hash: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)
    # What the ledger keeps besides (the OTLP reader leaves them at their defaults).
    duration_s: float | None = None
    reasoning_tokens: int = 0
    cost_parts: Mapping[str, float] = field(default_factory=dict)
    price_source: str | None = None
    price_version: str | None = None
    price_inferred: bool = False
    trace_id: str | None = None
    span_id: str | None = None
    error_type: str | None = None
    refused: bool = False

    def value_of(self, key: str) -> str:
        """The record's value for an alias (`model`, `feature`...) or an attribute name."""
        name = KEY_ALIASES.get(key, key)
        if name == "gen_ai.request.model":
            return self.request_model
        if name == "gen_ai.provider.name":
            return self.provider
        if name == "gen_ai.operation.name":
            return self.operation
        return self.attributes.get(name, UNSET)


def key_of(record: SpendRecord, keys: tuple[str, ...]) -> dict[str, str]:
    return {key: record.value_of(key) for key in keys}
