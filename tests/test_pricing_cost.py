"""`Cost`: a cost kept in whole picodollars reads as the exact Decimals and floats it stands for."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from opentelemetry_instrumentation_tokenbudget.pricing import PriceBook
from opentelemetry_instrumentation_tokenbudget.pricing.rates import Cost
from opentelemetry_instrumentation_tokenbudget.semconv import TokenbudgetPriceSourceValues
from opentelemetry_instrumentation_tokenbudget.usage import TokenUsage

SOURCE = TokenbudgetPriceSourceValues.GENAI_PRICES
PICODOLLARS = st.integers(min_value=0, max_value=2**63 - 1)


@given(parts=st.lists(PICODOLLARS, min_size=5, max_size=5))
def test_picodollars_read_as_the_exact_usd_and_its_correctly_rounded_floats(parts: list[int]) -> None:
    total = sum(parts)
    cost = Cost.in_picodollars(total, parts, source=SOURCE, version="v")

    usd = [Decimal(amount).scaleb(-12) for amount in parts]
    assert (cost.input, cost.cache_read, cost.cache_write, cost.output) == tuple(usd[:4])
    assert cost.total == Decimal(total).scaleb(-12)
    assert cost.total_picodollars == total
    assert cost.spent_picodollars() == total
    assert cost.float_total() == float(Decimal(total).scaleb(-12))
    assert type(cost.float_total()) is float
    assert cost.float_parts() == tuple(float(amount) for amount in usd[:4])
    assert all(type(value) is float for value in cost.float_parts())


def test_a_cost_in_usd_keeps_its_decimals_and_has_no_integer_total() -> None:
    parts = [Decimal("0.0000001234567"), Decimal(0), Decimal("1E-20"), Decimal("0.5"), Decimal("0.25")]
    cost = Cost.in_usd(sum(parts, Decimal(0)), parts, source=SOURCE, version="v", inferred=True)

    assert cost.input is parts[0]
    assert cost.output == Decimal("0.5")
    assert cost.total == Decimal("0.75000012345670000001")
    assert cost.total_picodollars is None
    # Rounded up to the picodollar: what budgets count is never less than what was spent.
    assert cost.spent_picodollars() == 750_000_123_457
    assert cost.float_total() == 0.7500001234567
    assert cost.float_parts() == (1.234567e-07, 0.0, 1e-20, 0.5)
    assert cost.inferred is True


def test_a_priced_call_has_the_figures_of_its_price() -> None:
    price = PriceBook().lookup("openai", "gpt-4o-mini")
    assert price is not None

    cost = price.cost(TokenUsage(input_tokens=1200, output_tokens=300, cache_read_tokens=1000))

    # $0.15 per million input tokens, $0.075 per million cached, $0.60 per million output.
    assert cost.total_picodollars == 30_000_000 + 75_000_000 + 180_000_000
    assert cost.total == Decimal("0.000285")
    assert cost.float_parts() == (3e-05, 7.5e-05, 0.0, 0.00018)
    assert cost.source is SOURCE
