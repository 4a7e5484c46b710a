"""The overhead harness shared by every instrumentation we compare: scenarios, telemetry, rounds.

It imports only the provider SDKs and the OpenTelemetry SDK, never our package at module level, so
that it runs unchanged in the virtual environment of a peer instrumentation (see `run.py`).

- The real OpenAI and Anthropic SDKs talk to an in-process `httpx2.MockTransport` that answers with
  prepared bodies: what is timed is the CPU of the SDK plus what the instrumentation adds.
- Every instrumentation gets the same telemetry: an SDK `TracerProvider` with a `BatchSpanProcessor`
  (the production default) exporting to `CountingExporter`, which keeps counts and drops the spans,
  and an SDK `MeterProvider` with an `InMemoryMetricReader` (aggregation happens on each record;
  nothing is exported during the timing).
- An `Instrumentor` says how to switch an instrumentation on and off and which scenarios it covers;
  a scenario it does not cover is reported as n/a.
"""

from __future__ import annotations

import importlib.util
import json
import os
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anthropic
import httpx2
import openai
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import NoOpTracerProvider

STREAM_CHUNKS = 200
MESSAGES = [{"role": "user", "content": "Say this is a test"}]
OPENAI_MODEL = "gpt-4o-mini"
ANTHROPIC_MODEL = "claude-3-5-haiku-20241022"

OPENAI_CHAT = "openai chat"
OPENAI_CHAT_STREAM = f"openai chat stream ({STREAM_CHUNKS} chunks)"
ANTHROPIC_MESSAGES = "anthropic messages"
ANTHROPIC_MESSAGES_STREAM = f"anthropic messages stream ({STREAM_CHUNKS} events)"
GEMINI_MODEL = "gemini-2.5-flash"
BEDROCK_MODEL = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
GEMINI_GENERATE = "gemini generate_content"
GEMINI_GENERATE_STREAM = f"gemini generate_content stream ({STREAM_CHUNKS} chunks)"
BEDROCK_CONVERSE = "bedrock converse"
GROQ_MODEL = "llama-3.1-8b-instant"
GROQ_CHAT = "groq chat"
GROQ_CHAT_STREAM = f"groq chat stream ({STREAM_CHUNKS} chunks)"
SCENARIOS = (
    OPENAI_CHAT,
    OPENAI_CHAT_STREAM,
    ANTHROPIC_MESSAGES,
    ANTHROPIC_MESSAGES_STREAM,
    GEMINI_GENERATE,
    GEMINI_GENERATE_STREAM,
    BEDROCK_CONVERSE,
    GROQ_CHAT,
    GROQ_CHAT_STREAM,
)
# LiteLLM's completion() over the same OpenAI client and transport: measured where litellm is
# installed (ours; the peers do not instrument LiteLLM).
LITELLM_CHAT = "litellm completion (openai)"

INPUT_TOKENS = "gen_ai.usage.input_tokens"
PROMPT_TOKENS_OLD = "gen_ai.usage.prompt_tokens"
COST_AMOUNT = "gen_ai.usage.cost.amount"


# ---- the provider's answers -------------------------------------------------------------------------


def chat_body() -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1_760_000_000,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "This is a test."},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17},
        }
    ).encode()


def chat_stream_body(include_usage: bool) -> bytes:
    def chunk(delta: dict[str, Any], finish: str | None) -> str:
        body = {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 1_760_000_000,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return f"data: {json.dumps(body)}\n\n"

    events = [chunk({"content": f"w{index} "}, None) for index in range(STREAM_CHUNKS - 1)]
    events.append(chunk({}, "stop"))
    if include_usage:
        usage = {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 1_760_000_000,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [],
            "usage": {
                "prompt_tokens": 12,
                "completion_tokens": STREAM_CHUNKS,
                "total_tokens": 12 + STREAM_CHUNKS,
            },
        }
        events.append(f"data: {json.dumps(usage)}\n\n")
    events.append("data: [DONE]\n\n")
    return "".join(events).encode()


def message_body() -> bytes:
    return json.dumps(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": ANTHROPIC_MODEL,
            "content": [{"type": "text", "text": "This is a test."}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 12, "output_tokens": 5},
        }
    ).encode()


