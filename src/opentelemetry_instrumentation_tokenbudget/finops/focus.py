"""FOCUS (FinOps Open Cost and Usage Specification) 1.0 cost-and-usage rows from spend records: what a
finance team loads next to its cloud bill.

One row per UTC day x provider x model x operation x attribution group, as a cloud provider's own
FOCUS export charges a token-priced service: ServiceCategory "AI and Machine Learning",
ConsumedQuantity and PricingQuantity in tokens (every kind: input, output, cache read and cache
write), the attribution as Tags (a JSON object; user and session ids only when asked for, see
`HIGH_CARDINALITY_KEYS`). The per-kind token counts, the number of calls and of unpriced or estimated
calls are `x_` columns (FOCUS reserves that prefix for columns of the data generator): a row whose
calls were not all priced says how many were not, its cost is the priced calls' only.

The billing account is the provider (the account the calls were charged to is not known here); the
sub-account is the `project` attribution when the group has one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Final

from opentelemetry.semconv._incubating.attributes.session_attributes import SESSION_ID
from opentelemetry.semconv._incubating.attributes.user_attributes import USER_ID

from ..semconv import TOKENBUDGET_PROJECT
from .spend_record import SpendRecord

FOCUS_VERSION: Final = "1.0"
SERVICE_CATEGORY: Final = "AI and Machine Learning"
TOKEN_UNIT: Final = "Tokens"  # noqa: S105 (a unit, not a password)
CURRENCY: Final = "USD"

COLUMNS: Final = (
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargeFrequency",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "CommitmentDiscountCategory",
    "CommitmentDiscountId",
    "CommitmentDiscountName",
    "CommitmentDiscountStatus",
    "CommitmentDiscountType",
    "ConsumedQuantity",
    "ConsumedUnit",
    "ContractedCost",
    "ContractedUnitPrice",
    "EffectiveCost",
    "InvoiceIssuer",
    "ListCost",
    "ListUnitPrice",
    "PricingCategory",
    "PricingQuantity",
    "PricingUnit",
    "Provider",
    "Publisher",
    "RegionId",
    "RegionName",
    "ResourceId",
    "ResourceName",
    "ResourceType",
    "ServiceCategory",
    "ServiceName",
    "SkuId",
    "SkuPriceId",
    "SubAccountId",
    "SubAccountName",
    "Tags",
    "x_Calls",
    "x_InputTokens",
    "x_OutputTokens",
    "x_CacheReadTokens",
    "x_CacheWriteTokens",
    "x_UnpricedCalls",
    "x_EstimatedCalls",
)

HIGH_CARDINALITY_KEYS: Final = (USER_ID, SESSION_ID)
"""Not tags unless named: as on metric attributes, a user's or session's id would make a group (a
row) per user or session, and put the ids in finance's files."""
_DAY: Final = 86400
GroupKey = tuple[int, str, str, str, tuple[tuple[str, str], ...]]


class Group:
    __slots__ = ("cache_read", "cache_write", "calls", "cost", "estimated", "input", "output", "unpriced")

    def __init__(self) -> None:
        self.calls = self.input = self.output = self.cache_read = self.cache_write = 0
        self.unpriced = self.estimated = 0
        self.cost = Decimal(0)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _month(day: datetime) -> tuple[datetime, datetime]:
    start = day.replace(day=1)
    end = (start + timedelta(days=32)).replace(day=1)
    return start, end


def tags(attributes: Mapping[str, str], keys: Sequence[str] | None) -> tuple[tuple[str, str], ...]:
    """The attribution entries named in `keys`; by default (None) all but `HIGH_CARDINALITY_KEYS`."""
    if keys is None:
        return tuple(sorted(item for item in attributes.items() if item[0] not in HIGH_CARDINALITY_KEYS))
    return tuple(sorted((key, attributes[key]) for key in keys if key in attributes))


