"""The adapter contract: everything a provider module gives the generic core, and nothing else.

How to add a provider
---------------------
A provider is one module in `providers/` with a `targets(settings) -> list[Target]` function, one
line in the instrumentor's `_PROVIDER_PACKAGES`, and one extra in `pyproject.toml`. Each `Target`
names an SDK method to wrap (module, class, method), says whether it is a coroutine function
(`is_async`: never guessed from names, since SDKs disagree on them), and carries an `ApiAdapter`:

- `describe(instance, args, kwargs)` reads the request before it is sent: provider, operation,
  model, the endpoint (the adapter alone knows where its SDK keeps the base URL, the host or the
  region), and how to estimate the prompt's tokens for a budget. It returns None for a call that is
  not an LLM call (a generic method such as botocore's `_make_api_call` serves every AWS service),
  and raises on anything it cannot read; either way the call then goes on unrecorded.
- `prepare(kwargs)` may adjust the request in place (ask a stream for its usage); `NoPreparation`
  is the usual answer.
- `summarize(result)` reads a finished response into a `ResponseSummary`, in the conventions'
  sense of tokens (`TokenUsage`: input includes cache reads and writes, output includes reasoning);
  `counts_missing=True` when the API reports no tokens for it at all.
- `is_stream(result)` says whether the result is (or holds) a stream; `stream_of(result)` gives the
  iterable and `with_stream(result, observed)` puts the watched one where the caller will look for
  it (`ResultIsTheStream` is the usual answer; Bedrock's streams sit inside a response dict).
- `accumulator(hide_usage)` returns a fresh `StreamAccumulator`, fed each stream item as it passes.

Everything else -- budgets, spans, metrics, prices, the proxies that watch streams and end each call
exactly once -- is the core's, the same for every provider. Adapters never raise into the user's
code and never see our telemetry objects.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from .pricing.endpoints import PriceRoute
from .usage import TokenUsage

__all__ = [
    "ApiAdapter",
    "NoPreparation",
    "RequestInfo",
    "ResponseSummary",
    "ResultIsTheStream",
    "StreamAccumulator",
    "StreamManagerAdapter",
    "TokenUsage",
]


@dataclass(slots=True)
class RequestInfo:
    """What an adapter reads from the request before it is sent."""

    provider: str
    operation: str
    model: str
    max_output_tokens: int | None = None
    server_address: str | None = None
    server_port: int | None = None
    cloud_region: str | None = None
    """Where a cloud provider serves the call (Bedrock's AWS region, Vertex AI's location)."""
    price_route: PriceRoute | None = None
    """How the endpoint is priced (`Endpoint.route`); None prices the call as `provider` names it."""
    estimate_input_tokens: Callable[[], int] = field(default=lambda: 0)
    """Called only when a budget needs an estimate, since counting the prompt costs time."""
    prompt_prefix: Callable[[], str] | None = None
    """The prompt's first characters in order (system first), for `prompt_prefix.prefix_hash`: calls
    that repeat a long prefix can be seen without any text being kept. None for non-prompts."""


@dataclass(slots=True)
class ResponseSummary:
    """What the core needs from a finished call, read by the provider adapter.

    `provider_cost` is a price that the response itself carried (a gateway such as OpenRouter
    reports one); when present it is passed through as the cost, with source `provider`.
    """

    usage: TokenUsage | None = None
    response_model: str | None = None
    response_id: str | None = None
    finish_reasons: tuple[str, ...] = ()
    provider_cost: Decimal | None = None
    counts_missing: bool = False
    """The response carries no token counts at all (Gemini API embeddings): the core estimates the
    input from the request and marks the cost estimated, rather than leaving the call unpriced."""
    upstream_cost: Decimal | None = None
    """Of `provider_cost`, the part that the upstream provider bills (OpenRouter BYOK)."""
    library_cost: Decimal | None = None
    """The cost that the client library computed from its own price table (LiteLLM's
    `response_cost`): recorded beside ours for comparison, and the call's cost (source `provider`)
    only when our price data does not know the model."""
    service_tier: str | None = None
    """The tier the provider says it served the call in (OpenAI's ``flex``, ``priority``): prices
    depend on it."""
    usage_is_billed_units: bool = False
    """`usage` holds the units the provider bills, not the tokens the model processed (Cohere's
    `billed_units`, beside `tokens` that count its prompt template too): priced as they are, and
    said so on the span."""


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
    def describe(self, instance: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> RequestInfo | None:
        """Read the request; None when it is not an LLM call. Raises on anything it cannot read (the
        call then goes on unrecorded)."""
        ...

    def prepare(self, kwargs: dict[str, Any]) -> bool:
        """Adjust the request in place before it is sent; True when it asked for usage the caller did
        not ask for, so that the stream must hide it."""
        ...

    def summarize(self, result: Any) -> ResponseSummary: ...

    def is_stream(self, result: Any) -> bool: ...

    def stream_of(self, result: Any) -> Any:
        """The iterable of a result that `is_stream`."""
        ...

    def with_stream(self, result: Any, observed: Any) -> Any:
        """What the caller gets: `result` with the watched stream `observed` in place of its own."""
        ...

    def accumulator(self, hide_usage: bool) -> StreamAccumulator: ...


class StreamManagerAdapter(ApiAdapter, Protocol):
    """For methods that return a context manager which sends the request when entered (Anthropic's
    `messages.stream()`): the call ends when it exits, from what the entered stream saw."""

    def summarize_stream_manager(self, stream: Any) -> tuple[ResponseSummary, bool]:
        """The summary of the entered stream, and whether it saw the final usage."""
        ...


class NoPreparation:
    """For APIs whose requests need nothing added."""

    def prepare(self, kwargs: dict[str, Any]) -> bool:
        return False


class ResultIsTheStream:
    """For SDKs whose streaming methods return the stream object itself."""

    @staticmethod
    def stream_of(result: Any) -> Any:
        return result

    @staticmethod
    def with_stream(result: Any, observed: Any) -> Any:
        return observed
