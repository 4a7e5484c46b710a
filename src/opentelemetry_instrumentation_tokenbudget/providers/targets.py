"""One SDK method to wrap, and the adapter that reads its calls."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..adapter import ApiAdapter, StreamManagerAdapter


@dataclass(frozen=True, slots=True)
class Target:
    module: str
    class_name: str
    """Empty for a function of the module itself (LiteLLM's `litellm.completion`)."""
    method: str
    adapter: ApiAdapter
    is_async: bool = field(kw_only=True)
    """Whether the method is a coroutine function. Said by each target, never guessed: names mislead
    (Mistral's `complete_async`, google-genai's `client.aio`, botocore's one client for both), and the
    SDKs' decorators hide coroutine functions from `inspect`."""
    lazy: bool = field(default=False, kw_only=True)
    """The SDK imports this module only when the application first uses it, and importing it costs
    much (openai's beta Responses): it is wrapped when imported, never imported by us."""


@dataclass(frozen=True, slots=True)
class StreamManagerTarget(Target):
    """A method that returns a context manager which sends the request when entered (Anthropic's
    `messages.stream()`): the call ends when the manager exits."""

    adapter: StreamManagerAdapter
