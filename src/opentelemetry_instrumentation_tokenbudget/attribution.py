"""Who a call is charged to: `cost_attributes(...)`.

The attributes live in the OpenTelemetry context, so they follow the code through threads that
copy the context, `asyncio` tasks (each task starts from a copy), and nested blocks, where the inner
block's values win and the outer ones come back on exit.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import Final

from opentelemetry import context as otel_context
from opentelemetry.semconv._incubating.attributes.session_attributes import SESSION_ID
from opentelemetry.semconv._incubating.attributes.user_attributes import USER_ID
from opentelemetry.util.types import AttributeValue

from .semconv import TOKENBUDGET_FEATURE, TOKENBUDGET_PROJECT, TOKENBUDGET_TENANT

_CONTEXT_KEY: Final = otel_context.create_key("tokenbudget-cost-attributes")
_EMPTY: Mapping[str, AttributeValue] = MappingProxyType({})

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


def current_cost_attributes() -> Mapping[str, AttributeValue]:
    """The attribution in force here: a read-only mapping of attribute name to value."""
    value = otel_context.get_value(_CONTEXT_KEY)
    if isinstance(value, MappingProxyType):
        return value
    return _EMPTY


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
    **extra: AttributeValue,
) -> Iterator[Mapping[str, AttributeValue]]:
    """Charge every LLM call inside the block to these attributes.

    `project`, `feature` and `tenant` become `tokenbudget.*` attributes, `user` and `session` the
    standard `user.id` and `session.id`; any other keyword passes through as an attribute of that
    exact name (e.g. ``**{"deployment.environment.name": "prod"}``). A keyword given as None leaves
    the outer block's value in force.
    """
    merged = dict(current_cost_attributes())
    named = {"project": project, "feature": feature, "user": user, "session": session, "tenant": tenant}
    for keyword, given in named.items():
        if given is not None:
            merged[KEYWORD_ATTRIBUTES[keyword]] = _validated(keyword, given)
    for name, extra_value in extra.items():
        merged[name] = _validated(name, extra_value)
    frozen = MappingProxyType(merged)
    token = otel_context.attach(otel_context.set_value(_CONTEXT_KEY, frozen))
    try:
        yield frozen
    finally:
        otel_context.detach(token)
