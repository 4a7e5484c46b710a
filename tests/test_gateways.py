"""Priced right wherever the call goes: providers matched from the base URL by the price data, local
servers free, gateways and unknown hosts priced by the model name (marked inferred) or flagged
unpriced, never $0; budgets behind a gateway refuse as they do against the provider itself.

The real OpenAI and Anthropic SDKs are pointed at each base URL; the HTTP goes to a local transport.
Each call reports 1,000 input and 200 output tokens.
"""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from opentelemetry_instrumentation_tokenbudget import Budget, BudgetExceededError
from opentelemetry_instrumentation_tokenbudget.budgets.stores import open_store
from opentelemetry_instrumentation_tokenbudget.pricing import RouteKind, classify
from opentelemetry_instrumentation_tokenbudget.testing import FakeProvider
from tests.budget_support import CALL_COST_PICO, Clock, ask, ledger
from tests.conftest import Telemetry


def chat_body(model: str, cost: Any = None) -> dict[str, Any]:
    usage: dict[str, Any] = {"prompt_tokens": 1000, "completion_tokens": 200, "total_tokens": 1200}
    if cost is not None:
        usage["cost"] = cost
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_760_000_000,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": usage,
    }


def message_body(model: str) -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": "ok"}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 1000, "output_tokens": 200},
    }


def answering(body: dict[str, Any] | str) -> httpx2.Client:
    content = body if isinstance(body, str) else json.dumps(body)
    headers = {"content-type": "application/json"}
    return httpx2.Client(
        transport=httpx2.MockTransport(lambda request: httpx2.Response(200, content=content, headers=headers))
    )


def ask_openai(base_url: str, model: str, body: dict[str, Any] | str | None = None) -> None:
    client = openai.OpenAI(
        api_key="k", base_url=base_url, http_client=answering(body or chat_body(model)), max_retries=0
    )
    client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])


# gpt-4o-mini: 1000 x 0.15 + 200 x 0.6 = 270 microdollars, wherever the data prices it.
GPT_4O_MINI = 0.00027

# base URL, model -> gen_ai.provider.name, price source, inferred, cost (None: unpriced)
OPENAI_SDK_ENDPOINTS = [
    ("https://api.openai.com/v1", "gpt-4o-mini", "openai", "genai-prices", False, GPT_4O_MINI),
    ("https://oai.helicone.ai/v1", "gpt-4o-mini", "openai", "genai-prices", True, GPT_4O_MINI),
    (
        "https://gateway.ai.cloudflare.com/v1/acct/gw/openai",
        "gpt-4o-mini",
        "openai",
        "genai-prices",
        True,
        GPT_4O_MINI,
    ),
    ("https://api.portkey.ai/v1", "gpt-4o-mini", "openai", "genai-prices", True, GPT_4O_MINI),
    ("http://localhost:4000", "gpt-4o-mini", "openai", "genai-prices", True, GPT_4O_MINI),
    ("https://llm.corp.example.com/v1", "gpt-4o-mini", "openai", "genai-prices", True, GPT_4O_MINI),
    ("https://llm.corp.example.com/v1", "mystery-model-7", "openai", None, False, None),
    # A loopback address on a port no local server uses: a gateway if the model is known...
    ("http://127.0.0.1:9999/v1", "gpt-4o-mini", "openai", "genai-prices", True, GPT_4O_MINI),
    # ... a local model under its own name if nobody prices it.
    ("http://127.0.0.1:9999/v1", "my-local-model", "openai", "local_model", False, 0.0),
    # gemini-2.5-flash: 1000 x 0.3 + 200 x 2.5 = 800 microdollars.
    (
        "https://generativelanguage.googleapis.com/v1beta/openai/",
        "gemini-2.5-flash",
        "gcp.gemini",
        "genai-prices",
        False,
        0.0008,
    ),
    (
        "https://myres.services.ai.azure.com/openai/v1",
        "gpt-4o-mini",
        "azure.ai.inference",
        "genai-prices",
        False,
        GPT_4O_MINI,
    ),
    (
        "https://myres.cognitiveservices.azure.com/openai/v1",
        "gpt-4o-mini",
        "azure.ai.openai",
        "genai-prices",
        False,
        GPT_4O_MINI,
    ),
    # grok-3 at x-ai's price (the conventions' x_ai is genai-prices' x-ai): 1000 x 3 + 200 x 15.
    ("https://api.x.ai/v1", "grok-3", "x_ai", "genai-prices", False, 0.006),
    ("http://localhost:11434/v1", "llama3.2", "ollama", "local_model", False, 0.0),
    ("http://localhost:8000/v1", "Qwen/Qwen2.5-7B-Instruct", "vllm", "local_model", False, 0.0),
    ("http://localhost:1234/v1", "qwen2.5-7b-instruct", "lm_studio", "local_model", False, 0.0),
    ("http://localhost:8080/v1", "gpt-4o-mini", "llama_cpp", "local_model", False, 0.0),
]


