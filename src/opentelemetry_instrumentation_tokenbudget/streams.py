"""Proxies that watch a provider's stream as the user reads it, and end its call exactly once.

The user keeps the SDK's own stream object behind a transparent proxy (see `_proxy`). Each item goes
to the adapter's accumulator first, which may ask to hide it: that is how the usage chunk we asked
OpenAI for is kept out of a stream whose owner never asked for it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import Any

from ._proxy import Ending, ObservedAsyncProxy, ObservedProxy, ProxyHooks
from .adapter import ApiAdapter, ResponseSummary, StreamAccumulator
from .call import LLMCall
from .usage import TokenUsage, is_count, tokens_for_characters

_logger = logging.getLogger(__name__)


def with_estimated_output(
    summary: ResponseSummary, input_tokens: int, output_characters: int
) -> ResponseSummary:
    """A summary for a stream that ended before its usage arrived: what is known, plus an estimate
    of the output from the text that did arrive (the provider bills the tokens it generated)."""
    usage = summary.usage or TokenUsage(input_tokens=input_tokens)
    output_tokens = tokens_for_characters(output_characters)
    if not is_count(usage.output_tokens) or output_tokens > usage.output_tokens:
        usage = replace(usage, output_tokens=output_tokens)
    return replace(summary, usage=usage)


def end_with_summary(call: LLMCall, summary: ResponseSummary) -> None:
    """End a call from a whole response's summary."""
    if summary.counts_missing:
        call.end(with_estimated_output(summary, call.request.estimate_input_tokens(), 0), estimated=True)
    else:
        call.end(summary)


class CallStreamHooks:
    """A stream's hooks for its call: items go to the adapter's accumulator, the end to the call."""

    __slots__ = ("_accumulator", "_call", "on_item")

    def __init__(self, call: LLMCall, accumulator: StreamAccumulator) -> None:
        self._call = call
        self._accumulator = accumulator
        # The accumulator's own method, not one that forwards to it: one call less per stream item.
        self.on_item: Callable[[object], bool] = accumulator.on_item

    def _summary(self) -> tuple[ResponseSummary, bool]:
        try:
            accumulator = self._accumulator
            summary = accumulator.summary()
            complete = accumulator.complete
            if not complete:
                summary = with_estimated_output(
                    summary, self._call.request.estimate_input_tokens(), accumulator.output_characters
                )
        except Exception:
            # The call must still end (its span, its reservation), even if what it saw is unreadable.
            _logger.debug("tokenbudget: could not summarise a stream", exc_info=True)
            return ResponseSummary(), False
        return summary, complete

    def on_end(self) -> None:
        summary, complete = self._summary()
        self._call.end(summary, estimated=not complete)

    def on_failure(self, error: BaseException) -> None:
        self._call.fail(error, self._summary()[0])


def _observed_items(source: Iterable[Any], on_item: Callable[[object], bool], end: Ending) -> Iterator[Any]:
    # A generator rather than a __next__ method on the proxy: `for` resumes it from C, where a
    # Python __next__ is a new frame per item.
    try:
        for item in source:
            try:
                hide = on_item(item)
            except Exception:
                _logger.debug("tokenbudget: could not read a stream item", exc_info=True)
                hide = False
            if not hide:
                yield item
    except GeneratorExit:  # closed or dropped while suspended: the stream ended early, not failed
        end()
        raise
    except BaseException as error:
        end(error)
        raise
    end()


class ObservedStream(ObservedProxy):
    def __init__(self, wrapped: Any, hooks: ProxyHooks) -> None:
        super().__init__(wrapped, hooks)
        # Not started until the first item is asked for; `iter()` and `next()` share it, as the SDK's
        # own `__iter__` and `__next__` share one iterator.
        self._self_items = _observed_items(wrapped, hooks.on_item, self._self_end)

    def __iter__(self) -> Iterator[Any]:
        return self._self_items

    def __next__(self) -> Any:
        return next(self._self_items)


class ObservedAsyncStream(ObservedAsyncProxy):
    # No async generator here: one dropped while suspended is finalized through the event loop, if
    # there still is one, where the proxy's own ending runs at once.

    def __init__(self, wrapped: Any, hooks: ProxyHooks) -> None:
        super().__init__(wrapped, hooks)
        self._self_anext = wrapped.__anext__
        self._self_on_item = hooks.on_item

    def __aiter__(self) -> ObservedAsyncStream:
        return self

    async def __anext__(self) -> Any:
        while True:
            try:
                item = await self._self_anext()
            except StopAsyncIteration:
                self._self_end()
                raise
            except BaseException as error:
                self._self_end(error)
                raise
            try:
                if not self._self_on_item(item):
                    return item
            except Exception:
                _logger.debug("tokenbudget: could not read a stream item", exc_info=True)
                return item


def observe_stream(
    call: LLMCall, adapter: ApiAdapter, result: Any, hide_usage: bool, *, is_async: bool | None = None
) -> Any:
    """`result` (which `adapter.is_stream`) with its stream behind a watching proxy.

    A stream that can be read both ways (LiteLLM's `CustomStreamWrapper`) is read the way of the
    method that returned it (`is_async`); None: async whenever it can be."""
    stream = adapter.stream_of(result)
    hooks = CallStreamHooks(call, adapter.accumulator(hide_usage))
    if hasattr(stream, "__anext__") and (is_async is not False or not hasattr(stream, "__next__")):
        return adapter.with_stream(result, ObservedAsyncStream(stream, hooks))
    return adapter.with_stream(result, ObservedStream(stream, hooks))


def observe_parsed(call: LLMCall, adapter: ApiAdapter, result: Any, hide_usage: bool) -> Any:
    """A parsed response: a stream is watched, anything else summarised and the call ended at once."""
    if adapter.is_stream(result):
        return observe_stream(call, adapter, result, hide_usage)
    end_with_summary(call, adapter.summarize(result))
    return result
