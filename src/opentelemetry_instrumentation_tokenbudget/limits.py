"""How long a value from a request or a response may be on a span name, an attribute or a log line.

Model names, response ids and finish reasons come from the other side of the wire: a server (or a
caller) can send a name of any length, and each distinct one would be copied into every span name,
metric series and price lookup. Real model names are well under a hundred characters.
"""

from __future__ import annotations

from typing import Final

MAX_ATTRIBUTE_LENGTH: Final = 256
"""Characters kept of a string value read from a request or a response (the README says so)."""
MAX_FINISH_REASONS: Final = 16
"""Finish reasons kept per call: one per choice, and few callers ask for many choices."""


def capped(value: str) -> str:
    """`value` cut to `MAX_ATTRIBUTE_LENGTH` characters."""
    return value if len(value) <= MAX_ATTRIBUTE_LENGTH else value[:MAX_ATTRIBUTE_LENGTH]


def capped_or_none(value: object) -> str | None:
    """A string value cut to length; anything else (a broken response's number, list) is dropped."""
    return capped(value) if isinstance(value, str) else None
