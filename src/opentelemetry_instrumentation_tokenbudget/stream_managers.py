"""Methods that return a context manager which sends the request when entered, such as Anthropic's
`messages.stream()`. The budget is checked, and the span started, when the method is called, so a
refused call never builds a request; the call ends when the manager exits, from the stream's snapshot.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from opentelemetry import context as otel_context

from ._proxy import ObjectProxy
from .call import LLMCall, Runtime, safely
from .usage import ResponseSummary
from .wrappers import Wrapper, _begin, _should_record

_logger = logging.getLogger(__name__)


class ManagerAdapter(Protocol):
    def summarize_stream_manager(self, stream: Any) -> tuple[ResponseSummary, bool]: ...


class _ObservedManagerBase(ObjectProxy):
    def __init__(self, wrapped: Any, call: LLMCall, adapter: ManagerAdapter) -> None:
        super().__init__(wrapped)
        self._self_call = call
        self._self_adapter = adapter
        self._self_stream: Any = None

    def _self_end(self, error: BaseException | None) -> None:
        stream = self._self_stream
        try:
            summary, complete = (
                self._self_adapter.summarize_stream_manager(stream)
                if stream is not None
                else (ResponseSummary(), False)
            )
        except Exception:
            _logger.debug("tokenbudget: could not read a message stream", exc_info=True)
            summary, complete = ResponseSummary(), False
        if error is not None:
            self._self_call.fail(error, summary)
        else:
            self._self_call.end(summary, estimated=not complete)

    def __del__(self) -> None:
        # Never entered, or entered and abandoned: the call still ends and releases its reservation.
        safely(self._self_end, None)


class ObservedStreamManager(_ObservedManagerBase):
    def __enter__(self) -> Any:
        token = self._self_call.activate()
        try:
            self._self_stream = self.__wrapped__.__enter__()
        except BaseException as error:
            safely(self._self_end, error)
            raise
        finally:
            LLMCall.deactivate(token)
        return self._self_stream

    def __exit__(self, exc_type: Any, exc: BaseException | None, traceback: Any) -> Any:
        try:
            return self.__wrapped__.__exit__(exc_type, exc, traceback)
        finally:
            safely(self._self_end, exc)


class ObservedAsyncStreamManager(_ObservedManagerBase):
    async def __aenter__(self) -> Any:
        token = self._self_call.activate()
        try:
            self._self_stream = await self.__wrapped__.__aenter__()
        except BaseException as error:
            safely(self._self_end, error)
            raise
        finally:
            LLMCall.deactivate(token)
        return self._self_stream

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, traceback: Any) -> Any:
        try:
            return await self.__wrapped__.__aexit__(exc_type, exc, traceback)
        finally:
            safely(self._self_end, exc)


def stream_manager_wrapper(runtime: Runtime, adapter: Any, is_async: bool) -> Wrapper:
    proxy_class: Callable[[Any, LLMCall, ManagerAdapter], Any] = (
        ObservedAsyncStreamManager if is_async else ObservedStreamManager
    )

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        context = otel_context.get_current()
        if not _should_record(runtime, context):
            return wrapped(*args, **kwargs)
        call, call_kwargs, _ = _begin(runtime, adapter, instance, kwargs, context)
        if call is None:
            return wrapped(*args, **kwargs)
        try:
            manager = wrapped(*args, **call_kwargs)
        except BaseException as error:
            safely(call.fail, error)
            raise
        return proxy_class(manager, call, adapter)

    return wrapper
