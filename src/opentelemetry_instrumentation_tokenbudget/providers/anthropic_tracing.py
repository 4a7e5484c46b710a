"""One GenAI span per Anthropic call: the SDK's own tracing stays out of the calls we record.

The Anthropic SDK (2.x) starts a CLIENT span with `gen_ai.usage.*` for each API call when a tracer
provider is set; inside ours it would be a second span with the same tokens, and backends that sum
tokens over spans (the Collector's spanmetrics connector, Tempo's metrics generator) would count the
call twice. The SDK's switch for its spans (`open_telemetry=False` on the client, or the
`ANTHROPIC_OPEN_TELEMETRY` environment variable) is per client: it would also remove the spans of
the API calls we do not record (models, batches, agent sessions). So the client's tracer is wrapped
instead, once per client: while one of our calls is in progress it gives the SDK a non-recording
span, which the SDK takes for "no span" (it then neither records nor injects trace headers of its
own; ours are the current context). Everything else goes to the SDK's tracer unchanged.
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.trace import INVALID_SPAN, Span, Tracer

from ..call import CALL_IN_PROGRESS_KEY

_logger = logging.getLogger(__name__)


class _OutsideOurCalls:
    """The SDK's tracer, except inside one of our calls."""

    def __init__(self, tracer: Tracer) -> None:
        self.wrapped = tracer

    def start_span(
        self, name: str, context: otel_context.Context | None = None, *args: Any, **kwargs: Any
    ) -> Span:
        current = context if context is not None else otel_context.get_current()
        if current.get(CALL_IN_PROGRESS_KEY) is not None:
            return INVALID_SPAN
        return self.wrapped.start_span(name, context, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        # The spans of tool runners and agent work, which are not calls of ours.
        return getattr(self.wrapped, name)


def keep_sdk_spans_out_of_our_calls(client: Any) -> None:
    """Wrap `client`'s tracer (again, if the client replaced it). Costs an attribute read per call."""
    try:
        tracer = client._tracer  # the SDK's lazy property: None when the client has no spans
        if tracer is None or isinstance(tracer, _OutsideOurCalls):
            return
        client._lazy_tracer = _OutsideOurCalls(tracer)
    except Exception:  # an SDK without this attribute: its span stays, budgets still skip it
        _logger.debug("tokenbudget: could not keep the Anthropic SDK's span out of our call", exc_info=True)
