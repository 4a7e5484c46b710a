"""`record_outcome`: what a piece of work achieved, so that its cost can be read per success.

An A/B test of a cheaper model or a shorter prompt is decided by cost per success, not by cost
alone. Run each arm under its own attribution (``cost_attributes(variant="B")``), and say how the
work went with ``record_outcome(success=True)`` (or a ``score``) inside the same scope: the outcome
is recorded as a ``tokenbudget.outcome`` event on the current span, carrying the attribution in
force, and ``tokenbudget outcomes --by variant`` divides each variant's cost by its successes.
"""

from __future__ import annotations

import logging
import math

from opentelemetry import trace
from opentelemetry.util.types import AttributeValue

from .attribution import current_cost_attributes
from .semconv import TOKENBUDGET_OUTCOME_EVENT, TOKENBUDGET_OUTCOME_SCORE, TOKENBUDGET_OUTCOME_SUCCESS

_logger = logging.getLogger(__name__)


def record_outcome(success: bool | None = None, *, score: float | None = None) -> bool:
    """Record the outcome of the work in the current attribution scope; False when there is no
    recording span to carry it (nothing is recorded then). Never raises."""
    try:
        span = trace.get_current_span()
        if not span.is_recording():
            return False
        attributes: dict[str, AttributeValue] = dict(current_cost_attributes())
        if success is not None:
            attributes[TOKENBUDGET_OUTCOME_SUCCESS] = bool(success)
        if score is not None and math.isfinite(score):
            attributes[TOKENBUDGET_OUTCOME_SCORE] = float(score)
        span.add_event(TOKENBUDGET_OUTCOME_EVENT, attributes)
    except Exception:
        _logger.debug("tokenbudget: could not record an outcome", exc_info=True)
        return False
    return True
