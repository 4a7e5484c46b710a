"""What a provider adapter tells the generic core about one API method."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from .call import RequestInfo
from .usage import ResponseSummary


class StreamAccumulator(Protocol):
    """Reads a stream's items as they pass and remembers what the call's summary needs."""

    def on_item(self, item: Any) -> bool:
        """Take one item; True hides it from the user (the usage chunk that we asked for)."""
        ...

    def summary(self) -> ResponseSummary: ...

    @property
    def complete(self) -> bool:
        """Whether the provider's final usage arrived; if not, the cost is an estimate."""
        ...

    @property
    def output_characters(self) -> int:
        """Characters of generated text seen so far, to estimate the output of a stream cut short."""
        ...


class ApiAdapter(Protocol):
    def describe(self, instance: Any, kwargs: Mapping[str, Any]) -> RequestInfo:
        """Read the request; raises on anything it cannot read (the call then goes on unrecorded)."""
        ...

    def prepare(self, kwargs: dict[str, Any]) -> bool:
        """Adjust the request in place before it is sent; True when it asked for usage the caller did
        not ask for, so that the stream must hide it."""
        ...

    def summarize(self, result: Any) -> ResponseSummary: ...

    def is_stream(self, result: Any) -> bool: ...

    def accumulator(self, hide_usage: bool) -> StreamAccumulator: ...


class NoPreparation:
    """For APIs whose requests need nothing added."""

    def prepare(self, kwargs: dict[str, Any]) -> bool:
        return False
