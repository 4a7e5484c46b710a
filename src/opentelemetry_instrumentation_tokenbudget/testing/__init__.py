"""A fake of the OpenAI and Anthropic HTTP APIs, for the demo, the tests and the benchmarks.

No network and no API key: :func:`handle` (or a :class:`FakeProvider` of your own) plugs into
``httpx2.MockTransport``, and :class:`FakeProviderServer` serves the same answers on loopback. Answers
have the real APIs' shapes and deterministic, documented token counts (see :mod:`.fake_tokens`).
"""

from .fake_anthropic import PLACEHOLDER_OUTPUT_TOKENS, AnthropicInput, anthropic_input
from .fake_openai_completions import chat_prompt_tokens
from .fake_openai_responses import responses_input_tokens
from .fake_provider import (
    CUT_STREAM_AFTER,
    CUT_STREAM_MODEL,
    FAIL_BAD_REQUEST_MODEL,
    FAIL_RATE_LIMIT_MODEL,
    FAIL_SERVER_ERROR_MODEL,
    FakeProvider,
    SeenRequest,
    ahandle,
    default_provider,
    handle,
)
from .fake_server import FakeProviderServer
from .fake_tokens import (
    CHARS_PER_TOKEN,
    MESSAGE_OVERHEAD_TOKENS,
    REASONING_TOKENS_PER_WORD,
    Reply,
    canned_reply,
    count_tokens,
    generate_reply,
    is_reasoning_model,
    message_tokens,
    openai_cached_tokens,
    prompt_tokens,
)

__all__ = [
    "CHARS_PER_TOKEN",
    "CUT_STREAM_AFTER",
    "CUT_STREAM_MODEL",
    "FAIL_BAD_REQUEST_MODEL",
    "FAIL_RATE_LIMIT_MODEL",
    "FAIL_SERVER_ERROR_MODEL",
    "MESSAGE_OVERHEAD_TOKENS",
    "PLACEHOLDER_OUTPUT_TOKENS",
    "REASONING_TOKENS_PER_WORD",
    "AnthropicInput",
    "FakeProvider",
    "FakeProviderServer",
    "Reply",
    "SeenRequest",
    "ahandle",
    "anthropic_input",
    "canned_reply",
    "chat_prompt_tokens",
    "count_tokens",
    "default_provider",
    "generate_reply",
    "handle",
    "is_reasoning_model",
    "message_tokens",
    "openai_cached_tokens",
    "prompt_tokens",
    "responses_input_tokens",
]
