"""Budgets from the TOML file that OTEL_INSTRUMENTATION_TOKENBUDGET_CONFIG names, keyword arguments that
win over it, and every mistake reported at instrument() time naming where it is, the key and the value,
before anything is patched."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import openai
import pytest
import wrapt

from opentelemetry_instrumentation_tokenbudget import (
    Budget,
    BudgetConfigError,
    BudgetExceededError,
    ConfigError,
    TokenBudgetInstrumentor,
    cost_attributes,
)
from opentelemetry_instrumentation_tokenbudget.budgets.store import Balance
from opentelemetry_instrumentation_tokenbudget.budgets.stores import open_store
from opentelemetry_instrumentation_tokenbudget.testing import FakeProvider
from tests.budget_support import PROMPT, Clock, ask, client_for, ledger
from tests.conftest import Telemetry

ENV = "OTEL_INSTRUMENTATION_TOKENBUDGET_CONFIG"
BUDGET_KEYS = "name, limit_usd, window, timezone, match, group_by, max_groups, action, thresholds"
TOP_LEVEL_KEYS = (
    "store, on_store_error, reservation, max_metric_groups, metric_attribution_keys, baggage_attribution,"
    " baggage_budget_keys, inject_stream_usage, anthropic_sdk_spans, base_url_providers, local_servers,"
    " budgets, prices, ledger, record_error_messages"
)


def _patched() -> bool:
    return isinstance(openai.resources.chat.completions.Completions.__dict__["create"], wrapt.FunctionWrapper)


def _config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> Path:
    path = tmp_path / "tokenbudget.toml"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv(ENV, str(path))
    return path


def _ask_finetune(client: openai.OpenAI) -> Any:
    return client.chat.completions.create(
        model="my-finetune", messages=[{"role": "user", "content": PROMPT}], max_tokens=10
    )


def test_budgets_store_and_prices_from_the_file(
    *, instrument: Any, telemetry: Telemetry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = tmp_path / "spend.db"
    _config(
        tmp_path,
        monkeypatch,
        f"""
store = "sqlite:///{database}"
on_store_error = "closed"
metric_attribution_keys = ["tokenbudget.feature"]

[[budgets]]
name = "per-user"
limit_usd = 0.00005
window = "day"
group_by = ["user.id"]
match = {{ "gen_ai.request.model" = "gpt-4o-mini" }}

[[budgets]]
name = "finetune"
limit_usd = "0.0001"
match = {{ "gen_ai.request.model" = ["my-finetune", "my-finetune-2"] }}
action = "warn"
thresholds = [0.5]

[prices."my-finetune"]
input_mtok = 1
output_mtok = 2
""",
    )
    clock = Clock()
    instrument(clock=clock)
    client = client_for(FakeProvider())

    with cost_attributes(user="u-42", project="acme", feature="chat"):
        ask(client)
        ask(client)
        with pytest.raises(BudgetExceededError) as raised:
            ask(client)
        # Priced from the file: 103 * 1 + 7 * 2 = 117 microdollars, past the warn budget's limit.
        _ask_finetune(client)
        _ask_finetune(client)

    assert raised.value.group == "user.id=u-42"
    store = open_store(f"sqlite:///{database}", clock=clock)
    assert ledger(store, Budget("per-user", 1, "day"), clock.now, "user.id=u-42") == Balance(
        spent=39_300_000, reserved=0
    )
    assert ledger(store, Budget("finetune", 1), clock.now) == Balance(spent=234_000_000, reserved=0)
    store.close()
    costs = [s.attributes.get("gen_ai.usage.cost.amount") for s in telemetry.our_spans()]
    assert costs == [1.965e-05, 1.965e-05, 0.000117, 0.000117]
    # Only the attribution keys the file names go on metrics.
    assert {
        key
        for point in telemetry.metric_points("gen_ai.client.operation.cost")
        for key in point.attributes
        if key.startswith("tokenbudget.")
    } == {"tokenbudget.feature"}


def test_keyword_arguments_win_over_the_file(
    *, instrument: Any, telemetry: Telemetry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _config(
        tmp_path,
        monkeypatch,
        """
store = "sqlite:////nonexistent-directory/spend.db"

[[budgets]]
name = "from-the-file"
limit_usd = 0