@pytest.mark.parametrize("row", OPENAI_SDK_ENDPOINTS, ids=lambda row: f"{row[0]} {row[1]}")
def test_openai_sdk_priced_wherever_it_points(
    instrumented: Any, telemetry: Telemetry, row: tuple[str, str, str, str | None, bool, float | None]
) -> None:
    base_url, model, provider, source, inferred, cost = row
    ask_openai(base_url, model)

    attributes = telemetry.only_span().attributes
    assert attributes["gen_ai.provider.name"] == provider
    assert attributes.get("tokenbudget.price.source") == source
    assert attributes.get("tokenbudget.price.inferred", False) is inferred
    assert attributes.get("gen_ai.usage.cost.amount") == cost
    if cost is None:
        assert attributes["tokenbudget.cost.unpriced"] is True
        (unpriced,) = telemetry.metric_points("tokenbudget.client.unpriced_calls")
        assert unpriced.value == 1
    else:
        assert "tokenbudget.cost.unpriced" not in attributes
        assert telemetry.metric_points("tokenbudget.client.unpriced_calls") == []


def ask_anthropic(client: anthropic.Anthropic, model: str) -> None:
    client.messages.create(model=model, max_tokens=10, messages=[{"role": "user", "content": "hi"}])


def test_anthropic_sdk_behind_a_gateway_is_priced_as_inferred(
    instrumented: Any, telemetry: Telemetry
) -> None:
    model = "claude-haiku-4-5"
    ask_anthropic(anthropic.Anthropic(api_key="k", http_client=answering(message_body(model))), model)
    gateway = "https://anthropic.helicone.ai"
    ask_anthropic(
        anthropic.Anthropic(api_key="k", base_url=gateway, http_client=answering(message_body(model))), model
    )

    direct, behind_gateway = (span.attributes for span in telemetry.our_spans())
    # 1000 x 1 + 200 x 5 = 2,000 microdollars both ways.
    assert direct["gen_ai.usage.cost.amount"] == behind_gateway["gen_ai.usage.cost.amount"] == 0.002
    assert "tokenbudget.price.inferred" not in direct
    assert behind_gateway["tokenbudget.price.inferred"] is True
    assert behind_gateway["server.address"] == "anthropic.helicone.ai"
    assert behind_gateway["gen_ai.provider.name"] == "anthropic"


def test_anthropic_bedrock_and_vertex_clients_priced_at_their_clouds_rates(
    instrumented: Any, telemetry: Telemetry
) -> None:
    # Claude Haiku 4.5 through a regional (US) inference profile costs 10% more on Bedrock than from
    # Anthropic directly: 1000 x 1.1 + 200 x 5.5 = 2,200 microdollars, not 2,000.
    bedrock_model = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
    bedrock = anthropic.AnthropicBedrock(
        api_key="k", aws_region="us-east-1", http_client=answering(message_body(bedrock_model))
    )
    ask_anthropic(bedrock, bedrock_model)  # type: ignore[arg-type]
    vertex_model = "claude-sonnet-4@20250514"
    vertex = anthropic.AnthropicVertex(
        region="us-east5", project_id="p", access_token="t", http_client=answering(message_body(vertex_model))
    )
    ask_anthropic(vertex, vertex_model)  # type: ignore[arg-type]

    on_bedrock, on_vertex = (span.attributes for span in telemetry.our_spans())
    assert on_bedrock["gen_ai.provider.name"] == "aws.bedrock"
    assert on_bedrock["server.address"] == "bedrock-runtime.us-east-1.amazonaws.com"
    assert on_bedrock["gen_ai.usage.cost.amount"] == 0.0022
    assert on_vertex["gen_ai.provider.name"] == "gcp.vertex_ai"
    # 1000 x 3 + 200 x 15 = 6,000 microdollars.
    assert on_vertex["gen_ai.usage.cost.amount"] == 0.006
    assert "tokenbudget.price.inferred" not in on_bedrock


