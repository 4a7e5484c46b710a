"""What-if repricing and savings advice, priced by genai-prices, to the last digit."""

from __future__ import annotations

from decimal import Decimal

from opentelemetry_instrumentation_tokenbudget.finops import repricing
from opentelemetry_instrumentation_tokenbudget.finops.advice import advise
from opentelemetry_instrumentation_tokenbudget.finops.whatif import reprice

from .finops_history import Call

T0 = 1_795_000_000.0  # 2026-11-17, after the batch prices' start date in the price data


def call(model: str, feature: str, provider: str = "openai", user: str | None = "u-1", **fields) -> Call:
    fields.setdefault("input_tokens", 2000)
    fields.setdefault("output_tokens", 400)
    cost = repricing.price(
        provider,
        model,
        input_tokens=fields["input_tokens"],
        output_tokens=fields["output_tokens"],
        cache_read_tokens=fields.get("cache_read_tokens", 0),
    )
    attributes = {"tokenbudget.feature": feature}
    if user is not None:
        attributes["user.id"] = user
    return Call(
        start=T0 + fields.pop("offset", 0),
        provider=provider,
        request_model=model,
        cost_usd=cost,
        attributes=attributes,
        **fields,
    )


def feature_of(record) -> dict[str, str]:
    return {"feature": record.attributes["tokenbudget.feature"]}


def test_whatif_within_one_tokenizer_family():
    records = [call("gpt-4o", "search") for _ in range(10)] + [call("gpt-4o", "chat")]
    rows = reprice(records, "gpt-4o", "gpt-4o-mini", feature_of)
    assert [(r.key, r.calls, r.current_usd, r.projected_usd, r.saving_usd) for r in rows] == [
        ({"feature": "search"}, 10, Decimal("0.090"), Decimal("0.00540"), Decimal("0.08460")),
        ({"feature": "chat"}, 1, Decimal("0.009"), Decimal("0.00054"), Decimal("0.00846")),
    ]
    assert rows[0].projected_high_usd is None
    assert rows[0].caveat.startswith("same tokenizer (openai o200k_base)")


def test_whatif_applies_the_published_tokenizer_ratio_as_a_range():
    records = [call("claude-sonnet-4-5", "search", provider="anthropic")]
    [row] = reprice(records, "claude-sonnet-4-5", "claude-opus-4-7", feature_of)
    assert row.current_usd == Decimal("0.012")  # 2000 x $3 + 400 x $15 per million
    assert row.projected_usd == Decimal("0.020")  # 2000 x $5 + 400 x $25
    assert row.projected_high_usd == Decimal("0.027")  # 1.35x the tokens
    assert "1 to 1.35" in row.caveat.replace("x", "")


def test_whatif_across_families_says_it_assumes_equal_tokens_and_an_unknown_target_is_not_zero():
    records = [call("gpt-4o", "search"), Call(start=T0, request_model="gpt-4o", cost_usd=None)]
    [row] = reprice(records, "gpt-4o", "claude-haiku-4-5", lambda r: {})
    assert row.projected_usd == Decimal("0.004")  # 2000 x $1 + 400 x $5
    assert row.unpriced_calls == 1
    assert row.caveat.startswith("assumes claude-haiku-4-5 uses as many tokens as gpt-4o")
    [unknown] = reprice([call("gpt-4o", "search")], "gpt-4o", "no-such-model-xyz", lambda r: {})
    assert unknown.projected_usd is None


def test_advice_ranks_every_kind_of_saving():
    records = (
        [call("gpt-4o", "search", offset=i) for i in range(10)]
        + [
            call(
                "gpt-4o-mini",
                "support",
                input_tokens=3000,
                output_tokens=100,
                prompt_prefix_hash="ab12",
                offset=i,
            )
            for i in range(5)
        ]
        + [call("gpt-4o-mini", "nightly-digest", user=None, offset=i) for i in range(3)]
        + [
            call("claude-sonnet-4-5", "rag", provider="anthropic", input_tokens=210_000, output_tokens=500)
            for _ in range(2)
        ]
        + [call("gpt-4o-mini", "chat", output_tokens=100 + 50 * i, max_tokens=4096) for i in range(5)]
    )
    found = advise(records)
    table = [(a.kind, dict(a.scope), a.calls, a.current_usd, a.projected_usd, a.saving_usd) for a in found]
    assert table == [
        # 2 x (210,000 x $6 + 500 x $22.50) past the 200k tier, against 200,000 x $3 + 500 x $15
        ("context-tier", {"feature": "rag", "model": "claude-sonnet-4-5"}, 2,
         Decimal("2.54250"), Decimal("1.2150"), Decimal("1.32750")),
        ("cheaper-model", {"feature": "search", "model": "gpt-4o"}, 10,
         Decimal("0.090"), Decimal("0.00540"), Decimal("0.08460")),
        ("batch", {"feature": "nightly-digest", "model": "gpt-4o-mini"}, 3,
         Decimal("0.00162"), Decimal("0.00081"), Decimal("0.00081")),
        # 4 of 5 calls read their first 1,024 tokens from the cache at $0.075 instead of $0.15
        ("prompt-caching", {"feature": "support", "model": "gpt-4o-mini"}, 5,
         Decimal("0.00255"), Decimal("0.0022428"), Decimal("0.0003072")),
        # 5 x 2,000 x $0.15 + (100 + 150 + ... + 300) x $0.60 per million; max_tokens is not billed
        ("max-tokens", {"feature": "chat", "model": "gpt-4o-mini"}, 5,
         Decimal("0.00210"), Decimal("0.00210"), Decimal("0")),
    ]  # fmt: skip
    max_tokens = found[-1]
    assert "max_tokens=4096" in max_tokens.action
    assert "max_tokens=600" in max_tokens.action
    assert "85% less reserved" in max_tokens.caveat
