"""A salted hash of a prompt's first characters, to see prompts that repeat a long prefix (prompt
caching advice) without storing or sending any of their text.

Only prompts of at least `PREFIX_CHARACTERS` characters get one: about 1,024 tokens, the shortest
prefix OpenAI caches and the one Anthropic's Sonnet and Opus models cache. The salt keeps the hash
from being checked against guessed prompts: set it with ``OTEL_INSTRUMENTATION_TOKENBUDGET_PREFIX_SALT``
to link repeats across processes; by default each process draws its own, so repeats are seen within
one process only.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from typing import Final

from .usage import CHARACTERS_PER_TOKEN

PREFIX_CHARACTERS: Final = 4096
PREFIX_TOKENS: Final = PREFIX_CHARACTERS // CHARACTERS_PER_TOKEN
SALT_ENV: Final = "OTEL_INSTRUMENTATION_TOKENBUDGET_PREFIX_SALT"

_salt: bytes | None = None


def salt() -> bytes:
    """The configured salt, else one drawn for this process (read once: the hash runs on every call)."""
    global _salt  # noqa: PLW0603 -- one value per process, made on first use
    if _salt is None:
        given = os.environ.get(SALT_ENV)
        _salt = given.encode() if given else secrets.token_bytes(16)
    return _salt


def prefix_hash(prompt_text: str, key: bytes | None = None) -> str | None:
    """16 hex digits identifying the prompt's first `PREFIX_CHARACTERS` characters; None when shorter."""
    if len(prompt_text) < PREFIX_CHARACTERS:
        return None
    # A salted keyed hash: blake2b's key is its salt, the text never leaves this function.
    digest = hashlib.blake2b(
        prompt_text[:PREFIX_CHARACTERS].encode("utf-8", "surrogatepass"), digest_size=8, key=key or salt()
    )
    return digest.hexdigest()
