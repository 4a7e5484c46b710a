"""The cost a gateway reports in a response header (the LiteLLM proxy's `x-litellm-response-cost`).

The OpenAI and Anthropic SDKs return the parsed body and drop the headers, so the header is read by
a response hook on the client's HTTP client, installed once per client and only on clients that
point at a host no price data names (a gateway, a proxy, a loopback on another port): calls to the
providers themselves pay nothing for it. The hook hands the amount to the call in progress (the
one whose span the SDK's request runs under); the call prefers it to the price computed from the
tokens, as `gen_ai.usage.cost.source=provider`.

The header is written before the body, so a streamed answer's header cannot hold the cost of what
follows: event streams are left to the price data. A reported 0 is not taken as "free" either (a
gateway that has no price for a model says 0): such a call is priced from the data or flagged
unpriced, never silently zero.
"""

from __future__ import annotations

import logging
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from opentelemetry import context as otel_context

from ..call import CALL_IN_PROGRESS_KEY, LLMCall

_logger = logging.getLogger(__name__)

COST_HEADER: Final = "x-litellm-response-cost"
_NOT_AN_AMOUNT: Final = Decimal("NaN")


def _take_reported_cost(response: Any) -> None:
    try:
        headers = response.headers
        reported = headers.get(COST_HEADER)
        if reported is None or headers.get("content-type", "").startswith("text/event-stream"):
            return
        call = otel_context.get_value(CALL_IN_PROGRESS_KEY)
        if not isinstance(call, LLMCall):
            return
        try:
            amount = Decimal(reported.strip())
        except InvalidOperation:
            amount = _NOT_AN_AMOUNT  # counted as a cost that is no amount of money, like a bad body cost
        if amount != 0:
            call.gateway_cost = amount
    except Exception:  # the user's response must reach them whatever the header holds
        _logger.debug("tokenbudget: could not read a gateway's cost header", exc_info=True)


def _on_response(response: Any) -> None:
    _take_reported_cost(response)


async def _on_response_async(response: Any) -> None:
    _take_reported_cost(response)


def watch_gateway_cost(client: Any) -> None:
    """Add the response hook to `client`'s HTTP client (httpx's public `event_hooks`), once."""
    try:
        http = getattr(client, "_client", None)
        hooks = getattr(http, "event_hooks", None)
        if not isinstance(hooks, dict):
            return
        # An async HTTP client awaits its hooks.
        hook = _on_response_async if hasattr(http, "aclose") else _on_response
        responses = hooks.get("response")
        if isinstance(responses, list) and hook not in responses:
            responses.append(hook)
    except Exception:
        _logger.debug("tokenbudget: could not watch a gateway's cost header", exc_info=True)