def message_stream_body() -> bytes:
    def event(name: str, data: dict[str, Any]) -> str:
        return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n"

    start = {
        "message": {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": ANTHROPIC_MODEL,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 12, "output_tokens": 1},
        }
    }
    events = [
        event("message_start", start),
        event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
    ]
    events += [
        event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": f"w{index} "}})
        for index in range(STREAM_CHUNKS - 4)
    ]
    events.append(event("content_block_stop", {"index": 0}))
    events.append(
        event(
            "message_delta",
            {
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": STREAM_CHUNKS},
            },
        )
    )
    events.append(event("message_stop", {}))
    return "".join(events).encode()


def transport(
    json_body: bytes, stream_body: bytes, stream_body_with_usage: bytes | None = None
) -> httpx2.MockTransport:
    def handle(request: httpx2.Request) -> httpx2.Response:
        payload = json.loads(request.content)
        if not payload.get("stream"):
            return httpx2.Response(200, headers={"content-type": "application/json"}, content=json_body)
        # An instrumentation that asks for stream usage gets the extra usage chunk, as from the API.
        wants_usage = (payload.get("stream_options") or {}).get("include_usage")
        body = stream_body_with_usage if wants_usage and stream_body_with_usage else stream_body
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    return httpx2.MockTransport(handle)


def openai_client() -> openai.OpenAI:
    http = httpx2.Client(transport=transport(chat_body(), chat_stream_body(False), chat_stream_body(True)))
    return openai.OpenAI(api_key="k", http_client=http, max_retries=0)


def anthropic_client() -> anthropic.Anthropic:
    http = httpx2.Client(transport=transport(message_body(), message_stream_body()))
    return anthropic.Anthropic(api_key="k", http_client=http, max_retries=0)


def gemini_body(output_tokens: int = 5, text: str = "This is a test.", finish: bool = True) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = "STOP"
    return {
        "candidates": [candidate],
        "usageMetadata": {
            "promptTokenCount": 12,
            "candidatesTokenCount": output_tokens,
            "totalTokenCount": 12 + output_tokens,
        },
        "modelVersion": GEMINI_MODEL,
        "responseId": "r-1",
    }


def gemini_stream_body() -> bytes:
    # As the Gemini API streams: every chunk repeats the running usage.
    chunks = [
        gemini_body(index + 1, f"w{index} ", finish=index == STREAM_CHUNKS - 1)
        for index in range(STREAM_CHUNKS)
    ]
    return "".join(f"data: {json.dumps(chunk)}\r\n\r\n" for chunk in chunks).encode()


def gemini_scenarios() -> dict[str, Callable[[], Any]]:
    """The google-genai SDK over an in-process transport; none where the SDK is not installed (a
    peer's environment)."""
    try:
        from google import genai
        from google.genai import types
    except ImportError:
        return {}
    plain, stream = json.dumps(gemini_body()).encode(), gemini_stream_body()

    def handle(request: httpx2.Request) -> httpx2.Response:
        if "streamGenerateContent" in request.url.path:
            return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=stream)
        return httpx2.Response(200, headers={"content-type": "application/json"}, content=plain)

    options = types.HttpOptions(httpx_client=httpx2.Client(transport=httpx2.MockTransport(handle)))
    client = genai.Client(api_key="k", http_options=options)

    def generate() -> Any:
        return client.models.generate_content(model=GEMINI_MODEL, contents="Say this is a test")

    def generate_stream() -> Any:
        for _ in client.models.generate_content_stream(model=GEMINI_MODEL, contents="Say this is a test"):
            pass

    return {GEMINI_GENERATE: generate, GEMINI_GENERATE_STREAM: generate_stream}


class _Body:
    """What botocore reads a response body from."""

    def __init__(self, content: bytes) -> None:
        self._content = content

    def stream(self, **_: Any) -> Any:
        yield self._content


