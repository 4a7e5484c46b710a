"""The instrumentor's contract: attribution, pricing choices, concurrency, and never breaking the caller."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import textwrap
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
import wrapt
from opentelemetry.instrumentation.utils import suppress_instrumentation

from opentelemetry_instrumentation_tokenbudget import cost_attributes
from tests.conftest import Telemetry


def chat_completion(
    model: str, prompt_tokens: int, completion_tokens: int, cached: int = 0
) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_760_000_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "ok"},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": cached},
        },
    }


def client_answering(body: dict[str, Any], base_url: str = "https://api.openai.com/v1") -> openai.OpenAI:
    def handle(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, json=body)

    http = httpx2.Client(transport=httpx2.MockTransport(handle))
    return openai.OpenAI(api_key="k", base_url=base_url, http_client=http, max_retries=0)


def async_client_answering(body: dict[str, Any]) -> openai.AsyncOpenAI:
    async def handle(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, json=body)

    http = httpx2.AsyncClient(transport=httpx2.MockTransport(handle))
    return openai.AsyncOpenAI(
        api_key="k", base_url="https://api.openai.com/v1", http_client=http, max_retries=0
    )


def ask(client: openai.OpenAI, model: str = "gpt-4o-mini") -> Any:
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])


GPT_4O_MINI_100_IN_50_OUT = float((100 * Decimal("0.15") + 50 * Decimal("0.6")) / 1_000_000)


def test_cost_attributes_on_spans_and_only_low_cardinality_ones_on_metrics(
    instrumented: Any, telemetry: Telemetry
) -> None:
    client = client_answering(chat_completion("gpt-4o-mini", 100, 50))

    with cost_attributes(project="acme", feature="search", user="u-42", session="s-1", tenant="t-9"):
        ask(client)

    attributes = telemetry.only_span().attributes
    assert attributes["tokenbudget.project"] == "acme"
    assert attributes["tokenbudget.feature"] == "search"
    assert attributes["tokenbudget.tenant"] == "t-9"
    assert attributes["user.id"] == "u-42"
    assert attributes["session.id"] == "s-1"
    (cost,) = telemetry.metric_points("gen_ai.client.operation.cost")
    assert cost.attributes["tokenbudget.project"] == "acme"
    assert cost.attributes["tokenbudget.tenant"] == "t-9"
    assert "user.id" not in cost.attributes
    assert "session.id" not in cost.attributes
    assert cost.sum == GPT_4O_MINI_100_IN_50_OUT


def test_user_id_on_metrics_when_allowed(instrument: Any, telemetry: Telemetry) -> None:
    instrument(metric_attribution_keys=["user.id"])
    with cost_attributes(project="acme", user="u-42"):
        ask(client_answering(chat_completion("gpt-4o-mini", 100, 50)))

    (cost,) = telemetry.metric_points("gen_ai.client.operation.cost")
    assert cost.attributes["user.id"] == "u-42"
    assert "tokenbudget.project" not in cost.attributes


def test_nested_cost_attributes(instrumented: Any, telemetry: Telemetry) -> None:
    client = client_answering(chat_completion("gpt-4o-mini", 100, 50))
    with cost_attributes(project="acme", feature="search"):
        with cost_attributes(feature="rerank", **{"deployment.environment.name": "prod"}):
            ask(client)
        ask(client)

    inner, outer = (span.attributes for span in telemetry.our_spans())
    assert inner["tokenbudget.project"] == "acme"
    assert inner["tokenbudget.feature"] == "rerank"
    assert inner["deployment.environment.name"] == "prod"
    assert outer["tokenbudget.feature"] == "search"
    assert "deployment.environment.name" not in outer


def test_cost_attributes_rejects_values_that_are_not_attributes() -> None:
    attributes = cost_attributes(project=["a"])  # type: ignore[arg-type]
    with pytest.raises(
        TypeError, match=r"cost_attributes\(project=...\): expected str, bool, int or float, got list"
    ):
        attributes.__enter__()


def test_unknown_model_has_no_cost_and_is_counted_unpriced(
    instrumented: Any, telemetry: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    client = client_answering(chat_completion("my-finetune-7", 100, 50))
    with caplog.at_level(logging.WARNING):
        ask(client, "my-finetune-7")
        ask(client, "my-finetune-7")

    for span in telemetry.our_spans():
        assert span.attributes["gen_ai.usage.input_tokens"] == 100
        assert "gen_ai.usage.cost.amount" not in span.attributes
    (unpriced,) = telemetry.metric_points("tokenbudget.client.unpriced_calls")
    assert unpriced.value == 2
    assert unpriced.attributes["gen_ai.request.model"] == "my-finetune-7"
    warnings = [r for r in caplog.records if "no price is known" in r.getMessage()]
    assert len(warnings) == 1
    assert telemetry.metric_points("gen_ai.client.operation.cost") == []


def test_user_price_overrides_win(instrument: Any, telemetry: Telemetry) -> None:
    instrument(prices={"my-finetune-7": {"input_mtok": 0.3, "output_mtok": 1.2}})
    ask(client_answering(chat_completion("my-finetune-7", 100, 50)), "my-finetune-7")

    attributes = telemetry.only_span().attributes
    # 100 x 0.3 + 50 x 1.2 = 90 microdollars
    assert attributes["gen_ai.usage.cost.amount"] == 0.00009
    assert attributes["tokenbudget.price.source"] == "user"


def test_bad_price_override_is_a_clear_error(instrument: Any) -> None:
    with pytest.raises(ValueError, match=r"prices\['m'\].output_mtok: 'lots' is not a number"):
        instrument(prices={"m": {"input_mtok": 1, "output_mtok": "lots"}})


def test_local_model_is_not_priced_as_openai(instrumented: Any, telemetry: Telemetry) -> None:
    # A local model that calls itself gpt-4o-mini must not be billed at OpenAI's price.
    client = client_answering(chat_completion("gpt-4o-mini", 100, 50), base_url="http://localhost:11434/v1")
    ask(client)

    attributes = telemetry.only_span().attributes
    assert attributes["gen_ai.provider.name"] == "ollama"
    assert attributes["server.port"] == 11434
    assert attributes["gen_ai.usage.cost.amount"] == 0.0
    assert attributes["tokenbudget.price.source"] == "local_model"


@pytest.mark.parametrize(
    ("base_url", "provider"),
    [
        ("http://127.0.0.1:8000/v1", "vllm"),
        ("http://localhost:1234/v1", "lm_studio"),
        ("http://192.168.1.20:8080/v1", "llama_cpp"),
        # An unknown port on a local address: the SDK's provider, as the conventions ask.
        ("http://10.0.0.5:9999/v1", "openai"),
        ("https://myres.openai.azure.com/openai", "azure.ai.openai"),
        ("https://openrouter.ai/api/v1", "openrouter"),
    ],
)
def test_provider_recognised_from_base_url(
    instrumented: Any, telemetry: Telemetry, base_url: str, provider: str
) -> None:
    ask(client_answering(chat_completion("some-model", 1, 1), base_url=base_url), "some-model")

    assert telemetry.only_span().attributes["gen_ai.provider.name"] == provider


def test_a_client_whose_base_url_changes_is_classified_again(instrumented: Any, telemetry: Telemetry) -> None:
    # The endpoint is remembered per client; moving the client must not keep the old answer.
    client = client_answering(chat_completion("some-model", 1, 1), base_url="http://localhost:11434/v1")
    ask(client, "some-model")
    client.base_url = "http://localhost:8000/v1"  # type: ignore[assignment]
    ask(client, "some-model")

    first, second = telemetry.our_spans()
    assert first.attributes["gen_ai.provider.name"] == "ollama"
    assert second.attributes["gen_ai.provider.name"] == "vllm"
    assert second.attributes["server.port"] == 8000


def test_local_model_priced_at_the_users_compute_rate(instrument: Any, telemetry: Telemetry) -> None:
    instrument(prices={"vllm/llama-3.1-8b": {"input_mtok": 0.05, "output_mtok": 0.1}})
    client = client_answering(
        chat_completion("llama-3.1-8b", 1000, 1000), base_url="http://127.0.0.1:8000/v1"
    )
    ask(client, "llama-3.1-8b")

    assert telemetry.only_span().attributes["gen_ai.usage.cost.amount"] == 0.00015


def test_base_url_providers_name_a_gateway(instrument: Any, telemetry: Telemetry) -> None:
    instrument(base_url_providers={"http://127.0.0.1:4000": "openai"})
    ask(client_answering(chat_completion("gpt-4o-mini", 100, 50), base_url="http://127.0.0.1:4000/v1"))

    attributes = telemetry.only_span().attributes
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.usage.cost.amount"] == GPT_4O_MINI_100_IN_50_OUT


def test_price_reported_by_the_response_is_passed_through(instrumented: Any, telemetry: Telemetry) -> None:
    body = chat_completion("openai/gpt-4o-mini", 100, 50)
    body["usage"]["cost"] = 0.0000456
    ask(client_answering(body, base_url="https://openrouter.ai/api/v1"), "openai/gpt-4o-mini")

    attributes = telemetry.only_span().attributes
    assert attributes["gen_ai.usage.cost.amount"] == 0.0000456
    assert attributes["gen_ai.usage.cost.source"] == "provider"


def test_suppressed_instrumentation_records_nothing(instrumented: Any, telemetry: Telemetry) -> None:
    with suppress_instrumentation():
        ask(client_answering(chat_completion("gpt-4o-mini", 100, 50)))

    assert telemetry.our_spans() == []


def test_uninstrument_restores_every_original(instrument: Any, telemetry: Telemetry) -> None:
    import anthropic.resources.messages.messages as anthropic_messages
    import openai.resources.chat.completions.completions as chat

    instrumentor = instrument()
    assert isinstance(chat.Completions.__dict__["create"], wrapt.FunctionWrapper)
    assert isinstance(anthropic_messages.AsyncMessages.__dict__["stream"], wrapt.FunctionWrapper)
    instrumentor.uninstrument()

    assert not isinstance(chat.Completions.__dict__["create"], wrapt.FunctionWrapper)
    assert not isinstance(anthropic_messages.AsyncMessages.__dict__["stream"], wrapt.FunctionWrapper)
    ask(client_answering(chat_completion("gpt-4o-mini", 100, 50)))
    assert telemetry.our_spans() == []

    instrumentor.instrument(
        tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
    )
    ask(client_answering(chat_completion("gpt-4o-mini", 100, 50)))
    assert len(telemetry.our_spans()) == 1


def test_a_response_we_cannot_read_reaches_the_user_untouched(
    instrumented: Any, telemetry: Telemetry
) -> None:
    body = chat_completion("gpt-4o-mini", 100, 50)
    body["usage"] = {"prompt_tokens": "many"}  # the SDK does not validate; our reading fails

    response = ask(client_answering(body))

    assert response.usage.prompt_tokens == "many"
    # A count that is no count is missing: the input is the prompt's estimate ("hi": one token), the
    # absent output none, and the call is marked estimated.
    attributes = telemetry.only_span().attributes or {}
    assert attributes["gen_ai.usage.input_tokens"] == 1
    assert attributes["gen_ai.usage.output_tokens"] == 0
    assert attributes["tokenbudget.cost.estimated"] is True
    assert attributes["gen_ai.usage.cost.amount"] == 1.5e-07


def test_eight_threads_sum_exactly(instrumented: Any, telemetry: Telemetry) -> None:
    calls_per_thread = 25
    client = client_answering(chat_completion("gpt-4o-mini", 100, 50))

    def work(index: int) -> None:
        with cost_attributes(project=f"p{index % 2}"):
            for _ in range(calls_per_thread):
                ask(client)

    threads = [threading.Thread(target=work, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    spans = telemetry.our_spans()
    assert len(spans) == 200
    total = sum(Decimal(str(span.attributes["gen_ai.usage.cost.amount"])) for span in spans)
    assert total == 200 * (100 * Decimal("0.15") + 50 * Decimal("0.6")) / 1_000_000
    points = telemetry.metric_points("gen_ai.client.operation.cost")
    assert sorted(p.count for p in points) == [100, 100]
    assert {p.attributes["tokenbudget.project"] for p in points} == {"p0", "p1"}


async def test_hundred_asyncio_tasks_sum_exactly(instrumented: Any, telemetry: Telemetry) -> None:
    client = async_client_answering(chat_completion("gpt-4o-mini", 100, 50))

    async def one(index: int) -> None:
        with cost_attributes(user=f"u{index}"):
            await asyncio.sleep(0)
            await client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
            )

    await asyncio.gather(*(one(index) for index in range(100)))

    spans = telemetry.our_spans()
    assert len(spans) == 100
    # Each task kept its own attribution across the await.
    assert {span.attributes["user.id"] for span in spans} == {f"u{index}" for index in range(100)}
    total = sum(Decimal(str(span.attributes["gen_ai.usage.cost.amount"])) for span in spans)
    assert total == Decimal("0.0045")
    (cost,) = telemetry.metric_points("gen_ai.client.operation.cost")
    assert cost.count == 100


def test_auto_instrumentation_entry_point() -> None:
    """`opentelemetry-instrument python app.py` loads us with only the environment to go on."""
    app = textwrap.dedent(
        """
        import httpx2, openai
        from opentelemetry import trace
        def handle(request):
            return httpx2.Response(200, json=BODY)
        client = openai.OpenAI(api_key="k", http_client=httpx2.Client(transport=httpx2.MockTransport(handle)))
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        trace.get_tracer_provider().force_flush()
        """
    ).replace("BODY", repr(chat_completion("gpt-4o-mini", 100, 50)))
    env = {
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_SERVICE_NAME": "auto-test",
        "PATH": "/usr/bin:/bin",
    }
    opentelemetry_instrument = str(Path(sys.executable).parent / "opentelemetry-instrument")
    result = subprocess.run(
        [opentelemetry_instrument, sys.executable, "-c", app],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert '"gen_ai.usage.cost.amount": 4.5e-05' in result.stdout


def test_a_module_the_sdk_imports_late_is_wrapped_when_it_is_imported() -> None:
    """openai's beta Responses module takes about 0.35 s to import: instrument() must not import it,
    and its calls are still counted, once, after the application first uses it."""
    app = textwrap.dedent(
        """
        import sys
        import httpx2, openai
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from opentelemetry_instrumentation_tokenbudget import TokenBudgetInstrumentor
        from opentelemetry_instrumentation_tokenbudget.testing import FakeProvider

        LATE = "openai.resources.beta.responses.responses"
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        instrumentor = TokenBudgetInstrumentor()
        # instrument, uninstrument, instrument: the first hook must not wrap a second time.
        instrumentor.instrument(tracer_provider=provider)
        instrumentor.uninstrument()
        instrumentor.instrument(tracer_provider=provider)
        assert LATE not in sys.modules, "instrument() imported the late module"
        client = openai.OpenAI(api_key="k", http_client=httpx2.Client(transport=FakeProvider().transport()))
        client.beta.responses.create(model="gpt-4o-mini", input="Say this is a test")
        assert LATE in sys.modules
        (span,) = exporter.get_finished_spans()
        print(span.attributes["gen_ai.usage.input_tokens"], span.attributes["gen_ai.usage.cost.amount"])
        instrumentor.uninstrument()
        client.beta.responses.create(model="gpt-4o-mini", input="Say this is a test")
        assert len(exporter.get_finished_spans()) == 1, "uninstrument() left the late module wrapped"
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", app], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    # "Say this is a test": 18 characters, 5 tokens, + 3 of framing; 11 words of reply.
    # gpt-4o-mini: 8 x 0.15 + 11 x 0.6 = 1.2 + 6.6 = 7.8 microdollars.
    assert result.stdout.split() == ["8", "7.8e-06"]


