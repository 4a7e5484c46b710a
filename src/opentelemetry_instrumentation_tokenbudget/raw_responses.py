"""`with_raw_response` and `with_streaming_response`: the call's result is an HTTP response object
whose `.parse()` gives the usual result. We watch `.parse()`, and for plain raw responses (whose body
the SDK has already read) parse at once, so the call is counted even if the user never parses it.
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

    def _self_watch(self, key: Any, parsed: Any) -> Any:
        if key not in self._self_parsed:
            self._self_parsed[key] = self._self_observe(
                self._self_call, self._self_adapter, parsed, self._self_hide_usage
            )
        return self._self_parsed[key]

    def _self_end_unparsed(self) -> None:
        # Closed without parse(): the body was read some other way, and its usage never reached us.
        try:
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
        return ObservedAsyncRawResponse(response, call, adapter, hide_usage, observe)
    proxy = ObservedRawResponse(response, call, adapter, hide_usage, observe)
    if _body_already_read(response):
        proxy.parse()
    return proxy


def _body_already_read(response: Any) -> bool:
    http_response = response.http_response
    return bool(getattr(http_response, "is_stream_consumed", False)) or _has_content(http_response)


def _has_content(http_response: Any) -> bool:
    try:
        http_response.content  # noqa: B018  # raises until the body has been read
    except Exception:
        return False
    return True