def bedrock_scenarios() -> dict[str, Callable[[], Any]]:
    """boto3's bedrock-runtime client answered in process by a `before-send` handler (botocore's own
    hook for it: the request is signed and the response parsed as from the network)."""
    try:
        import boto3
        from botocore.awsrequest import AWSResponse
    except ImportError:
        return {}
    body = json.dumps(
        {
            "output": {"message": {"role": "assistant", "content": [{"text": "This is a test."}]}},
            "stopReason": "end_turn",
            "usage": {"inputTokens": 12, "outputTokens": 5, "totalTokens": 17},
            "metrics": {"latencyMs": 100},
        }
    ).encode()
    client = boto3.client(
        "bedrock-runtime", region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="k"
    )

    def answer(request: Any, **_: Any) -> Any:
        return AWSResponse(request.url, 200, {"content-type": "application/json"}, _Body(body))

    client.meta.events.register("before-send.bedrock-runtime.Converse", answer)
    messages = [{"role": "user", "content": [{"text": "Say this is a test"}]}]

    def converse() -> Any:
        return client.converse(modelId=BEDROCK_MODEL, messages=messages)

    return {BEDROCK_CONVERSE: converse}


def groq_body() -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": GROQ_MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "This is a test."},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17},
        "x_groq": {"id": "req_1"},
    }


def groq_stream_body() -> bytes:
    # As Groq streams: the usage only in the last chunk, under x_groq.
    events = []
    for index in range(STREAM_CHUNKS):
        last = index == STREAM_CHUNKS - 1
        chunk: dict[str, Any] = {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": GROQ_MODEL,
            "choices": [
                {
                    "index": 0,
                    "delta": {} if last else {"content": f"w{index} "},
                    "logprobs": None,
                    "finish_reason": "stop" if last else None,
                }
            ],
        }
        if last:
            chunk["x_groq"] = {
                "id": "req_1",
                "usage": {"prompt_tokens": 12, "completion_tokens": 199, "total_tokens": 211},
            }
        events.append(f"data: {json.dumps(chunk)}\n\n")
    events.append("data: [DONE]\n\n")
    return "".join(events).encode()


def groq_scenarios() -> dict[str, Callable[[], Any]]:
    """The groq SDK (built on httpx, not httpx2) over an in-process transport; none where it is not
    installed (a peer's environment)."""
    try:
        import groq
        import httpx
    except ImportError:
        return {}
    plain, stream = json.dumps(groq_body()).encode(), groq_stream_body()

    def handle(request: Any) -> Any:
        if b'"stream":true' in request.content:
            return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=stream)
        return httpx.Response(200, headers={"content-type": "application/json"}, content=plain)

    client = groq.Groq(
        api_key="k", http_client=httpx.Client(transport=httpx.MockTransport(handle)), max_retries=0
    )

    def chat() -> Any:
        return client.chat.completions.create(model=GROQ_MODEL, messages=MESSAGES)

    def chat_stream() -> Any:
        for _ in client.chat.completions.create(model=GROQ_MODEL, messages=MESSAGES, stream=True):
            pass

    return {GROQ_CHAT: chat, GROQ_CHAT_STREAM: chat_stream}


def scenarios() -> dict[str, Callable[[], Any]]:
    oai = openai_client()
    anth = anthropic_client()

    def openai_chat() -> Any:
        return oai.chat.completions.create(model=OPENAI_MODEL, messages=MESSAGES)

    def openai_chat_stream() -> Any:
        for _ in oai.chat.completions.create(model=OPENAI_MODEL, messages=MESSAGES, stream=True):
            pass

    def anthropic_messages() -> Any:
        return anth.messages.create(model=ANTHROPIC_MODEL, max_tokens=100, messages=MESSAGES)

    def anthropic_messages_stream() -> Any:
        for _ in anth.messages.create(model=ANTHROPIC_MODEL, max_tokens=100, messages=MESSAGES, stream=True):
            pass

    every = {
        OPENAI_CHAT: openai_chat,
        OPENAI_CHAT_STREAM: openai_chat_stream,
        ANTHROPIC_MESSAGES: anthropic_messages,
        ANTHROPIC_MESSAGES_STREAM: anthropic_messages_stream,
        **gemini_scenarios(),
        **bedrock_scenarios(),
        **groq_scenarios(),
    }
    if importlib.util.find_spec("litellm") is not None:
        every[LITELLM_CHAT] = _litellm_chat(oai)
    return every


def _litellm_chat(client: openai.OpenAI) -> Callable[[], Any]:
    # LiteLLM fetches its price table from the network at import unless told to use its own copy.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    def litellm_chat() -> Any:
        return litellm.completion(model=OPENAI_MODEL, messages=MESSAGES, client=client)

    return litellm_chat


