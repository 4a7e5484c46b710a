"""The pytest plugin (entry point ``pytest11``): what the LLM calls of each test cost, and caps on it.

- ``pytest --tokenbudget``: a section of the terminal summary lists the cost of each test that made
  priced calls, most expensive first, and the session's total.
- ``pytest --tokenbudget-max-cost 0.50``: the whole session may spend USD 0.50; the call that would
  pass it is refused before it is sent (its test fails with `SpendLimitExceededError`), and the
  session fails if the total is above it.
- ``@pytest.mark.max_cost(0.01)``: the calls of this test (setup, body and teardown) may cost USD
  0.01; the call that would pass it is refused before sending, and the test fails if its calls
  cost more all the same (an estimate below the real cost).

All three are `spend_limit` blocks around each test's phases. The plugin is inert unless one of them
is used: until then it imports nothing of this package's budgets, patches nothing. When active, it
calls ``TokenBudgetInstrumentor().instrument()`` unless the instrumentation is already on (a
conftest that instruments at import, with its own options, keeps them), and undoes it at the end.
A call made in a thread that does not copy the test's context is not counted (see `spend_limit`).
With pytest-xdist each worker has its own session total.
"""

from __future__ import annotations

from collections.abc import Generator
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Final

import pytest

from .errors import format_usd

if TYPE_CHECKING:
    from .spend_limit import SpendLimit

_MARKER: Final = "max_cost"
_UNLIMITED: Final = Decimal(1_000_000)
"""The cap of a per-test limit that only measures (`--tokenbudget` without a marker)."""


def _usd(text: str) -> Decimal:
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise pytest.UsageError(f"--tokenbudget-max-cost={text!r}: expected a number of USD") from None
    if not amount.is_finite() or amount < 0:
        raise pytest.UsageError(f"--tokenbudget-max-cost={text!r}: must be a finite number >= 0")
    return amount


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tokenbudget", "LLM cost of the tests (tokenbudget)")
    group.addoption(
        "--tokenbudget",
        action="store_true",
        default=False,
        help="list the LLM cost of each test in the terminal summary",
    )
    group.addoption(
        "--tokenbudget-max-cost",
        metavar="USD",
        type=_usd,
        default=None,
        help="refuse the LLM call that would take the session past USD, and fail the session above it",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{_MARKER}(usd): fail the test if its LLM calls cost more than usd; the call that would pass"
        " it is refused before it is sent (opentelemetry-instrumentation-tokenbudget)",
    )
    if config.getoption("tokenbudget") or config.getoption("tokenbudget_max_cost") is not None:
        config.pluginmanager.register(CostPlugin(config), "tokenbudget-costs")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.pluginmanager.has_plugin("tokenbudget-costs"):
        return
    if any(item.get_closest_marker(_MARKER) is not None for item in items):
        config.pluginmanager.register(CostPlugin(config), "tokenbudget-costs")


class CostPlugin:
    """The active part: registered only when an option or the marker asks for it."""

    def __init__(self, config: pytest.Config) -> None:
        from . import TokenBudgetInstrumentor
        from .spend_limit import spend_limit

        self._config = config
        self._report = bool(config.getoption("tokenbudget"))
        self._max_cost: Decimal | None = config.getoption("tokenbudget_max_cost")
        self._session = spend_limit(
            usd=self._max_cost if self._max_cost is not None else _UNLIMITED, name="pytest session"
        )
        self._tests: dict[str, SpendLimit] = {}
        self._instrumentor = TokenBudgetInstrumentor()
        self._owns_instrumentation = not self._instrumentor.is_instrumented_by_opentelemetry
        if self._owns_instrumentation:
            self._instrumentor.instrument()

    def _limit_of(self, item: pytest.Item) -> SpendLimit:
        limit = self._tests.get(item.nodeid)
        if limit is None:
            from .spend_limit import spend_limit

            marker = item.get_closest_marker(_MARKER)
            cap = _marker_usd(item, marker) if marker is not None else _UNLIMITED
            limit = spend_limit(usd=cap, name=f"max_cost of {item.nodeid}")
            self._tests[item.nodeid] = limit
        return limit

    def _phase(self, item: pytest.Item) -> Generator[None, Any, Any]:
        with self._session, self._limit_of(item):
            return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Generator[None, Any, Any]:
        return (yield from self._phase(item))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, Any, Any]:
        return (yield from self._phase(item))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Generator[None, Any, Any]:
        return (yield from self._phase(item))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        report = yield
        marker = item.get_closest_marker(_MARKER)
        if marker is None or call.when != "call" or not report.passed:
            return report
        limit = self._tests.get(item.nodeid)
        if limit is not None and limit.spent_usd > limit.limit_usd:
            # The estimates let a call through that cost more than they said.
            report.outcome = "failed"
            report.longrepr = (
                f"{item.nodeid}: its LLM calls cost {format_usd(limit.spent_usd)}, more than max_cost"
                f" {format_usd(limit.limit_usd)}"
            )
        return report

    def total(self) -> Decimal:
        return self._session.spent_usd

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self._max_cost is not None and self.total() > self._max_cost and exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
        total = self.total()
        if self._report:
            terminalreporter.write_sep("=", "tokenbudget: LLM cost per test")
            costs = sorted(
                ((limit.spent_usd, nodeid) for nodeid, limit in self._tests.items() if limit.spent_usd),
                key=lambda entry: (-entry[0], entry[1]),
            )
            for cost, nodeid in costs:
                terminalreporter.write_line(f"{format_usd(cost):<15} {nodeid}")
            free = len(self._tests) - len(costs)
            terminalreporter.write_line(
                f"total {format_usd(total)} in {len(costs)} tests ({free} without priced calls)"
            )
        if self._max_cost is not None:
            verdict = "over" if total > self._max_cost else "within"
            terminalreporter.write_line(
                f"tokenbudget: the session's LLM calls cost {format_usd(total)}, {verdict}"
                f" --tokenbudget-max-cost {format_usd(self._max_cost)}",
                red=verdict == "over",
            )

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self._owns_instrumentation:
            self._instrumentor.uninstrument()


def _marker_usd(item: pytest.Item, marker: pytest.Mark) -> Decimal:
    from .budgets.spec import BudgetConfigError

    args = marker.args or tuple(marker.kwargs.values())
    try:
        if len(args) != 1:
            raise BudgetConfigError("expected one amount of USD")
        from .spend_limit import spend_limit

        return spend_limit(usd=args[0]).limit_usd
    except BudgetConfigError as error:
        raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.max_cost{marker.args!r}: {error}") from None