def test_unknown_model_at_a_gateway_warns_once_per_endpoint_and_model(
    instrumented: Any, telemetry: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            ask_openai("https://oai.helicone.ai/v1", "mystery-model-7")
        ask_openai("https://api.portkey.ai/v1", "mystery-model-7")

    warnings = [record.getMessage() for record in caplog.records if "mystery-model-7" in record.getMessage()]
    assert len(warnings) == 2
    assert "at oai.helicone.ai" in warnings[0]
    assert "at api.portkey.ai" in warnings[1]
    counted = {
        point.attributes["server.address"]: point.value
        for point in telemetry.metric_points("tokenbudget.client.unpriced_calls")
    }
    assert counted == {"oai.helicone.ai": 3, "api.portkey.ai": 1}


def test_a_base_url_named_a_local_server_is_free(instrument: Any, telemetry: Telemetry) -> None:
    # A GPU box on the company network, serving a model under a name the price data knows.
    instrument(local_servers=["http://gpu-box.corp.example.com:9000"])
    ask_openai("http://gpu-box.corp.example.com:9000/v1", "gpt-4o-mini")

    attributes = telemetry.only_span().attributes
    assert attributes["gen_ai.provider.name"] == "openai_compatible"
    assert attributes["tokenbudget.price.source"] == "local_model"
    assert attributes["gen_ai.usage.cost.amount"] == 0.0


def test_local_servers_must_be_a_list_of_base_urls(instrument: Any) -> None:
    with pytest.raises(ValueError, match=r"local_servers='http://x': expected a list of base URLs"):
        instrument(local_servers="http://x")


# ---- bad input ------------------------------------------------------------------------------------


def test_a_model_name_in_another_case_or_with_spaces_is_priced_as_the_model_it_names(
    instrumented: Any, telemetry: Telemetry
) -> None:
    ask_openai("https://api.openai.com/v1", "  GPT-4o-Mini ")

    assert telemetry.only_span().attributes["gen_ai.usage.cost.amount"] == GPT_4O_MINI


@pytest.mark.parametrize("base_url", ["http://[::1", "https://host:99999/v1", "::::"])
def test_a_base_url_that_cannot_be_parsed_is_an_unknown_host(base_url: str) -> None:
    endpoint = classify(base_url, "openai")

    assert endpoint.route.kind is RouteKind.UNKNOWN_HOST
    assert endpoint.provider == "openai"


@pytest.mark.parametrize("reported", ["-0.5", "NaN", '"a lot"', "1e999", "[1]"])
def test_a_provider_cost_that_is_no_amount_is_ignored_and_the_computed_cost_used(
    instrumented: Any, telemetry: Telemetry, caplog: pytest.LogCaptureFixture, reported: str
) -> None:
    # As the JSON text has it: Python's json reads NaN and 1e999 as floats.
    body = json.dumps(chat_body("openai/gpt-4o-mini", cost="COST")).replace('"COST"', reported)
    with caplog.at_level(logging.WARNING):
        ask_openai("https://openrouter.ai/api/v1", "openai/gpt-4o-mini", body)

    attributes = telemetry.only_span().attributes
    assert attributes["gen_ai.usage.cost.amount"] == GPT_4O_MINI
    assert attributes["gen_ai.usage.cost.source"] == "local"
    assert any("not an amount of money" in record.getMessage() for record in caplog.records)


def test_openrouter_byok_counts_the_fee_and_the_upstream_charge(
    instrumented: Any, telemetry: Telemetry
) -> None:
    body = chat_body("openai/gpt-4o-mini", cost=0.0000135)
    body["usage"]["is_byok"] = True
    body["usage"]["cost_details"] = {"upstream_inference_cost": 0.00027}
    ask_openai("https://openrouter.ai/api/v1", "openai/gpt-4o-mini", body)

    attributes = telemetry.only_span().attributes
    # OpenRouter's fee, 13.5 microdollars, plus what OpenAI bills to your own key, 270.
    assert attributes["gen_ai.usage.cost.amount"] == 0.0002835
    assert attributes["tokenbudget.cost.upstream"] == 0.00027
    assert attributes["gen_ai.usage.cost.source"] == "provider"


def test_openrouter_cache_writes_are_priced_as_cache_writes(instrumented: Any, telemetry: Telemetry) -> None:
    # Without usage accounting OpenRouter sends no cost: priced from the tokens, 3000 of the 4000
    # input tokens written to Anthropic's cache: 1000 x 1 + 3000 x 1.25 + 200 x 5 = 5,750 microdollars.
    body = chat_body("anthropic/claude-haiku-4.5")
    body["usage"].update(
        prompt_tokens=4000, prompt_tokens_details={"cached_tokens": 0, "cache_write_tokens": 3000}
    )
    ask_openai("https://openrouter.ai/api/v1", "anthropic/claude-haiku-4.5", body)

    attributes = telemetry.only_span().attributes
    assert attributes["gen_ai.usage.cache_creation.input_tokens"] == 3000
    assert attributes["gen_ai.usage.cost.amount"] == 0.00575


# ---- budgets behind a gateway -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "base_url", ["https://api.openai.com/v1", "https://oai.helicone.ai/v1", "http://localhost:4000/v1"]
)
def test_a_hard_budget_refuses_behind_a_gateway_exactly_as_against_openai(
    instrument: Any, telemetry: Telemetry, base_url: str
) -> None:
    clock = Clock()
    store = open_store("memory", clock=clock)
    budget = Budget("hard", "0.001")
    instrument(budgets=[budget], store=store, clock=clock)
    provider = FakeProvider()
    http = httpx2.Client(transport=provider.transport())
    client = openai.OpenAI(api_key="k", base_url=base_url, http_client=http, max_retries=0)
    admitted = refused = 0
    for _ in range(60):
        try:
            ask(client)
            admitted += 1
        except BudgetExceededError:
            refused += 1

    # 50 calls of 19.65 microdollars fit in 1,000; the 51st would not.
    assert (admitted, refused) == (50, 10)
    assert len(provider.requests) == 50
    assert ledger(store, budget, clock.now).spent == 50 * CALL_COST_PICO
    store.close()


