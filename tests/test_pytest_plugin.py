"""The pytest plugin, run by pytester in a fresh interpreter on tests that call the real OpenAI SDK
against the fake provider: costs per test in the summary, the session cap, the max_cost marker, and
nothing at all when none of them is asked for.

Each call costs 19.65 microdollars and is estimated at 21 before sending (see budget_support).
"""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

pytest_plugins = ["pytester"]

CALLS = """
import httpx2
import openai
import pytest

from opentelemetry_instrumentation_tokenbudget.testing import FakeProvider

provider = FakeProvider()
client = openai.OpenAI(
    api_key="test",
    base_url="https://api.openai.com/v1",
    http_client=httpx2.Client(transport=provider.transport()),
    max_retries=0,
)


def ask():
    client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "x" * 400}], max_tokens=10
    )


def test_two_calls():
    ask()
    ask()


def test_one_call():
    ask()


def test_no_call():
    pass


@pytest.mark.max_cost(0.00005)
def test_capped():
    for _ in range(3):  # 2 * 19.65 + 21 > 50: the third is refused
        ask()


def test_requests_that_reached_the_provider():
    print("REQUESTS", len(provider.requests))
"""


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    pytester.makepyfile(test_calls=CALLS)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-s", *args)


def test_the_entry_point_names_the_plugin() -> None:
    (entry,) = [entry for entry in entry_points(group="pytest11") if entry.name == "tokenbudget"]
    assert entry.value == "opentelemetry_instrumentation_tokenbudget.pytest_plugin"


def test_the_summary_lists_the_cost_of_each_test(pytester: pytest.Pytester) -> None:
    result = _run(pytester, "--tokenbudget", "--tokenbudget-max-cost", "0.01")
    result.assert_outcomes(passed=4, failed=1)
    result.stdout.fnmatch_lines(
        ["tokenbudget: the session's LLM calls cost $0.00009825, within --tokenbudget-max-cost $0.01"]
    )
    (start,) = [i for i, line in enumerate(result.outlines) if "tokenbudget: LLM cost per test" in line]
    assert result.outlines[start + 1 : start + 5] == [
        "$0.0000393      test_calls.py::test_capped",
        "$0.0000393      test_calls.py::test_two_calls",
        "$0.00001965     test_calls.py::test_one_call",
        "total $0.00009825 in 3 tests (2 without priced calls)",
    ]
    result.stdout.fnmatch_lines(["*REQUESTS 5"])
    result.stdout.fnmatch_lines(
        [
            "E *.SpendLimitExceededError: spend_limit 'max_cost of test_calls.py::test_capped' refused the"
            " call before sending it: spent in the block $0.0000393 *"
        ]
    )


def test_the_session_cap_refuses_the_call_that_would_pass_it(pytester: pytest.Pytester) -> None:
    # 19.65 + 21 <= 50, 19.65 * 2 + 21 > 50: test_two_calls makes two, test_one_call is refused.
    result = _run(pytester, "--tokenbudget-max-cost", "0.00005", "-k", "not capped")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*REQUESTS 2"])
    result.stdout.fnmatch_lines(
        [
            "*spend_limit 'pytest session' refused the call before sending it*",
            "tokenbudget: the session's LLM calls cost $0.0000393, within --tokenbudget-max-cost $0.00005",
        ]
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_a_bad_cap_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = _run(pytester, "--tokenbudget-max-cost", "lots")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --tokenbudget-max-cost='lots': expected a number of USD"])


def test_unused_the_plugin_loads_nothing_and_patches_nothing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_inert="""
import sys

from opentelemetry_instrumentation_tokenbudget import TokenBudgetInstrumentor


def test_inert(request):
    assert request.config.pluginmanager.has_plugin("tokenbudget")
    assert not request.config.pluginmanager.has_plugin("tokenbudget-costs")
    assert not TokenBudgetInstrumentor().is_instrumented_by_opentelemetry
    loaded = [m for m in sys.modules if ".budgets" in m or m.startswith(("genai_prices", "openai"))]
    assert loaded == []
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
