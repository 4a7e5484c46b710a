"""Budget declarations and their windows: every mistake named with its key and value, every window's
start and end to the second, in UTC and across daylight saving time changes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from opentelemetry_instrumentation_tokenbudget import Budget, BudgetConfigError
from opentelemetry_instrumentation_tokenbudget.budgets.windows import NEVER, WindowSpan
from tests.budget_support import NOON_JUNE_1

JUNE_1 = 1_780_272_000  # 2026-06-01T00:00:00Z, a Monday
DAY = 86_400


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"limit_usd": -5}, "budget 'daily': limit_usd=-5: must be a finite number >= 0"),
        ({"limit_usd": "abc"}, "budget 'daily': limit_usd='abc': expected a number of USD"),
        ({"limit_usd": True}, "budget 'daily': limit_usd=True: expected a number of USD"),
        ({"limit_usd": float("nan")}, "budget 'daily': limit_usd=nan: must be a finite number >= 0"),
        (
            {"limit_usd": 1e10},
            "budget 'daily': limit_usd=10000000000.0: must be at most 9223372.036854775807",
        ),
        (
            {"window": "fortnight"},
            "budget 'daily': window='fortnight': unknown window 'fortnight'; expected 'day', 'week', 'month',"
            " a duration such as '30m', '1h', '1d' (fixed windows aligned to the Unix epoch), a timedelta,"
            " or None",
        ),
        (
            {"window": "0h"},
            "budget 'daily': window='0h': unknown window '0h'; expected 'day', 'week', 'month', a duration"
            " such as '30m', '1h', '1d' (fixed windows aligned to the Unix epoch), a timedelta, or None",
        ),
        (
            {"window": timedelta(milliseconds=1500)},
            "budget 'daily': window=datetime.timedelta(seconds=1, microseconds=500000): a timedelta window"
            " must be a whole number of seconds >= 1, not datetime.timedelta(seconds=1, microseconds=500000)",
        ),
        (
            {"window": 3600},
            "budget 'daily': window=3600: window must be a string, a timedelta or None, not int 3600",
        ),
        (
            {"window": "1h", "timezone": "Europe/Paris"},
            "budget 'daily': window='1h': timezone applies to the calendar windows 'day', 'week' and 'month';"
            " window '1h' is a fixed window aligned to the Unix epoch",
        ),
        (
            {"window": "day", "timezone": "Mars/Olympus_Mons"},
            "budget 'daily': timezone='Mars/Olympus_Mons': no such IANA time zone",
        ),
        ({"action": "deny"}, "budget 'daily': action='deny': expected 'block' or 'warn'"),
        (
            {"group_by": "user.id"},
            "budget 'daily': group_by='user.id': expected a list of attribute names, e.g. ['user.id']",
        ),
        (
            {"group_by": ["user.id", 3]},
            "budget 'daily': group_by=['user.id', 3]: expected a list of attribute names",
        ),
        (
            {"group_by": ["user.id", "user.id"]},
            "budget 'daily': group_by=['user.id', 'user.id']: names an attribute twice",
        ),
        (
            {"match": "search"},
            "budget 'daily': match='search': expected a mapping of attribute name to value",
        ),
        (
            {"match": {"tokenbudget.feature": None}},
            "budget 'daily': match['tokenbudget.feature']=None: expected a string, bool, int or float,"
            " or a non-empty list of them",
        ),
        (
            {"thresholds": [0.5, 80]},
            "budget 'daily': thresholds: 80 must be a fraction of the limit in (0, 10] (0.8 is 80%)",
        ),
        (
            {"thresholds": 0.8},
            "budget 'daily': thresholds=0.8: expected a list of fractions, e.g. [0.5, 0.8]",
        ),
        ({"thresholds": ["half"]}, "budget 'daily': thresholds: 'half' is not a number"),
    ],
)
def test_invalid_budgets_are_refused_naming_the_key_and_the_value(
    arguments: dict[str, Any], message: str
) -> None:
    options = {"limit_usd": 5, **arguments}
    with pytest.raises(BudgetConfigError) as raised:
        Budget("daily", **options)
    assert str(raised.value) == message


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "budget name='': expected a non-empty string"),
        (None, "budget name=None: expected a non-empty string"),
        ("a|b", "budget name='a|b': must not contain '|'"),
    ],
)
def test_invalid_budget_names(name: Any, message: str) -> None:
    with pytest.raises(BudgetConfigError) as raised:
        Budget(name, 5)
    assert str(raised.value) == message


def test_a_budget_keeps_exact_amounts_and_sorted_thresholds() -> None:
    budget = Budget("b", 0.1, "day", thresholds=(1.0, 0.5, "0.8", 0.5))
    assert budget.limit_usd == Decimal("0.1")
    assert budget.limit == 100_000_000_000
    assert budget.thresholds == (Decimal("0.5"), Decimal("0.8"), Decimal("1.0"))
    assert budget.blocking is True
    assert Budget("w", 1, action="warn").blocking is False
    assert repr(Budget("s", 20, "month", match={"tokenbudget.feature": "search"}, group_by=["user.id"])) == (
        "Budget('s', limit_usd=20, window='month', match={'tokenbudget.feature': ('search',)},"
        " group_by=['user.id'], action='block')"
    )


def test_match_needs_every_key_and_accepts_any_of_a_list() -> None:
    budget = Budget(
        "b", 1, match={"tokenbudget.feature": ["search", "rerank"], "gen_ai.provider.name": "openai"}
    )
    assert budget.matches({"tokenbudget.feature": "rerank", "gen_ai.provider.name": "openai"})
    assert not budget.matches({"tokenbudget.feature": "chat", "gen_ai.provider.name": "openai"})
    assert not budget.matches({"tokenbudget.feature": "search"})
    assert Budget("all", 1).matches({})


def test_groups_name_their_values_and_cannot_be_forged() -> None:
    budget = Budget("b", 1, group_by=["user.id", "tokenbudget.tenant"])
    assert (
        budget.group_of({"user.id": "u-42", "tokenbudget.tenant": "t-9"})
        == "user.id=u-42,tokenbudget.tenant=t-9"
    )
    assert budget.group_of({"tokenbudget.tenant": "t-9"}) == "user.id=<unset>,tokenbudget.tenant=t-9"
    # A value that spells another group, or the unset marker, stays a group of its own.
    assert budget.group_of({"user.id": "a,tokenbudget.tenant=x"}) == (
        "user.id=a%2Ctokenbudget.tenant%3Dx,tokenbudget.tenant=<unset>"
    )
    assert budget.group_of({"user.id": "<unset>", "tokenbudget.tenant": True}) == (
        "user.id=%3Cunset>,tokenbudget.tenant=true"
    )
    assert Budget("global", 1).group_of({"user.id": "u-42"}) == ""


@pytest.mark.parametrize(
    ("window", "timezone_name", "now", "expected"),
    [
        ("day", None, NOON_JUNE_1, WindowSpan(JUNE_1, JUNE_1 + DAY)),
        ("day", None, JUNE_1 + DAY - 1, WindowSpan(JUNE_1, JUNE_1 + DAY)),
        ("day", None, JUNE_1 + DAY, WindowSpan(JUNE_1 + DAY, JUNE_1 + 2 * DAY)),
        ("week", None, NOON_JUNE_1 + 6 * DAY, WindowSpan(JUNE_1, JUNE_1 + 7 * DAY)),
        ("week", None, JUNE_1 + 7 * DAY, WindowSpan(JUNE_1 + 7 * DAY, JUNE_1 + 14 * DAY)),
        ("month", None, NOON_JUNE_1 + 29 * DAY, WindowSpan(JUNE_1, 1_782_864_000)),
        # December rolls over into January of the next year.
        ("month", None, 1_797_336_000, WindowSpan(1_796_083_200, 1_798_761_600)),
        # Paris springs forward on 2026-03-29: that day lasts 23 hours...
        ("day", "Europe/Paris", 1_774_785_600, WindowSpan(1_774_738_800, 1_774_821_600)),
        # ...and falls back on 2026-10-25, a day of 25 hours.
        ("day", "Europe/Paris", 1_792_929_600, WindowSpan(1_792_879_200, 1_792_969_200)),
        ("1h", None, NOON_JUNE_1 + 1800, WindowSpan(int(NOON_JUNE_1), int(NOON_JUNE_1) + 3600)),
        ("1d", None, NOON_JUNE_1, WindowSpan(JUNE_1, JUNE_1 + DAY)),
        # 90 minutes, aligned to the epoch: noon of June 1 is 329_688 * 5400 s after it.
        ("90m", None, NOON_JUNE_1 - 1, WindowSpan(1_780_309_800, 1_780_315_200)),
        (
            timedelta(minutes=30),
            None,
            NOON_JUNE_1 + 1799,
            WindowSpan(int(NOON_JUNE_1), int(NOON_JUNE_1) + 1800),
        ),
        (None, None, NOON_JUNE_1, WindowSpan(0, None)),
    ],
)
def test_windows(window: Any, timezone_name: str | None, now: float, expected: WindowSpan) -> None:
    budget = Budget("b", 1, window, timezone=timezone_name)
    assert budget.window.span_at(now) == expected
    # Asked again within the same window (the cached answer), and from the window's first second.
    assert budget.window.span_at(now) == expected
    assert budget.window.span_at(expected.start) == expected


def test_window_span_times() -> None:
    span = Budget("b", 1, "day").window.span_at(NOON_JUNE_1)
    assert span.starts_at == datetime(2026, 6, 1, tzinfo=timezone.utc)
    assert span.resets_at == datetime(2026, 6, 2, tzinfo=timezone.utc)
    never = Budget("b", 1).window.span_at(NOON_JUNE_1)
    assert never.resets_at is None
    assert int(datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc).timestamp()) == NEVER