def group(records: Iterable[SpendRecord], *, tag_keys: Sequence[str] | None = None) -> dict[GroupKey, Group]:
    """The records summed per day x provider x model x operation x attribution (`tag_keys` only, if
    given)."""
    groups: dict[GroupKey, Group] = {}
    for record in records:
        key = (
            int(record.start // _DAY),
            record.provider,
            record.request_model,
            record.operation,
            tags(record.attributes, tag_keys),
        )
        totals = groups.get(key)
        if totals is None:
            totals = groups[key] = Group()
        totals.calls += 1
        totals.input += record.input_tokens
        totals.output += record.output_tokens
        totals.cache_read += record.cache_read_tokens
        totals.cache_write += record.cache_write_tokens
        if record.cost_usd is None:
            totals.unpriced += 1
        else:
            totals.cost += record.cost_usd
        if record.estimated:
            totals.estimated += 1
    return groups


def rows(
    records: Iterable[SpendRecord], *, tag_keys: Sequence[str] | None = None
) -> Iterator[dict[str, Any]]:
    """FOCUS rows, by day, then provider, model, operation and tags."""
    return rows_of(group(records, tag_keys=tag_keys))


def rows_of(groups: Mapping[GroupKey, Group]) -> Iterator[dict[str, Any]]:
    for key, totals in sorted(groups.items(), key=lambda item: item[0]):
        day_number, provider, model, operation, tags = key
        day = datetime.fromtimestamp(day_number * _DAY, timezone.utc)
        period_start, period_end = _month(day)
        tokens = totals.input + totals.output + totals.cache_read + totals.cache_write
        cost = totals.cost
        tag_map = dict(tags)
        project = tag_map.get(TOKENBUDGET_PROJECT)
        yield {
            "BilledCost": cost,
            "BillingAccountId": provider,
            "BillingAccountName": provider,
            "BillingCurrency": CURRENCY,
            "BillingPeriodEnd": _iso(period_end),
            "BillingPeriodStart": _iso(period_start),
            "ChargeCategory": "Usage",
            "ChargeClass": None,
            "ChargeDescription": f"{model} {operation}: {tokens} tokens in {totals.calls} calls",
            "ChargeFrequency": "Usage-Based",
            "ChargePeriodEnd": _iso(day + timedelta(days=1)),
            "ChargePeriodStart": _iso(day),
            "CommitmentDiscountCategory": None,
            "CommitmentDiscountId": None,
            "CommitmentDiscountName": None,
            "CommitmentDiscountStatus": None,
            "CommitmentDiscountType": None,
            "ConsumedQuantity": Decimal(tokens),
            "ConsumedUnit": TOKEN_UNIT,
            "ContractedCost": cost,
            "ContractedUnitPrice": None,
            "EffectiveCost": cost,
            "InvoiceIssuer": provider,
            "ListCost": cost,
            # Input, output and cache tokens have different prices: a row has no single unit price.
            "ListUnitPrice": None,
            "PricingCategory": "Standard",
            "PricingQuantity": Decimal(tokens),
            "PricingUnit": TOKEN_UNIT,
            "Provider": provider,
            "Publisher": provider,
            "RegionId": None,
            "RegionName": None,
            "ResourceId": None,
            "ResourceName": None,
            "ResourceType": None,
            "ServiceCategory": SERVICE_CATEGORY,
            "ServiceName": f"{provider} {operation}",
            "SkuId": f"{provider}/{model}",
            # The model's list price per token kind at the provider (the ledger keeps its version).
            "SkuPriceId": f"{provider}/{model}",
            "SubAccountId": project,
            "SubAccountName": project,
            "Tags": json.dumps(tag_map, sort_keys=True, separators=(",", ":")),
            "x_Calls": totals.calls,
            "x_InputTokens": totals.input,
            "x_OutputTokens": totals.output,
            "x_CacheReadTokens": totals.cache_read,
            "x_CacheWriteTokens": totals.cache_write,
            "x_UnpricedCalls": totals.unpriced,
            "x_EstimatedCalls": totals.estimated,
        }