def test_classes_are_looked_for_where_each_sdk_generation_keeps_them() -> None:
    from opentelemetry_instrumentation_tokenbudget.instrumentor import _candidate_modules

    assert _candidate_modules("openai.resources.chat.completions.completions") == [
        "openai.resources.chat.completions.completions",
        "openai.resources.chat.completions",
    ]
    assert _candidate_modules("openai.resources.embeddings") == ["openai.resources.embeddings"]


def test_an_installed_sdk_with_nothing_wrapped_is_a_warning(
    telemetry: Telemetry, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opentelemetry_instrumentation_tokenbudget import instrumentor as module
    from opentelemetry_instrumentation_tokenbudget.providers.targets import Target

    # An installed package (wrapt) whose only target is where no release keeps it.
    monkeypatch.setitem(
        module._PROVIDER_PACKAGES,
        "wrapt",
        lambda settings: [Target("wrapt.nowhere", "Nothing", "create", None, is_async=False)],  # type: ignore[arg-type]
    )
    instrumentor = module.TokenBudgetInstrumentor()
    with caplog.at_level(logging.WARNING):
        instrumentor.instrument(
            tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
        )
    instrumentor.uninstrument()
    import wrapt

    assert [r.getMessage() for r in caplog.records if "none of its methods" in r.getMessage()] == [
        f"tokenbudget: wrapt {wrapt.__version__} is installed but none of its methods could be wrapped,"
        " so its calls are neither recorded nor budgeted; this release keeps its classes where we do not"
        " look for them"
    ]


def test_the_supported_sdks_and_their_floors_are_those_of_the_instruments_any_extra() -> None:
    # The auto-instrumentation loader reads package.py; pip reads pyproject.toml: one list, said twice.
    from pathlib import Path

    import tomllib
    from packaging.requirements import Requirement

    from opentelemetry_instrumentation_tokenbudget.package import _instruments_any

    pyproject = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())
    declared = pyproject["project"]["optional-dependencies"]["instruments-any"]

    def parsed(requirements: Any) -> set[tuple[str, str]]:
        return {(r.name, str(r.specifier)) for r in map(Requirement, requirements)}

    assert parsed(_instruments_any) == parsed(declared)