[prices."my-finetune"]
input_mtok = 1
output_mtok = 2
""",
    )
    clock = Clock()
    store = open_store("memory", clock=clock)
    budget = Budget("from-the-call", 1)
    instrument(
        clock=clock,
        store=store,
        budgets=[budget],
        prices={"my-finetune-2": {"input_mtok": 3, "output_mtok": 4}},
    )
    client = client_for(FakeProvider())

    _ask_finetune(client)
    client.chat.completions.create(
        model="my-finetune-2", messages=[{"role": "user", "content": PROMPT}], max_tokens=10
    )

    # Both price tables apply: 103 * 1 + 7 * 2 = 117 and 103 * 3 + 7 * 4 = 337 microdollars.
    assert ledger(store, budget, clock.now) == Balance(spent=454_000_000, reserved=0)
    store.close()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[[budgets]]\nname = "daily"\nlimit_usd = -5\n',
            "{path}: [[budgets]] #1: budget 'daily': limit_usd=-5: must be a finite number >= 0",
        ),
        (
            '[[budgets]]\nname = "daily"\nlimit_usd = 5\nwindow = "fortnight"\n',
            "{path}: [[budgets]] #1: budget 'daily': window='fortnight': unknown window 'fortnight'; expected"
            " 'day', 'week', 'month', a duration such as '30m', '1h', '1d' (fixed windows aligned to the"
            " Unix epoch), a timedelta, or None",
        ),
        (
            '[[budgets]]\nname = "a"\nlimit_usd = 1\n'
            '[[budgets]]\nname = "b"\nlimit_usd = 1\naction = "deny"\n',
            "{path}: [[budgets]] #2: budget 'b': action='deny': expected 'block' or 'warn'",
        ),
        (
            '[[budgets]]\nname = "daily"\nlimit_usd = 5\ngroup_by = "user.id"\n',
            "{path}: [[budgets]] #1: budget 'daily': group_by='user.id': expected a list of attribute names,"
            " e.g. ['user.id']",
        ),
        (
            '[[budgets]]\nname = "daily"\nlimit = 5\n',
            "{path}: [[budgets]] #1: unknown key 'limit'; expected some of " + BUDGET_KEYS,
        ),
        ("[[budgets]]\nlimit_usd = 5\n", "{path}: [[budgets]] #1: missing key 'name'"),
        ("budgets = 5\n", "{path}: budgets: expected [[budgets]] tables, got 5"),
        (
            '[[budgets]]\nname = "a"\nlimit_usd = 1\n[[budgets]]\nname = "a"\nlimit_usd = 2\n',
            "{path}: budgets: the name 'a' is used twice",
        ),
        ("budget = 5\n", "{path}: unknown key 'budget'; expected one of " + TOP_LEVEL_KEYS),
        ("store = \n", "{path}: not valid TOML: Invalid value (at line 1, column 9)"),
        (
            'on_store_error = "maybe"\n',
            "{path}: on_store_error='maybe': expected 'open' or 'closed'",
        ),
        (
            'reservation = "max_tokens"\n',
            "{path}: reservation='max_tokens': expected 'expected' or 'strict'",
        ),
        ("max_metric_groups = -1\n", "{path}: max_metric_groups=-1: expected an integer >= 0"),
        (
            'metric_attribution_keys = "user.id"\n',
            "{path}: metric_attribution_keys='user.id': expected a list of attribute names",
        ),
        (
            'baggage_attribution = "yes"\n',
            "{path}: baggage_attribution='yes': expected a list of attribute names",
        ),
        (
            '[prices."my-finetune"]\ninput_mtok = "cheap"\n',
            "{path}: prices['my-finetune'].input_mtok: 'cheap' is not a number",
        ),
        (
            "store = 5\n",
            "{path}: store=5: expected a URL ('memory', 'sqlite:///path.db', 'redis://host:6379/0') or an"
            " object implementing SpendStore",
        ),
        (
            'store = "postgres://db/spend"\n[[budgets]]\nname = "a"\nlimit_usd = 1\n',
            "{path}: store='postgres://db/spend': unknown spend store URL 'postgres://db/spend': expected"
            " 'memory', 'sqlite:///relative.db', 'sqlite:////absolute/path.db', or a redis://, rediss:// or"
            " unix:// URL",
        ),
    ],
)
def test_bad_configuration_files(
    *, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, message: str
) -> None:
    path = _config(tmp_path, monkeypatch, text)
    instrumentor = TokenBudgetInstrumentor()
    with pytest.raises(ConfigError) as raised:
        instrumentor.instrument()
    assert str(raised.value) == message.format(path=path)
    # Nothing was patched, so the application runs as it would without us.
    assert not _patched()


def test_a_missing_configuration_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "absent.toml"
    monkeypatch.setenv(ENV, str(path))
    with pytest.raises(BudgetConfigError) as raised:
        TokenBudgetInstrumentor().instrument()
    assert str(raised.value) == (
        f"{path} (named by OTEL_INSTRUMENTATION_TOKENBUDGET_CONFIG): cannot read it:"
        " No such file or directory"
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"on_store_error": "maybe"}, "instrument(): on_store_error='maybe': expected 'open' or 'closed'"),
        (
            {"budgets": Budget("daily", 5)},
            "instrument(): budgets=Budget('daily', limit_usd=5, window='none', action='block'): expected a"
            " list of Budget",
        ),
        ({"budgets": ["daily"]}, "instrument(): budgets #1='daily': expected a Budget"),
        (
            {"budgets": [{"name": "daily", "limit_usd": 5, "windw": "day"}]},
            "instrument(): budgets #1: unknown key 'windw'; expected some of " + BUDGET_KEYS,
        ),
        ({"on_threshold": "print"}, "instrument(): on_threshold='print': expected a callable"),
        ({"max_metric_groups": True}, "instrument(): max_metric_groups=True: expected an integer >= 0"),
        (
            {"store": "sqlite:////nonexistent-directory/spend.db", "budgets": [Budget("daily", 5)]},
            "instrument(): store='sqlite:////nonexistent-directory/spend.db': cannot open SQLite spend store"
            " '/nonexistent-directory/spend.db': unable to open database file",
        ),
    ],
)
def test_bad_keyword_arguments(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        TokenBudgetInstrumentor().instrument(**options)
    assert str(raised.value) == message
    assert not _patched()


def test_budgets_may_be_given_as_tables(*, instrument: Any, telemetry: Telemetry) -> None:
    clock = Clock()
    store = open_store("memory", clock=clock)
    instrument(budgets=[{"name": "daily", "limit_usd": "0.00003", "window": "day"}], store=store, clock=clock)
    client = client_for(FakeProvider())
    ask(client)
    with pytest.raises(BudgetExceededError):
        ask(client)
    store.close()


def test_a_misspelt_keyword_argument_is_refused_by_name() -> None:
    with pytest.raises(ConfigError) as raised:
        TokenBudgetInstrumentor().instrument(budget=[Budget("daily", 5)], stor="memory")
    assert str(raised.value) == (
        "instrument(): unknown keyword arguments budget, stor; expected some of tracer_provider,"
        " meter_provider, prices, metric_attribution_keys, inject_stream_usage, anthropic_sdk_spans,"
        " base_url_providers, local_servers, baggage_attribution, baggage_budget_keys, budgets, store,"
        " on_store_error,"
        " reservation, on_threshold, on_forecast, on_anomaly, clock, max_metric_groups, ledger,"
        " record_error_messages"
    )
    assert not _patched()


def test_an_option_of_the_calls_is_not_a_budget_error() -> None:
    with pytest.raises(ConfigError) as raised:
        TokenBudgetInstrumentor().instrument(inject_stream_usage="yes")
    assert not isinstance(raised.value, BudgetConfigError)
    assert str(raised.value) == "instrument(): inject_stream_usage='yes': expected true or false"


def test_a_configuration_file_that_is_not_utf8_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('[[budgets]]\nname = "caf\u00e9"\nlimit_usd = 5\n'.encode("latin-1"))
    monkeypatch.setenv(ENV, str(path))
    with pytest.raises(ConfigError) as raised:
        TokenBudgetInstrumentor().instrument()
    assert str(raised.value) == (
        f"{path} (named by OTEL_INSTRUMENTATION_TOKENBUDGET_CONFIG): not UTF-8 text (byte 0xe9 at"
        " offset 23); TOML files are UTF-8"
    )
    assert not _patched()


def test_a_second_instrument_with_other_options_says_they_are_ignored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    instrumentor = TokenBudgetInstrumentor()
    instrumentor.instrument(budgets=[Budget("daily", 5)])
    try:
        with caplog.at_level(logging.WARNING):
            instrumentor.instrument(budgets=[Budget("daily", 5)])
            instrumentor.instrument(budgets=[Budget("daily", 1)], store="sqlite:///x.db")
    finally:
        instrumentor.uninstrument()
    assert [r.getMessage() for r in caplog.records] == [
        "tokenbudget: instrument() was called again with different options (budgets, store); they are"
        " ignored and those of the first call stay in force. Call uninstrument() first to change them."
    ]
