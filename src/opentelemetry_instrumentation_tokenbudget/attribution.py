"""Who a call is charged to: `cost_attributes(...)`.

The attributes live in the OpenTelemetry context, so they follow the code through threads that
copy the context, `asyncio` tasks (each task starts from a copy), and nested blocks, where the inner
block's values win and the outer ones come back on exit.

Across services they can travel as W3C baggage, both ends opting in: ``cost_attributes(...,
propagate=True)`` also puts them into the context's baggage (sent downstream by the `baggage`
propagator, which is on by default), and a service instrumented with ``baggage_attribution=True``
reads them back from the baggage it received.

Baggage is a trust boundary: it comes from whoever sent the request. Values read from it are
stripped of control characters and cut to `MAX_BAGGAGE_VALUE_LENGTH` characters, and they label
spans and metrics only: a budget's `match` and `group_by` see a value from baggage only for the keys
the user names for that (``instrument(baggage_budget_keys=[...])``), never by default.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import Final

from opentelemetry import baggage
from opentelemetry import context as otel_context
from opentelemetry.semconv._incubating.attributes.session_attributes import SESSION_ID
from opentelemetry.semconv._incubating.attributes.user_attributes import USER_ID
from opentelemetry.util.types import AttributeValue

from .semconv import TOKENBUDGET_FEATURE, TOKENBUDGET_PROJECT, TOKENBUDGET_TENANT

_CONTEXT_KEY: Final = otel_context.create_key("tokenbudget-cost-attributes")
_EMPTY: Mapping[str, AttributeValue] = MappingProxyType({})
# Baggage is written by the caller; a value longer than this is not an identifier we want on spans.
MAX_BAGGAGE_VALUE_LENGTH: Final = 256
# C0 and C1 controls, DEL, line and paragraph separators, and the bidirectional overrides: characters
# that could forge a log line or make a value print as another.
CONTROL_CHARACTERS: Final = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def received_value(value: object) -> str | None:
    """A baggage value as it may label a call: without control characters, at most
    `MAX_BAGGAGE_VALUE_LENGTH` characters; None when nothing is left."""
    if not isinstance(value, str):
        return None
    cleaned = CONTROL_CHARACTERS.sub("", value)[:MAX_BAGGAGE_VALUE_LENGTH]
    return cleaned or None


# The keyword names users type, and the attribute each becomes.
KEYWORD_ATTRIBUTES: Mapping[str, str] = MappingProxyType(
    {
        "project": TOKENBUDGET_PROJECT,
        "feature": TOKENBUDGET_FEATURE,
        "tenant": TOKENBUDGET_TENANT,
        "user": USER_ID,
        "session": SESSION_ID,
    }
)


def current_cost_attributes(context: otel_context.Context | None = None) -> Mapping[str, AttributeValue]:
    """The attribution in force here (or in `context`): a read-only mapping of attribute name to value."""
    value = otel_context.get_value(_CONTEXT_KEY, context)
    if isinstance(value, MappingProxyType):
        return value
    return _EMPTY


def call_attribution(
    baggage_names: frozenset[str], context: otel_context.Context | None = None
) -> Mapping[str, AttributeValue]:
    """The attribution of a call: `cost_attributes` in force, completed by the baggage entries named in
    `baggage_names` (values set in this process win over those received)."""
    local = current_cost_attributes(context)
    if not baggage_names:
        return local
    received = baggage.get_all(context)
    if not received:
        return local
    merged = dict(local)
    for name in baggage_names:
        if name in merged:
            continue
        value = received_value(received.get(name))
        if value is not None:
            merged[name] = value
    return MappingProxyType(merged) if len(merged) > len(local) else local


def _validated(name: str, value: object) -> AttributeValue:
    if isinstance(value, (str, bool, int, float)):
        return value
    raise TypeError(
        f"cost_attributes({name}=...): expected str, bool, int or float, got {type(value).__name__}"
    )


@contextmanager
def cost_attributes(
    *,
    project: str | None = None,
    feature: str | None = None,
    user: str | None = None,
    session: str | None = None,
    tenant: str | None = None,
    propagate: bool = False,
    **extra: AttributeValue,
) -> Iterator[Mapping[str, AttributeValue]]:
    """Charge every LLM call inside the block to these attributes.

    `project`, `feature` and `tenant` become `tokenbudget.*` attributes, `user` and `session` the
    standard `user.id` and `session.id`; any other keyword passes through as an attribute of that
    exact name (e.g. ``**{"deployment.environment.name": "prod"}``). A keyword given as None leaves
    the outer block's value in force.

    With ``propagate=True`` the attributes in force are also put into W3C baggage, as strings, for
    the services this block calls (which read them with ``baggage_attribution=True``).
    """
    merged = dict(current_cost_attributes())
    named = {"project": project, "feature": feature, "user": user, "session": session, "tenant": tenant}
    for keyword, given in named.items():
        if given is not None:
            merged[KEYWORD_ATTRIBUTES[keyword]] = _validated(keyword, given)
    for name, extra_value in extra.items():
        merged[name] = _validated(name, extra_value)
    frozen = MappingProxyType(merged)
    context = otel_context.set_value(_CONTEXT_KEY, frozen)
    if propagate:
        for name, attribute_value in merged.items():
            context = baggage.set_baggage(name, _baggage_text(attribute_value), context)
    token = otel_context.attach(context)
    try:
        yield frozen
    finally:
        otel_context.detach(token)


def _baggage_text(value: AttributeValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
