"""`ChargeBook`: the charges a call is made, kept per budget, group and window."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

import pytest

from opentelemetry_instrumentation_tokenbudget import Budget
from opentelemetry_instrumentation_tokenbudget.budgets import charges as charges_module
from opentelemetry_instrumentation_tokenbudget.budgets.charges import Charge, ChargeBook, charges_for

NOON = datetime(2026, 6, 1, 12, tzinfo=timezone.utc).timestamp()
BUDGETS = [
    Budget("daily", 5, "day"),
    Budget("per-user", 1, "day", group_by=["user.id"], action="warn"),
    Budget("gpt-4o", 2, "1h", match={"gen_ai.request.model": "gpt-4o"}),
]


def described(charges: Sequence[Charge]) -> list[tuple[object, ...]]:
    return [
        (c.budget.name, c.group, c.window.start, c.window.end, c.key.storage_key, c.key.expires_at)
        for c in charges
    ]


def test_the_same_charges_as_charges_for_made_once_per_group_and_window() -> None:
    book = ChargeBook(BUDGETS)
    attributes = {"user.id": "u-1", "gen_ai.request.model": "gpt-4o-mini"}
    first = book.charges_for(attributes, NOON)
    assert described(first) == described(charges_for(BUDGETS, attributes, NOON))
    assert described(first) == [
        ("daily", "", 1780272000, 1780358400, "daily||1780272000", 1780444800),
        ("per-user", "user.id=u-1", 1780272000, 1780358400, "per-user|user.id=u-1|1780272000", 1780444800),
    ]
    again = book.charges_for(dict(attributes), NOON + 60)
    assert all(a is b for a, b in zip(first, again, strict=True))
    other_user = book.charges_for({"user.id": "u-2"}, NOON)
    assert other_user[0] is first[0]
    assert other_user[1].group == "user.id=u-2"
    next_day = book.charges_for(attributes, NOON + 86_400)
    assert [c.window.start for c in next_day] == [1780358400, 1780358400]
    assert described(book.charges_for({"user.id": "u-1", "gen_ai.request.model": "gpt-4o"}, NOON))[2] == (
        "gpt-4o",
        "",
        1780315200,
        1780318800,
        "gpt-4o||1780315200",
        1780405200,
    )


def test_equal_values_of_other_types_stay_different_groups() -> None:
    book = ChargeBook(BUDGETS)
    groups = [book.charges_for({"user.id": value}, NOON)[1].group for value in (True, 1, 1.0, "1", None)]
    assert groups == ["user.id=true", "user.id=1", "user.id=1.0", "user.id=1", "user.id=<unset>"]


def test_the_book_keeps_the_most_recently_charged_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(charges_module, "MAX_CACHED_CHARGES", 3)
    monkeypatch.setattr(charges_module, "MAX_CACHED_CALLS", 3)
    book = ChargeBook(BUDGETS[1:2])
    (kept,) = book.charges_for({"user.id": "u-0"}, NOON)
    for user in ("u-1", "u-2"):
        book.charges_for({"user.id": user}, NOON)
    assert book.charges_for({"user.id": "u-0"}, NOON)[0] is kept  # used again: the most recent now
    book.charges_for({"user.id": "u-3"}, NOON)  # drops u-1's call, the least recent
    assert book.charges_for({"user.id": "u-0"}, NOON)[0] is kept
    assert list(book._calls) == [("u-2",), ("u-3",), ("u-0",)]
    assert len(book._charges) == 3


def test_a_call_like_one_before_it_gets_its_charges_while_their_windows_last() -> None:
    book = ChargeBook(BUDGETS)
    attributes = {"user.id": "u-1", "gen_ai.request.model": "gpt-4o", "tokenbudget.feature": "a"}
    first = book.charges_for(attributes, NOON)
    assert [c.budget.name for c in first] == ["daily", "per-user", "gpt-4o"]
    # An attribute that no budget reads does not make another call of it.
    assert book.charges_for({**attributes, "tokenbudget.feature": "b"}, NOON + 1) is first
    # The hourly budget's window ends first: past it, the call is charged anew.
    next_hour = book.charges_for(attributes, NOON + 3600)
    assert next_hour is not first
    assert [c.window.start for c in next_hour] == [1780272000, 1780272000, 1780318800]
    assert next_hour[0] is first[0]
    # A clock that goes back before the windows now cached is charged in its own windows.
    assert [c.window.start for c in book.charges_for(attributes, NOON - 86_400)] == [
        1780185600,
        1780185600,
        1780228800,
    ]
    # The value a budget matches on is part of the call.
    other_model = book.charges_for({**attributes, "gen_ai.request.model": "gpt-4o-mini"}, NOON)
    assert [c.budget.name for c in other_model] == ["daily", "per-user"]


def test_calls_with_values_of_other_types_are_charged_anew_each_time() -> None:
    book = ChargeBook(BUDGETS)
    first = book.charges_for({"user.id": 7}, NOON)
    again = book.charges_for({"user.id": 7}, NOON)
    assert again is not first
    assert described(again) == described(first)
    assert book._calls == {}
