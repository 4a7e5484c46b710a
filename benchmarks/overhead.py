"""Per-call overhead of the instrumentation, as a ratio against the bare SDK call, in one process.

The real OpenAI and Anthropic SDKs talk to an in-process `httpx2.MockTransport` that answers with a
prepared body, so the time measured is the CPU the SDK spends plus what the instrumentation adds; no
network noise. Rounds alternate bare and instrumented (instrument, measure, uninstrument), and the
figure is the median of the per-round ratios, so drift of the machine cancels out.

    python benchmarks/overhead.py [--rounds 15] [--calls 300] [--json benchmarks/results/overhead.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from opentelemetry_instrumentation_tokenbudget import TokenBudgetInstrumentor

STREAM_CHUNKS = 200
MESSAGES = [{"role": "user", "content": "Say this is a test"}]


def _chat_body() -> bytes:
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


def _chat_stream_body(include_usage: bool) -> bytes:
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


def _message_body() -> bytes:
    return json.dumps(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-3-5-haiku-20241022",
            "content": [{"type": "text", "text": "This is a test."}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 12, "output_tokens": 5},
        }
    ).encode()


def _message_stream_body() -> bytes:
    def event(name: str, data: dict[str, Any]) -> str:
        return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n"

    start = {
        "message": {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-3-5-haiku-20241022",
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


def _transport(
    json_body: bytes, stream_body: bytes, stream_body_with_usage: bytes | None = None
) -> httpx2.MockTransport:
    def handle(request: httpx2.Request) -> httpx2.Response:
        payload = json.loads(request.content)
        if not payload.get("stream"):
            return httpx2.Response(200, headers={"content-type": "application/json"}, content=json_body)
        wants_usage = (payload.get("stream_options") or {}).get("include_usage")
        body = stream_body_with_usage if wants_usage and stream_body_with_usage else stream_body
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    return httpx2.MockTransport(handle)


def _scenarios() -> dict[str, Callable[[], Any]]:
    openai_client = openai.OpenAI(
        api_key="k",
        http_client=httpx2.Client(
            transport=_transport(_chat_body(), _chat_stream_body(False), _chat_stream_body(True))
        ),
    )
    anthropic_client = anthropic.Anthropic(
        api_key="k", http_client=httpx2.Client(transport=_transport(_message_body(), _message_stream_body()))
    )

    def openai_chat() -> Any:
        return openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    def openai_chat_stream() -> Any:
        for _ in openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True):
            pass

    def anthropic_messages() -> Any:
        return anthropic_client.messages.create(
            model="claude-3-5-haiku-20241022", max_tokens=100, messages=MESSAGES
        )

    def anthropic_messages_stream() -> Any:
        for _ in anthropic_client.messages.create(
            model="claude-3-5-haiku-20241022", max_tokens=100, messages=MESSAGES, stream=True
        ):
            pass

    return {
        "openai chat": openai_chat,
        f"openai chat stream ({STREAM_CHUNKS} chunks)": openai_chat_stream,
        "anthropic messages": anthropic_messages,
        f"anthropic messages stream ({STREAM_CHUNKS} events)": anthropic_messages_stream,
    }


def _time_calls(call: Callable[[], Any], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - start) / calls


def measure(rounds: int, calls: int) -> list[dict[str, Any]]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    instrumentor = TokenBudgetInstrumentor()
    results = []
    for name, call in _scenarios().items():
        for _ in range(max(calls // 10, 5)):
            call()  # warm up the SDK's lazy paths and our price cache
        ratios, bare_times, instrumented_times = [], [], []
        for _ in range(rounds):
            bare = _time_calls(call, calls)
            instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
            exporter.clear()
            instrumented = _time_calls(call, calls)
            spans = exporter.get_finished_spans()
            instrumentor.uninstrument()
            # The instrumented rounds must really have recorded each call and its cost.
            assert len(spans) == calls, (name, len(spans))
            assert all("gen_ai.usage.cost.amount" in (span.attributes or {}) for span in spans), name
            ratios.append(instrumented / bare)
            bare_times.append(bare)
            instrumented_times.append(instrumented)
        ratios.sort()
        results.append(
            {
                "scenario": name,
                "bare_us": statistics.median(bare_times) * 1e6,
                "instrumented_us": statistics.median(instrumented_times) * 1e6,
                "ratio_median": statistics.median(ratios),
                "ratio_p25": ratios[len(ratios) // 4],
                "ratio_p75": ratios[(3 * len(ratios)) // 4],
                "rounds": rounds,
                "calls_per_round": calls,
            }
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "overhead.json")
    args = parser.parse_args()
    results = measure(args.rounds, args.calls)
    print(f"{'scenario':40} {'bare us':>9} {'instr. us':>10} {'ratio':>7} {'p25-p75':>13}")
    for row in results:
        print(
            f"{row['scenario']:40} {row['bare_us']:>9.1f} {row['instrumented_us']:>10.1f}"
            f" {row['ratio_median']:>7.3f} {row['ratio_p25']:>6.3f}-{row['ratio_p75']:.3f}"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {args.json}")


if __name__ == "__main__":
    main()
