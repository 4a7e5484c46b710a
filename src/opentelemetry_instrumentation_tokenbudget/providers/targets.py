"""One SDK method to wrap, and the adapter that reads its calls."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True, slots=True)
class Target:
    module: str
    class_name: str
    method: str
    adapter: Any
    kind: Literal["call", "stream_manager"] = "call"
    """`stream_manager`: the method returns a context manager that sends the request when entered
    (Anthropic's `messages.stream()`), so the call ends when the manager exits."""
    lazy: bool = False
    """The SDK imports this module only when the application first uses it, and importing it costs
    much (openai's beta Responses: about 0.35 s): it is wrapped when imported, never imported by us."""

    @property
    def is_async(self) -> bool:
        # Both SDKs name their async resources Async*; their decorators hide coroutine functions from
        # inspect, so the name is the reliable sign.
        return self.class_name.startswith("Async")