# ---- price data updates ---------------------------------------------------------------------------


def test_a_price_data_update_takes_effect_on_the_next_call_and_names_its_data(
    instrumented: Any, telemetry: Telemetry
) -> None:
    import copy
    from datetime import datetime

    from genai_prices import __version__, data_snapshot
    from genai_prices.types import ModelPrice

    ask_openai("https://api.openai.com/v1", "gpt-4o-mini")
    bundled = data_snapshot.get_snapshot()
    providers = []
    for original in bundled.providers:
        provider = copy.copy(original)
        if provider.id == "openai":
            provider.models = [copy.copy(model) for model in provider.models]
            for model in provider.models:
                if model.id == "gpt-4o-mini":
                    model.prices = ModelPrice(input_mtok=Decimal("0.3"), output_mtok=Decimal("1.2"))
        providers.append(provider)
    # What genai_prices.UpdatePrices installs: a new snapshot, from an automatic update.
    updated = data_snapshot.DataSnapshot(
        providers=providers,
        from_auto_update=True,
        timestamp=datetime(2026, 12, 2, 17, 0, 0),  # noqa: DTZ001  # genai-prices' own, naive
    )
    data_snapshot.set_custom_snapshot(updated)
    try:
        ask_openai("https://api.openai.com/v1", "gpt-4o-mini")
    finally:
        data_snapshot.set_custom_snapshot(None)
    ask_openai("https://api.openai.com/v1", "gpt-4o-mini")

    before, during, after = (span.attributes for span in telemetry.our_spans())
    assert before["gen_ai.usage.cost.amount"] == after["gen_ai.usage.cost.amount"] == GPT_4O_MINI
    assert before["tokenbudget.price.version"] == f"genai-prices {__version__}"
    # 1000 x 0.3 + 200 x 1.2 = 540 microdollars at the updated price.
    assert during["gen_ai.usage.cost.amount"] == 0.00054
    assert during["tokenbudget.price.version"] == f"genai-prices {__version__}, data of 2026-12-02T17:00:00"