# ---- telemetry --------------------------------------------------------------------------------------


class CountingExporter(SpanExporter):
    """Drops every span after counting it, and counting those that carry tokens and a cost."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.spans = 0
        self.with_tokens = 0
        self.with_cost = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        tokens = cost = 0
        for span in spans:
            attributes = span.attributes or {}
            tokens += INPUT_TOKENS in attributes or PROMPT_TOKENS_OLD in attributes
            cost += COST_AMOUNT in attributes
        with self._lock:
            self.spans += len(spans)
            self.with_tokens += tokens
            self.with_cost += cost
        return SpanExportResult.SUCCESS

    def take(self) -> tuple[int, int, int]:
        with self._lock:
            counts = (self.spans, self.with_tokens, self.with_cost)
            self.spans = self.with_tokens = self.with_cost = 0
        return counts

    def shutdown(self) -> None:
        pass


@dataclass
class Telemetry:
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    exporter: CountingExporter

    def drain(self) -> tuple[int, int, int]:
        """(spans, spans with tokens, spans with cost) exported since the last drain."""
        self.tracer_provider.force_flush()
        return self.exporter.take()


def telemetry() -> Telemetry:
    exporter = CountingExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    return Telemetry(tracer_provider, meter_provider, exporter)


# ---- the instrumentations compared ------------------------------------------------------------------


@dataclass
class Instrumentor:
    """How to switch one instrumentation on and off, and what it covers."""

    name: str
    covers: frozenset[str]
    make: Callable[[], list[Any]]
    """Returns the BaseInstrumentor objects (one per SDK for instrumentations that split them)."""
    requires_cost: bool = False
    sdk: bool = True
    """False: instrumented with the OTel API's no-op providers. The spans and metric points are then
    not recorded, so the ratio is the instrumentation's own code, without the SDK's recording."""
    instruments: list[Any] = field(default_factory=list)

    def instrument(self, tele: Telemetry) -> None:
        if not self.instruments:
            self.instruments = self.make()
        tracer_provider: Any = tele.tracer_provider if self.sdk else NoOpTracerProvider()
        meter_provider: Any = tele.meter_provider if self.sdk else NoOpMeterProvider()
        for instrumentor in self.instruments:
            instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)

    def uninstrument(self) -> None:
        for instrumentor in self.instruments:
            instrumentor.uninstrument()


def _ours() -> list[Any]:
    from opentelemetry_instrumentation_tokenbudget import TokenBudgetInstrumentor

    return [TokenBudgetInstrumentor()]


def _openllmetry() -> list[Any]:
    from opentelemetry.instrumentation.anthropic import AnthropicInstrumentor
    from opentelemetry.instrumentation.openai import OpenAIInstrumentor

    return [OpenAIInstrumentor(), AnthropicInstrumentor()]


def _openai_v2() -> list[Any]:
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    return [OpenAIInstrumentor()]


class SdkFloor:
    """Not an instrumentation: what the OTel SDK alone charges for the telemetry the GenAI conventions
    ask of one call, with none of an instrumentation's own work. A bare `wrapt` wrapper starts a
    CLIENT span with the request attributes ours sets, makes it current while it calls the SDK, sets
    the 12 response attributes ours sets (fixed values: nothing reads the response) and records the
    four metric points ours records (duration, input and output token usage, cost) with the same
    attribute sets, then ends the span. A stream's span ends when `create` returns: no item is looked
    at. The ratio of this row is the least that any instrumentation recording that content through the
    SDK can measure."""

    _TARGETS = (
        ("openai.resources.chat.completions.completions", "Completions.create", "openai", "api.openai.com"),
        ("anthropic.resources.messages.messages", "Messages.create", "anthropic", "api.anthropic.com"),
        (
            "google.genai.models",
            "Models._generate_content",
            "gcp.gemini",
            "generativelanguage.googleapis.com",
        ),
        (
            "google.genai.models",
            "Models._generate_content_stream",
            "gcp.gemini",
            "generativelanguage.googleapis.com",
        ),
        (
            "botocore.client",
            "BaseClient._make_api_call",
            "aws.bedrock",
            "bedrock-runtime.us-east-1.amazonaws.com",
        ),
        ("groq.resources.chat.completions", "Completions.create", "groq", "api.groq.com"),
    )

    def __init__(self) -> None:
        self._wrapped: list[tuple[Any, str]] = []

    def instrument(self, tracer_provider: Any, meter_provider: Any) -> None:
        import importlib

        import wrapt

        tracer = tracer_provider.get_tracer("sdk-floor")
        meter = meter_provider.get_meter("sdk-floor")
        instruments = (
            meter.create_histogram("gen_ai.client.operation.duration", unit="s"),
            meter.create_histogram("gen_ai.client.token.usage", unit="{token}"),
            meter.create_histogram("gen_ai.client.operation.cost", unit="{cost}"),
        )
        for module_name, method, provider, address in self._TARGETS:
            try:
                module = importlib.import_module(module_name)
            except ImportError:  # an SDK that this environment lacks: its scenarios are not run
                continue
            wrapt.wrap_function_wrapper(
                module, method, _floor_wrapper(tracer, instruments, provider, address)
            )
            owner_name, attribute = method.split(".")
            self._wrapped.append((getattr(module, owner_name), attribute))

    def uninstrument(self) -> None:
        for owner, attribute in self._wrapped:
            setattr(owner, attribute, getattr(owner, attribute).__wrapped__)
        self._wrapped.clear()


def _floor_wrapper(tracer: Any, instruments: tuple[Any, Any, Any], provider: str, address: str) -> Any:
    from opentelemetry import context
    from opentelemetry.trace import SpanKind, set_span_in_context

    duration, tokens, cost = instruments
    request = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": "model",
        "server.address": address,
        "server.port": 443,
    }
    metric = {**request, "gen_ai.response.model": "model-2024"}
    input_metric = {**metric, "gen_ai.token.type": "input"}
    output_metric = {**metric, "gen_ai.token.type": "output"}
    cost_metric = {**metric, "gen_ai.usage.cost.currency": "USD", "gen_ai.usage.cost.source": "local"}
    response = {
        "gen_ai.response.model": "model-2024",
        "gen_ai.response.id": "id-1",
        "gen_ai.response.finish_reasons": ("stop",),
        INPUT_TOKENS: 12,
        "gen_ai.usage.output_tokens": 5,
        COST_AMOUNT: 4.8e-06,
        "gen_ai.usage.cost.currency": "USD",
        "gen_ai.usage.cost.source": "local",
        "tokenbudget.cost.input": 1.8e-06,
        "tokenbudget.cost.output": 3e-06,
        "tokenbudget.price.source": "genai-prices",
        "tokenbudget.price.version": "genai-prices 0.0.30",
    }

    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        span = tracer.start_span("chat model", kind=SpanKind.CLIENT, attributes=request)
        # Current while the SDK runs, as any instrumentation's span must be (the HTTP client's spans
        # and the propagated trace context belong to it). The Anthropic SDK then sends that context
        # and runs its own tracing (`anthropic._tracing`), which it skips when no span is current.
        token = context.attach(set_span_in_context(span))
        start = time.perf_counter()
        try:
            return wrapped(*args, **kwargs)
        finally:
            context.detach(token)
            duration.record(time.perf_counter() - start, metric)
            span.set_attributes(response)
            tokens.record(12, input_metric)
            tokens.record(5, output_metric)
            cost.record(4.8e-06, cost_metric)
            span.end()

    return wrapper


INSTRUMENTORS: dict[str, Callable[[], Instrumentor]] = {
    "ours": lambda: Instrumentor("ours", frozenset((*SCENARIOS, LITELLM_CHAT)), _ours, requires_cost=True),
    "ours-api-only": lambda: Instrumentor(
        "ours-api-only", frozenset((*SCENARIOS, LITELLM_CHAT)), _ours, sdk=False
    ),
    "openllmetry": lambda: Instrumentor("openllmetry", frozenset(SCENARIOS), _openllmetry),
    "openai-v2": lambda: Instrumentor("openai-v2", frozenset({OPENAI_CHAT, OPENAI_CHAT_STREAM}), _openai_v2),
    "sdk-floor": lambda: Instrumentor(
        "sdk-floor", frozenset(SCENARIOS), lambda: [SdkFloor()], requires_cost=True
    ),
}


# ---- measuring --------------------------------------------------------------------------------------


def time_calls(call: Callable[[], Any], calls: int) -> float:
    """Wall-clock seconds per call."""
    start = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - start) / calls


def calls_for(call: Callable[[], Any], target_seconds: float) -> int:
    """Calls for a half-round of about `target_seconds`: streams and plain calls weigh alike."""
    per_call = time_calls(call, 5)
    return max(10, round(target_seconds / per_call))


class SpanCheckError(AssertionError):
    """An instrumented round did not produce one span per call (or, for ours, a cost on each)."""


def check_spans(instrumentor: Instrumentor, scenario: str, calls: int, counts: tuple[int, int, int]) -> None:
    spans, _, with_cost = counts
    if not instrumentor.sdk:
        # Nothing reaches the SDK; the rows measured with it check what this one records.
        if spans:
            raise SpanCheckError(f"{instrumentor.name}, {scenario}: {spans} spans reached the SDK")
        return
    if spans != calls:
        raise SpanCheckError(f"{instrumentor.name}, {scenario}: {spans} spans for {calls} calls")
    if instrumentor.requires_cost and with_cost != calls:
        raise SpanCheckError(f"{instrumentor.name}, {scenario}: {with_cost} of {calls} spans have a cost")


def summarize(
    scenario: str, bare: list[float], instrumented: list[float], calls: int, counts: tuple[int, int, int]
) -> dict[str, Any]:
    ratios = sorted(i / b for b, i in zip(bare, instrumented, strict=True))
    spans, with_tokens, with_cost = counts
    return {
        "scenario": scenario,
        "bare_us": statistics.median(bare) * 1e6,
        "instrumented_us": statistics.median(instrumented) * 1e6,
        "ratio_median": statistics.median(ratios),
        "ratio_p25": ratios[len(ratios) // 4],
        "ratio_p75": ratios[(3 * len(ratios)) // 4],
        "ratio_min": ratios[0],
        "ratio_max": ratios[-1],
        "rounds": len(ratios),
        "calls_per_round": calls,
        # Of the spans of the instrumented rounds: which recorded the token usage, which a cost.
        "spans_with_tokens": with_tokens / spans if spans else 0.0,
        "spans_with_cost": with_cost / spans if spans else 0.0,
    }


def measure_in_process(
    instrumentor: Instrumentor, rounds: int, target_seconds: float
) -> list[dict[str, Any]]:
    """Alternate bare and instrumented rounds in this process: instrument, measure, uninstrument."""
    tele = telemetry()
    results = []
    for name, call in scenarios().items():
        if name not in instrumentor.covers:
            results.append({"scenario": name, "ratio_median": None})
            continue
        for _ in range(20):
            call()  # the SDK's lazy paths
        instrumentor.instrument(tele)
        for _ in range(20):
            call()  # the instrumentation's lazy paths (price data, stream classes)
        instrumentor.uninstrument()
        tele.drain()
        calls = calls_for(call, target_seconds)
        bare_times, instrumented_times = [], []
        totals = [0, 0, 0]
        for _ in range(rounds):
            bare_times.append(time_calls(call, calls))
            instrumentor.instrument(tele)
            instrumented_times.append(time_calls(call, calls))
            instrumentor.uninstrument()
            counts = tele.drain()
            check_spans(instrumentor, name, calls, counts)
            totals = [total + count for total, count in zip(totals, counts, strict=True)]
        results.append(
            summarize(name, bare_times, instrumented_times, calls, (totals[0], totals[1], totals[2]))
        )
    return results


def measure_one_process(instrumentor: Instrumentor | None, calls: dict[str, int]) -> dict[str, Any]:
    """One round in a fresh process, bare (None) or instrumented from the start; see `overhead.py`."""
    tele = telemetry()
    if instrumentor is not None:
        instrumentor.instrument(tele)
    out: dict[str, Any] = {}
    for name, call in scenarios().items():
        if name not in calls:
            continue
        for _ in range(40):
            call()
        tele.drain()
        seconds = time_calls(call, calls[name])
        counts = tele.drain()
        if instrumentor is not None:
            check_spans(instrumentor, name, calls[name], counts)
        out[name] = {"seconds": seconds, "counts": list(counts)}
    return out
