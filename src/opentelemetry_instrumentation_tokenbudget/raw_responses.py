"""`with_raw_response` and `with_streaming_response`: the call's result is an HTTP response object
whose `.parse()` gives the usual result. We watch `.parse()`; a JSON body that is in memory but that
nobody parsed (a plain raw response, or `.json()` / `.read()` of a streaming one) is read by us when the
response is returned or closed, so the call is counted whatever the user did with it.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._proxy import ObjectProxy
from .usage import ResponseSummary

if TYPE_CHECKING:
    from .adapter import ApiAdapter
    from .call import LLMCall

_logger = logging.getLogger(__name__)

Observe = Callable[["LLMCall", "ApiAdapter", Any, bool], Any]


class _ObservedRawResponseBase(ObjectProxy):
    def __init__(
        self, wrapped: Any, call: LLMCall, adapter: ApiAdapter, hide_usage: bool, observe: Observe
    ) -> None:
        super().__init__(wrapped)
        self._self_call = call
        self._self_adapter = adapter
        self._self_hide_usage = hide_usage
        self._self_observe = observe
        # parse() caches its result in the SDK; we cache the watched version the same way, so that a
        # stream parsed twice is one stream and one call.
        self._self_parsed: dict[Any, Any] = {}
        self._self_body_counted = False

    def _self_watch(self, key: Any, parsed: Any) -> Any:
        if key not in self._self_parsed:
            self._self_parsed[key] = self._self_observe(
                self._self_call, self._self_adapter, parsed, self._self_hide_usage
            )
        return self._self_parsed[key]

    def _self_count_read_body(self) -> None:
        """Count the call from its JSON body if the body is in memory; the SDK's `_parse` of a read
        body is synchronous in both SDKs, also behind the async `parse()`."""
        response = self.__wrapped__
        if self._self_body_counted or self._self_parsed:
            return
        if not _body_already_read(response) or _is_event_stream(response):
            return
        self._self_body_counted = True
        try:
            self._self_call.end(self._self_adapter.summarize(response._parse()))
        except Exception:
            _logger.debug("tokenbudget: could not read a raw response's body", exc_info=True)

    def _self_end_unparsed(self) -> None:
        # Closed without parse(): if the body was read some other way we read it too; an event stream
        # that was read raw never showed us its usage.
        try:
            self._self_count_read_body()
            self._self_call.end(ResponseSummary(), estimated=True)
        except Exception:
            _logger.debug("tokenbudget: could not end a raw response's call", exc_info=True)

    def __del__(self) -> None:
        if not self._self_parsed:
            self._self_end_unparsed()


class ObservedRawResponse(_ObservedRawResponseBase):
    def parse(self, **kwargs: Any) -> Any:
        return self._self_watch(kwargs.get("to"), self.__wrapped__.parse(**kwargs))

    def close(self) -> None:
        try:
            self.__wrapped__.close()
        finally:
            if not self._self_parsed:
                self._self_end_unparsed()


class ObservedAsyncRawResponse(_ObservedRawResponseBase):
    async def parse(self, **kwargs: Any) -> Any:
        return self._self_watch(kwargs.get("to"), await self.__wrapped__.parse(**kwargs))

    async def close(self) -> None:
        try:
            await self.__wrapped__.close()
        finally:
            if not self._self_parsed:
                self._self_end_unparsed()


def observe_raw_response(
    call: LLMCall, adapter: ApiAdapter, response: Any, hide_usage: bool, observe: Observe
) -> Any:
    if inspect.iscoroutinefunction(response.parse):
        async_proxy = ObservedAsyncRawResponse(response, call, adapter, hide_usage, observe)
        async_proxy._self_count_read_body()
        return async_proxy
    proxy = ObservedRawResponse(response, call, adapter, hide_usage, observe)
    if _body_already_read(response):
        proxy.parse()
    return proxy


def _is_event_stream(response: Any) -> bool:
    content_type = response.http_response.headers.get("content-type", "")
    return str(content_type).startswith("text/event-stream")


def _body_already_read(response: Any) -> bool:
    http_response = response.http_response
    return bool(getattr(http_response, "is_stream_consumed", False)) or _has_content(http_response)


def _has_content(http_response: Any) -> bool:
    try:
        http_response.content  # noqa: B018  # raises until the body has been read
    except Exception:
        return False
    return True
