"""What the computations read of a call record (the ledger's record type satisfies it)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Protocol


class CallRecord(Protocol):
    @property
    def start(self) -> float:
        """Epoch seconds."""
        ...

    @property
    def provider(self) -> str: ...

    @property
    def request_model(self) -> str: ...

    @property
    def operation(self) -> str: ...

    @property
    def input_tokens(self) -> int:
        """Includes cache reads and writes, as the conventions count them."""
        ...

    @property
    def output_tokens(self) -> int: ...

    @property
    def cache_read_tokens(self) -> int: ...

    @property
    def cache_write_tokens(self) -> int: ...

    @property
    def cost_usd(self) -> Decimal | None:
        """None: unpriced."""
        ...

    @property
    def max_tokens(self) -> int | None: ...

    @property
    def prompt_prefix_hash(self) -> str | None: ...

    @property
    def attributes(self) -> Mapping[str, str]:
        """The attribution: tokenbudget.feature, user.id, session.id, variant, custom keys."""
        ...
