"""`Budget`: what a user declares, checked when it is declared rather than when the first call fails.

A budget applies to the calls whose attributes match all of its `match` entries. The attributes of a
call are its attribution (``cost_attributes(...)``: ``tokenbudget.project``, ``tokenbudget.feature``,
``tokenbudget.tenant``, ``user.id``, ``session.id`` and any extra names) plus
``gen_ai.provider.name``, ``gen_ai.request.model`` and ``gen_ai.operation.name``.

A budget with `group_by` keeps one ledger, with the full limit, per distinct combination of those
attributes' values: ``group_by=["user.id"]`` gives every user their own limit. A call that lacks one of
the attributes is charged to the group ``user.id=<unset>``, shared by all such calls, rather than
escaping the budget: forgetting to set the user must not lift the limit. At most `max_groups` groups
keep their own ledger per window (`group_cap`); later ones share one overflow group, so that a
caller who makes up a new id per request cannot multiply the limit. Group names escape control
characters, so that they can be logged as they are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta, tzinfo
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from typing import Final, Literal, TypeAlias
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from opentelemetry.util.types import AttributeValue

from ..errors import ConfigError
from ..pricing import PICODOLLARS_PER_USD
from .windows import Window, parse_window

Scalar: TypeAlias = str | bool | int | float
MatchValue: TypeAlias = Scalar | Sequence[Scalar]
"""An attribute value to match, or a list of values any of which matches."""

Action: TypeAlias = Literal["block", "warn"]
ACTIONS: Final = ("block", "warn")
DEFAULT_THRESHOLDS: Final = (0.5, 0.8, 1.0)
DEFAULT_MAX_GROUPS: Final = 1000

# The stores hold signed 64-bit picodollars.
MAX_LIMIT_USD: Final = Decimal(2**63 - 1) / PICODOLLARS_PER_USD
UNSET: Final = "<unset>"
_MAX_THRESHOLD: Final = Decimal(10)
# Characters that would make two different groups print the same, or forge a log line; escaped in
# attribute values.
_GROUP_ESCAPES: Final = str.maketrans(
    {
        "%": "%25",
        ",": "%2C",
        "=": "%3D",
        "<": "%3C",
        **{
            chr(code): f"%{code:02X}" if code < 0x100 else f"%u{code:04X}"
            for code in (*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029, *range(0x202A, 0x202F))
        },
        **{chr(code): f"%u{code:04X}" for code in range(0x2066, 0x206A)},
    }
)


class BudgetConfigError(ConfigError):
    """A budget, or the configuration that declares it, is not valid; the message says which value."""


class Budget:
    """A spending limit in USD over a window, for the calls that match it.

    ``Budget("daily", limit_usd=5, window="day")``,
    ``Budget("per-user", 0.5, "day", group_by=["user.id"], action="warn")``,
    ``Budget("search", 20, "month", match={"tokenbudget.feature": "search"}, timezone="Europe/Paris")``.

    - `limit_usd`: a number >= 0 (a float is read as its shortest decimal form: 0.1 is 0.1).
    - `window`: ``None`` (never resets), ``"day"``, ``"week"``, ``"month"`` (calendar windows in
      `timezone`, UTC by default), or a duration ``"30m"``, ``"1h"``, ``"1d"`` or a ``timedelta``:
      fixed windows of that length aligned to the Unix epoch (see `windows`).
    - `action`: ``"block"`` refuses a call before it is sent when settled spend + reservations of
      calls in flight + this call's estimate would pass the limit; ``"warn"`` only counts and reports.
    - `thresholds`: fractions of the limit reported once per window and group when spend crosses
      them (a log warning, a span event, a metric, the ``on_threshold`` callback).
    - `max_groups`: with `group_by`, the groups that keep their own limit per window (1000 by
      default, counted per process); calls of any further group share the group ``<overflow>``,
      under the same limit.
    """

    __slots__ = (
        "_match_items",
        "action",
        "group_by",
        "limit",
        "limit_usd",
        "match",
        "max_groups",
        "name",
        "threshold_levels",
        "thresholds",
        "window",
    )

    name: str
    limit_usd: Decimal
    limit: int
    """The limit in picodollars (rounded down), as the stores compare it."""
    window: Window
    match: Mapping[str, tuple[Scalar, ...]]
    group_by: tuple[str, ...]
    action: Action
    thresholds: tuple[Decimal, ...]
    threshold_levels: tuple[int, ...]
    """The spend in picodollars at which each threshold is reached (rounded up)."""
    max_groups: int

    def __init__(
        self,
        name: str,
        limit_usd: Decimal | int | float | str,
        window: str | timedelta | None = None,
        *,
        match: Mapping[str, MatchValue] | None = None,
        group_by: Sequence[str] = (),
        action: Action = "block",
        thresholds: Sequence[float | int | str | Decimal] = DEFAULT_THRESHOLDS,
        timezone: str | tzinfo | None = None,
        max_groups: int = DEFAULT_MAX_GROUPS,
    ) -> None:
        self.name = _name(name)
        where = f"budget {self.name!r}"
        self.limit_usd = _limit(where, limit_usd)
        self.limit = int((self.limit_usd * PICODOLLARS_PER_USD).to_integral_value(rounding=ROUND_FLOOR))
        zone = _zone(where, timezone)
        try:
            self.window = parse_window(window, zone)
        except ValueError as error:
            raise BudgetConfigError(f"{where}: window={window!r}: {error}") from None
        self.match = _match(where, match)
        self._match_items = tuple(self.match.items())
        self.group_by = _group_by(where, group_by)
        if action not in ACTIONS:
            raise BudgetConfigError(f"{where}: action={action!r}: expected 'block' or 'warn'")
        self.action = action
        if isinstance(max_groups, bool) or not isinstance(max_groups, int) or max_groups < 1:
            raise BudgetConfigError(f"{where}: max_groups={max_groups!r}: expected an integer >= 1")
        self.max_groups = max_groups
        self.thresholds = _thresholds(where, thresholds)
        self.threshold_levels = tuple(
            int((fraction * self.limit).to_integral_value(rounding=ROUND_CEILING))
            for fraction in self.thresholds
        )

    @property
    def blocking(self) -> bool:
        return self.action == "block"

    def matches(self, attributes: Mapping[str, AttributeValue]) -> bool:
        # A loop rather than all() over a generator: most budgets match on nothing or one key, and the
        # generator would cost more than the checks, for every budget of every call.
        for key, accepted in self._match_items:  # noqa: SIM110
            if attributes.get(key) not in accepted:
                return False
        return True

    def group_of(self, attributes: Mapping[str, AttributeValue]) -> str:
        """The group a call with these attributes is charged to: ``"user.id=u-42"`` ("" without group_by)."""
        if not self.group_by:
            return ""
        return ",".join(f"{key}={_group_value(attributes.get(key))}" for key in self.group_by)

    def __repr__(self) -> str:
        options = [f"{self.name!r}", f"limit_usd={self.limit_usd}", f"window={self.window.label!r}"]
        if self.match:
            options.append(f"match={dict(self.match)!r}")
        if self.group_by:
            options.append(f"group_by={list(self.group_by)!r}")
        options.append(f"action={self.action!r}")
        return f"Budget({', '.join(options)})"


def _group_value(value: AttributeValue | None) -> str:
    if value is None:
        return UNSET
    if isinstance(value, str):
        return value.translate(_GROUP_ESCAPES)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).translate(_GROUP_ESCAPES)


def _name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise BudgetConfigError(f"budget name={name!r}: expected a non-empty string")
    if "|" in name:
        # The stores build their keys as "budget|group|window".
        raise BudgetConfigError(f"budget name={name!r}: must not contain '|'")
    return name


def _limit(where: str, value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (Decimal, int, float, str)):
        raise BudgetConfigError(f"{where}: limit_usd={value!r}: expected a number of USD")
    try:
        amount = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        raise BudgetConfigError(f"{where}: limit_usd={value!r}: expected a number of USD") from None
    if not amount.is_finite() or amount < 0:
        raise BudgetConfigError(f"{where}: limit_usd={value!r}: must be a finite number >= 0")
    if amount > MAX_LIMIT_USD:
        raise BudgetConfigError(f"{where}: limit_usd={value!r}: must be at most {MAX_LIMIT_USD}")
    return amount


def _zone(where: str, value: object) -> tzinfo | None:
    if value is None or isinstance(value, tzinfo):
        return value
    if not isinstance(value, str):
        raise BudgetConfigError(f"{where}: timezone={value!r}: expected an IANA name such as 'Europe/Paris'")
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise BudgetConfigError(f"{where}: timezone={value!r}: no such IANA time zone") from None


def _scalar(value: object) -> bool:
    return isinstance(value, (str, bool, int, float))


def _match(where: str, value: object) -> Mapping[str, tuple[Scalar, ...]]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise BudgetConfigError(f"{where}: match={value!r}: expected a mapping of attribute name to value")
    result: dict[str, tuple[Scalar, ...]] = {}
    for key, accepted in value.items():
        if not isinstance(key, str) or not key:
            raise BudgetConfigError(f"{where}: match key {key!r}: expected an attribute name")
        if _scalar(accepted):
            result[key] = (accepted,)
        elif isinstance(accepted, (list, tuple)) and accepted and all(_scalar(item) for item in accepted):
            result[key] = tuple(accepted)
        else:
            raise BudgetConfigError(
                f"{where}: match[{key!r}]={accepted!r}: expected a string, bool, int or float,"
                " or a non-empty list of them"
            )
    return result


def _group_by(where: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        raise BudgetConfigError(
            f"{where}: group_by={value!r}: expected a list of attribute names, e.g. [{value!r}]"
        )
    if not isinstance(value, (list, tuple)) or not all(isinstance(key, str) and key for key in value):
        raise BudgetConfigError(f"{where}: group_by={value!r}: expected a list of attribute names")
    if len(set(value)) != len(value):
        raise BudgetConfigError(f"{where}: group_by={value!r}: names an attribute twice")
    return tuple(value)


def _thresholds(where: str, value: object) -> tuple[Decimal, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise BudgetConfigError(
            f"{where}: thresholds={value!r}: expected a list of fractions, e.g. [0.5, 0.8]"
        )
    result: set[Decimal] = set()
    for item in value:
        try:
            if isinstance(item, bool) or not isinstance(item, (int, float, str, Decimal)):
                raise InvalidOperation
            fraction = Decimal(str(item)) if isinstance(item, float) else Decimal(item)
        except InvalidOperation:
            raise BudgetConfigError(f"{where}: thresholds: {item!r} is not a number") from None
        # Above 10 is almost surely a percentage typed as such (80 for 80%), which would never fire.
        if not fraction.is_finite() or not 0 < fraction <= _MAX_THRESHOLD:
            raise BudgetConfigError(
                f"{where}: thresholds: {item!r} must be a fraction of the limit in (0, 10] (0.8 is 80%)"
            )
        result.add(fraction)
    return tuple(sorted(result))
