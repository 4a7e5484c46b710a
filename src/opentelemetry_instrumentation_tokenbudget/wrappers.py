"""The `wrapt` wrappers around SDK methods: one shape for every provider, driven by its adapter.

A wrapper never lets our own failure reach the user: if we cannot describe the request the call goes
on bare; if we cannot read the response the response is returned as it came. The provider's own
exceptions pass through unchanged, after they have marked the span.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.instrumentation.utils import is_instrumentation_enabled

from .adapter import ApiAdapter, StreamAccumulator
from .call import CALL_IN_PROGRESS_KEY, LLMCall, Runtime, new_call, safely
from .raw_responses import observe_raw_response
from .streams import ObservedAsyncStream, ObservedStream
from .usage import ResponseSummary, with_estimated_output

_logger = logging.getLogger(__name__)

Wrapper = Callable[[Callable[..., Any], Any, tuple[Any, ...], dict[str, Any]], Any]


class CallStreamObserver:
    """Connects a stream proxy to its call: items go to the accumulator, the end to the call."""

    __slots__ = ("_accumulator", "_call", "on_item")

    def __init__(self, call: LLMCall, accumulator: StreamAccumulator) -> None:
        self._call = call
        self._accumulator = accumulator
        # The accumulator's own method, not one that forwards to it: one call less per stream item.
        self.on_item: Callable[[object], bool] = accumulator.on_item

    def on_end(self, error: BaseException | None) -> None:
        accumulator = self._accumulator
        summary = accumulator.summary()
        complete = accumulator.complete
        if not complete:
            summary = with_estimated_output(
                summary, self._call.request.estimate_input_tokens(), accumulator.output_characters
            )
        if error is not None:
            self._call.fail(error, summary)
        else:
            self._call.end(summary, estimated=not complete)


def _should_record(runtime: Runtime, context: otel_context.Context) -> bool:
    # Nested SDK methods (a helper calling `create`) would otherwise count one call twice.
    return runtime.enabled and context.get(CALL_IN_PROGRESS_KEY) is None and is_instrumentation_enabled()


# Response type -> whether it is a raw response (`with_raw_response`, `with_streaming_response`). Asked
# of the type once: on the SDKs' models a missing attribute costs a raised and caught AttributeError.
# Bounded by the number of response classes of the installed SDKs.
_raw_response_types: dict[type, bool] = {}


def _is_raw_response(result: Any) -> bool:
    kind = type(result)
    known = _raw_response_types.get(kind)
    if known is None:
        known = _raw_response_types[kind] = hasattr(result, "http_response") and hasattr(result, "parse")
    return known


def observe_result(call: LLMCall, adapter: ApiAdapter, result: Any, hide_usage: bool) -> Any:
    """Hand the user what the SDK returned, watched: a stream behind a proxy, a raw response behind
    another; a plain response is summarised at once."""
    try:
        if adapter.is_stream(result):
            observer = CallStreamObserver(call, adapter.accumulator(hide_usage))
            if hasattr(result, "__anext__"):
                return ObservedAsyncStream(result, observer)
            return ObservedStream(result, observer)
        if _is_raw_response(result):
            return observe_raw_response(call, adapter, result, hide_usage, observe_result)
        call.end(adapter.summarize(result))
    except Exception:
        _logger.debug("tokenbudget: could not read a response", exc_info=True)
        safely(lambda: call.end(ResponseSummary()))
    return result


def _begin(
    runtime: Runtime,
    adapter: ApiAdapter,
    instance: Any,
    kwargs: dict[str, Any],
    context: otel_context.Context,
) -> tuple[LLMCall | None, dict[str, Any], bool]:
    try:
        prepared = dict(kwargs)
        hide_usage = adapter.prepare(prepared)
    except Exception:
        _logger.debug("tokenbudget: could not prepare a request", exc_info=True)
        prepared, hide_usage = kwargs, False
    call = new_call(runtime, lambda: adapter.describe(instance, prepared), context)
    if call is None:
        return None, kwargs, False
    return call, prepared, hide_usage


def sync_wrapper(runtime: Runtime, adapter: ApiAdapter) -> Wrapper:
    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        context = otel_context.get_current()
        if not _should_record(runtime, context):
            return wrapped(*args, **kwargs)
        call, call_kwargs, hide_usage = _begin(runtime, adapter, instance, kwargs, context)
        if call is None:
            return wrapped(*args, **kwargs)
        token = call.activate(context)
        try:
            result = wrapped(*args, **call_kwargs)
        except BaseException as error:
            safely(call.fail, error)
            raise
        finally:
            LLMCall.deactivate(token)
        return observe_result(call, adapter, result, hide_usage)

    return wrapper


def async_wrapper(runtime: Runtime, adapter: ApiAdapter) -> Wrapper:
    def wrapper(
        wrapped: Callable[..., Awaitable[Any]], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        async def run() -> Any:
            context = otel_context.get_current()
            if not _should_record(runtime, context):
                return await wrapped(*args, **kwargs)
            call, call_kwargs, hide_usage = _begin(runtime, adapter, instance, kwargs, context)
            if call is None:
                return await wrapped(*args, **kwargs)
            token = call.activate(context)
            try:
                result = await wrapped(*args, **call_kwargs)
            except BaseException as error:
                safely(call.fail, error)
                raise
            finally:
                LLMCall.deactivate(token)
            return observe_result(call, adapter, result, hide_usage)

        return run()

    return wrapper
