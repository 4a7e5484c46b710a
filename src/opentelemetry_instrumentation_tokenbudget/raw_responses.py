"""`with_raw_response` and `with_streaming_response`: the call's result is an HTTP response object
whose `.parse()` gives the usual result. We watch `.parse()`; a JSON body that is in memory but that
nobody parsed (a plain raw response, or `.json()` / `.read()` of a streaming one) is read by us when the
response is returned or closed, so the call is counted whatever the user did with it.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

from ._proxy import ObservedAsyncProxy, ObservedProxy
from .adapter import ApiAdapter, ResponseSummary
from .call import LLMCall
from .streams import end_with_summary, observe_parsed

_logger = logging.getLogger(__name__)


class RawResponseHooks:
    """Ends the call of a raw response that was never parsed: from its JSON body if that was read
    some other way, else as an estimate (an event stream read raw never showed us its usage)."""

    __slots__ = ("_adapter", "_call", "_response")

    def __init__(self, call: LLMCall, adapter: ApiAdapter, response: Any) -> None:
        self._call = call
        self._adapter = adapter
        self._response = response

    def on_item(self, item: object) -> bool:
        return False

    def on_end(self) -> None:
        response = self._response
        if _body_already_read(response) and not _is_event_stream(response):
            try:
                # The SDK's `_parse` of a read body is synchronous in both SDKs, also behind the async
                # `parse()`.
                end_with_summary(self._call, self._adapter.summarize(response._parse()))
                return
            except Exception:
                _logger.debug("tokenbudget: could not read a raw response's body", exc_info=True)
        self._call.end(ResponseSummary(), estimated=True)

    def on_failure(self, error: BaseException) -> None:
        self._call.fail(error)


class _RawResponseWatch:
    """What both raw proxies do with a parsed result: watch it once per parse target, as the SDK
    caches parse() per target, so that a stream parsed twice is one stream and one call."""

    _self_call: LLMCall
    _self_adapter: ApiAdapter
    _self_hide_usage: bool
    _self_parsed: dict[Any, Any]
    _self_end: Any

    def _self_watch(self, key: Any, parsed: Any) -> Any:
        if key not in self._self_parsed:
            # From here the parsed result carries the call.
            self._self_end.hand_over()
            self._self_parsed[key] = observe_parsed(
                self._self_call, self._self_adapter, parsed, self._self_hide_usage
            )
        return self._self_parsed[key]


class ObservedRawResponse(_RawResponseWatch, ObservedProxy):
    def __init__(self, wrapped: Any, call: LLMCall, adapter: ApiAdapter, hide_usage: bool) -> None:
        super().__init__(wrapped, RawResponseHooks(call, adapter, wrapped))
        self._self_call = call
        self._self_adapter = adapter
        self._self_hide_usage = hide_usage
        self._self_parsed = {}

    def parse(self, **kwargs: Any) -> Any:
        return self._self_watch(kwargs.get("to"), self.__wrapped__.parse(**kwargs))


class ObservedAsyncRawResponse(_RawResponseWatch, ObservedAsyncProxy):
    def __init__(self, wrapped: Any, call: LLMCall, adapter: ApiAdapter, hide_usage: bool) -> None:
        super().__init__(wrapped, RawResponseHooks(call, adapter, wrapped))
        self._self_call = call
        self._self_adapter = adapter
        self._self_hide_usage = hide_usage
        self._self_parsed = {}

    async def parse(self, **kwargs: Any) -> Any:
        return self._self_watch(kwargs.get("to"), await self.__wrapped__.parse(**kwargs))


def is_raw_response(result: Any) -> bool:
    kind = type(result)
    known = _raw_response_types.get(kind)
    if known is None:
        known = _raw_response_types[kind] = hasattr(result, "http_response") and hasattr(result, "parse")
    return known


# Response type -> whether it is a raw response (`with_raw_response`, `with_streaming_response`). Asked
# of the type once: on the SDKs' models a missing attribute costs a raised and caught AttributeError.
# Bounded by the number of response classes of the installed SDKs.
_raw_response_types: dict[type, bool] = {}


def observe_raw_response(call: LLMCall, adapter: ApiAdapter, response: Any, hide_usage: bool) -> Any:
    if inspect.iscoroutinefunction(response.parse):
        async_proxy = ObservedAsyncRawResponse(response, call, adapter, hide_usage)
        if _body_already_read(response) and not _is_event_stream(response):
            async_proxy._self_end()
        return async_proxy
    proxy = ObservedRawResponse(response, call, adapter, hide_usage)
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
