"""The fake OpenAI API: which endpoint answers a request, and the errors it answers with.

Endpoints: ``/v1/chat/completions``, ``/v1/completions``, ``/v1/embeddings``, ``/v1/responses`` and
``/v1/responses/input_tokens``; anything else gets the API's own 404 body.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx2

from .fake_http import Exchange, json_response
from .fake_openai_common import REQUEST_ID_HEADER
from .fake_openai_completions import chat_completions, legacy_completions
from .fake_openai_embeddings import embeddings
from .fake_openai_responses import input_tokens, responses

_ENDPOINTS: dict[str, Callable[[Exchange], httpx2.Response]] = {
    "/v1/chat/completions": chat_completions,
    "/v1/completions": legacy_completions,
    "/v1/embeddings": embeddings,
    "/v1/responses": responses,
    "/v1/responses/input_tokens": input_tokens,
}


def handle(exchange: Exchange) -> httpx2.Response:
    """Answer one request to the OpenAI API."""
    endpoint = _ENDPOINTS.get(exchange.path)
    if endpoint is None or exchange.request.method != "POST":
        message = f"Invalid URL ({exchange.request.method} {exchange.path})"
        return error(exchange, 404, message, "invalid_request_error")
    return _refusal(exchange) or endpoint(exchange)


def error(
    exchange: Exchange,
    status: int,
    message: str,
    kind: str,
    *,
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx2.Response:
    """An error in OpenAI's shape, which the SDK raises as its matching ``APIStatusError``."""
    payload = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return json_response(exchange, status, payload, request_id_header=REQUEST_ID_HEADER, headers=headers)


def _refusal(exchange: Exchange) -> httpx2.Response | None:
    """The 400 the real API gives to a request it would not run, if this is one."""
    if exchange.path != "/v1/responses/input_tokens" and not exchange.model:
        return error(exchange, 400, "you must provide a model parameter", "invalid_request_error")
    if exchange.body.get("stream_options") is not None and not exchange.body.get("stream"):
        # Refused by the real API too: this catches an instrumentation that adds stream_options blindly.
        message = "The 'stream_options' parameter is only allowed when 'stream' is enabled."
        return error(exchange, 400, message, "invalid_request_error", param="stream_options")
    return _out_of_range(exchange)


_MAX_TOKEN_FIELDS = ("max_tokens", "max_completion_tokens", "max_output_tokens")
_INT32_MAX = 2**31 - 1


def _out_of_range(exchange: Exchange) -> httpx2.Response | None:
    """The real API's 400 for an output ceiling below 1 or past a 32-bit integer."""
    for name in _MAX_TOKEN_FIELDS:
        value = exchange.body.get(name)
        if not isinstance(value, int) or isinstance(value, bool):
            continue
        if value < 1:
            bound, code = ">= 1", "integer_below_min_value"
        elif value > _INT32_MAX:
            bound, code = f"<= {_INT32_MAX}", "integer_above_max_value"
        else:
            continue
        side = "below minimum" if value < 1 else "above maximum"
        message = (
            f"Invalid '{name}': integer {side} value. Expected a value {bound}, but got {value} instead."
        )
        return error(exchange, 400, message, "invalid_request_error", code=code, param=name)
    return None
