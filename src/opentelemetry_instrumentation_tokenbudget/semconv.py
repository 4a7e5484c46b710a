"""Names of the cost convention that this project proposes (see `semconv/` at the repository root).

Provisional hand-written copy; to be generated from the registry in `semconv/`.
"""

from enum import Enum
from typing import Final

GEN_AI_USAGE_COST_AMOUNT: Final = "gen_ai.usage.cost.amount"
GEN_AI_USAGE_COST_CURRENCY: Final = "gen_ai.usage.cost.currency"
GEN_AI_USAGE_COST_SOURCE: Final = "gen_ai.usage.cost.source"


class GenAiUsageCostSourceValues(Enum):
    PROVIDER = "provider"
    LOCAL = "local"


TOKENBUDGET_COST_INPUT: Final = "tokenbudget.cost.input"
TOKENBUDGET_COST_CACHE_READ: Final = "tokenbudget.cost.cache_read"
TOKENBUDGET_COST_CACHE_WRITE: Final = "tokenbudget.cost.cache_write"
TOKENBUDGET_COST_OUTPUT: Final = "tokenbudget.cost.output"
TOKENBUDGET_COST_ESTIMATED: Final = "tokenbudget.cost.estimated"
TOKENBUDGET_PRICE_SOURCE: Final = "tokenbudget.price.source"
TOKENBUDGET_PRICE_VERSION: Final = "tokenbudget.price.version"


class TokenbudgetPriceSourceValues(Enum):
    GENAI_PRICES = "genai-prices"
    USER = "user"
    LOCAL_MODEL = "local_model"


TOKENBUDGET_PROJECT: Final = "tokenbudget.project"
TOKENBUDGET_FEATURE: Final = "tokenbudget.feature"
TOKENBUDGET_TENANT: Final = "tokenbudget.tenant"

TOKENBUDGET_BUDGET_NAME: Final = "tokenbudget.budget.name"
TOKENBUDGET_BUDGET_GROUP: Final = "tokenbudget.budget.group"
TOKENBUDGET_BUDGET_ACTION: Final = "tokenbudget.budget.action"
TOKENBUDGET_BUDGET_THRESHOLD: Final = "tokenbudget.budget.threshold"
TOKENBUDGET_BUDGET_SPENT: Final = "tokenbudget.budget.spent"
TOKENBUDGET_BUDGET_LIMIT: Final = "tokenbudget.budget.limit"
TOKENBUDGET_BUDGET_ESTIMATE: Final = "tokenbudget.budget.estimate"


class TokenbudgetBudgetActionValues(Enum):
    BLOCK = "block"
    WARN = "warn"


TOKENBUDGET_BUDGET_THRESHOLD_CROSSED_EVENT: Final = "tokenbudget.budget.threshold_crossed"
TOKENBUDGET_BUDGET_REFUSED_EVENT: Final = "tokenbudget.budget.refused"

GEN_AI_CLIENT_OPERATION_COST: Final = "gen_ai.client.operation.cost"
GEN_AI_CLIENT_OPERATION_COST_UNIT: Final = "{USD}"
TOKENBUDGET_CLIENT_UNPRICED_CALLS: Final = "tokenbudget.client.unpriced_calls"
TOKENBUDGET_CLIENT_UNPRICED_CALLS_UNIT: Final = "{call}"
TOKENBUDGET_BUDGET_SPEND: Final = "tokenbudget.budget.spend"
TOKENBUDGET_BUDGET_SPEND_UNIT: Final = "{USD}"
TOKENBUDGET_BUDGET_LIMIT_METRIC: Final = "tokenbudget.budget.limit"
TOKENBUDGET_BUDGET_LIMIT_UNIT: Final = "{USD}"
TOKENBUDGET_BUDGET_UTILIZATION: Final = "tokenbudget.budget.utilization"
TOKENBUDGET_BUDGET_UTILIZATION_UNIT: Final = "1"
TOKENBUDGET_BUDGET_REFUSALS: Final = "tokenbudget.budget.refusals"
TOKENBUDGET_BUDGET_REFUSALS_UNIT: Final = "{call}"
TOKENBUDGET_BUDGET_THRESHOLD_CROSSINGS: Final = "tokenbudget.budget.threshold_crossings"
TOKENBUDGET_BUDGET_THRESHOLD_CROSSINGS_UNIT: Final = "{crossing}"
