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

from .adapter import ApiAdapter, ResponseSummary
from .call import CALL_IN_PROGRESS_KEY, LLMCall, Runtime, new_call, safely
from .raw_responses import is_raw_response, observe_raw_response
from .streams import end_with_summary, observe_stream

_logger = logging.getLogger(__name__)

Wrapper = Callable[[Callable[..., Any], Any, tuple[Any, ...], dict[str, Any]], Any]


def should_record(runtime: Runtime, context: otel_context.Context) -> bool:
    # Nested SDK methods (a helper calling `create`) would otherwise count one call twice.
    return runtime.enabled and context.get(CALL_IN_PROGRESS_KEY) is None and is_instrumentation_enabled()


def observe_result(
    call: LLMCall, adapter: ApiAdapter, result: Any, hide_usage: bool, *, is_async: bool
) -> Any:
    """Hand the user what the SDK returned, watched: a stream behind a proxy, a raw response behind
    another; a plain response is summarised at once."""
    try:
        if adapter.is_stream(result):
            return observe_stream(call, adapter, result, hide_usage, is_async=is_async)
        if is_raw_response(result):
            return observe_raw_response(call, adapter, result, hide_usage)
        end_with_summary(call, adapter.summarize(result))
    except Exception:
        _logger.debug("tokenbudget: could not read a response", exc_info=True)
        # Billed all the same: the prompt's estimate, marked estimated, rather than nothing.
        safely(end_with_summary, call, ResponseSummary(counts_missing=True))
    return result


def begin_call(
    runtime: Runtime,
    adapter: ApiAdapter,
    instance: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    context: otel_context.Context,
) -> tuple[LLMCall | None, dict[str, Any], bool]:
    """Prepare the request and start its call (None: the call goes on bare, as the caller sent it)."""
    try:
        prepared = dict(kwargs)
        hide_usage = adapter.prepare(prepared)
    except Exception:
        _logger.debug("tokenbudget: could not prepare a request", exc_info=True)
        prepared, hide_usage = kwargs, False
    call = new_call(runtime, lambda: adapter.describe(instance, args, prepared), context)
    if call is None:
        return None, kwargs, False
    return call, prepared, hide_usage


def sync_wrapper(runtime: Runtime, adapter: ApiAdapter) -> Wrapper:
    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        context = otel_context.get_current()
        if not should_record(runtime, context):
            return wrapped(*args, **kwargs)
        call, call_kwargs, hide_usage = begin_call(runtime, adapter, instance, args, kwargs, context=context)
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
        return observe_result(call, adapter, result, hide_usage, is_async=False)

    return wrapper


def async_wrapper(runtime: Runtime, adapter: ApiAdapter) -> Wrapper:
    def wrapper(
        wrapped: Callable[..., Awaitable[Any]], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        async def run() -> Any:
            context = otel_context.get_current()
            if not should_record(runtime, context):
                return await wrapped(*args, **kwargs)
            call, call_kwargs, hide_usage = begin_call(
                runtime, adapter, instance, args, kwargs, context=context
            )
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
            return observe_result(call, adapter, result, hide_usage, is_async=True)

        return run()

    return wrapper
