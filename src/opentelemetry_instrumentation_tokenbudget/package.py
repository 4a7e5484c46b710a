"""The libraries this instrumentation supports.

Listed as ``_instruments_any``: the auto-instrumentation loader treats ``_instruments`` as all-of,
so an application with only the OpenAI SDK would skip us if Anthropic were required too.
"""

_instruments: tuple[str, ...] = ()
_instruments_any: tuple[str, ...] = (
    "openai >= 1.40",
    "anthropic >= 0.40",
    "google-genai >= 1.8",
    "botocore >= 1.34.116",
    "groq >= 0.11",
    "mistralai >= 2.9.4",
    "ollama >= 0.4",
    "cohere >= 5.17",
    "litellm >= 1.110, < 2",
)
