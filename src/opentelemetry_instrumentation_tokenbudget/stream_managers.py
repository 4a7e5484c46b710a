"""Methods that return a context manager which sends the request when entered, such as Anthropic's
`messages.stream()`. The budget is checked, and the span started, when the method is called, so a
refused call never builds a request; the call ends when the manager exits, from the stream's snapshot.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from opentelemetry import context as otel_context

from ._proxy import Ending, ObjectProxy
from .adapter import ResponseSummary, StreamManagerAdapter
from .call import LLMCall, Runtime, safely
from .wrappers import Wrapper, begin_call, should_record

_logger = logging.getLogger(__name__)


class StreamManagerHooks:
    """Ends a manager's call from what its entered stream saw (nothing, if it was never entered)."""

    __slots__ = ("_adapter", "_call", "stream")

    def __init__(self, call: LLMCall, adapter: StreamManagerAdapter) -> None:
        self._call = call
        self._adapter = adapter
        self.stream: Any = None

    def _summary(self) -> tuple[ResponseSummary, bool]:
        if self.stream is None:
            return ResponseSummary(), False
        try:
            return self._adapter.summarize_stream_manager(self.stream)
        except Exception:
            _logger.debug("tokenbudget: could not read a message stream", exc_info=True)
            return ResponseSummary(), False

    def on_item(self, item: object) -> bool:
        return False

    def on_end(self) -> None:
        if self.stream is None:
            # Never entered: no request was sent, so nothing was spent.
            self._call.release_unsent()
            return
        summary, complete = self._summary()
        self._call.end(summary, estimated=not complete)

    def on_failure(self, error: BaseException) -> None:
        self._call.fail(error, self._summary()[0])


class _ObservedManagerBase(ObjectProxy):
    def __init__(self, wrapped: Any, call: LLMCall, adapter: StreamManagerAdapter) -> None:
        super().__init__(wrapped)
        self._self_call = call
        self._self_hooks = StreamManagerHooks(call, adapter)
        # Never entered, or entered and abandoned: the call still ends and releases its reservation.
        self._self_end = Ending(self._self_hooks)


class ObservedStreamManager(_ObservedManagerBase):
    def __enter__(self) -> Any:
        token = self._self_call.activate()
        try:
            self._self_hooks.stream = self.__wrapped__.__enter__()
        except BaseException as error:
            self._self_end(error)
            raise
        finally:
            LLMCall.deactivate(token)
        return self._self_hooks.stream

    def __exit__(self, exc_type: Any, exc: BaseException | None, traceback: Any) -> Any:
        try:
            return self.__wrapped__.__exit__(exc_type, exc, traceback)
        finally:
            self._self_end(exc)


class ObservedAsyncStreamManager(_ObservedManagerBase):
    async def __aenter__(self) -> Any:
        token = self._self_call.activate()
        try:
            self._self_hooks.stream = await self.__wrapped__.__aenter__()
        except BaseException as error:
            self._self_end(error)
            raise
        finally:
            LLMCall.deactivate(token)
        return self._self_hooks.stream

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, traceback: Any) -> Any:
        try:
            return await self.__wrapped__.__aexit__(exc_type, exc, traceback)
        finally:
            self._self_end(exc)


def stream_manager_wrapper(runtime: Runtime, adapter: StreamManagerAdapter, is_async: bool) -> Wrapper:
    proxy_class: Callable[[Any, LLMCall, StreamManagerAdapter], Any] = (
        ObservedAsyncStreamManager if is_async else ObservedStreamManager
    )

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        context = otel_context.get_current()
        if not should_record(runtime, context):
            return wrapped(*args, **kwargs)
        call, call_kwargs, _ = begin_call(runtime, adapter, instance, args, kwargs, context=context)
        if call is None:
            return wrapped(*args, **kwargs)
        try:
            manager = wrapped(*args, **call_kwargs)
        except BaseException as error:
            safely(call.fail, error)
            raise
        return proxy_class(manager, call, adapter)

    return wrapper
