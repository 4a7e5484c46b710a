"""Generate the Python names and the README tables of the cost convention in `semconv/registry/`.

OpenTelemetry Weaver, the conventions' own validator and generator, ships only as release binaries
and a container image, which cannot be installed where this project is built. This script reads the
same registry format (`file_format: definition/2`, as open-telemetry/semantic-conventions-genai
uses it), applies the naming checks that matter for a registry this small, and renders Jinja
templates from `semconv/templates/`:

* `src/opentelemetry_instrumentation_tokenbudget/semconv.py`: the constants and Enum classes that
  the instrumentation imports;
* `tests/semconv_registry.py`: a machine-readable copy of
  the registry (types, enum members, instruments, units, requirement levels) for the live check of
  emitted telemetry in `tests/semconv_live_check.py`;
* the tables of `semconv/README.md`, between `<!-- semconv ID -->` and `<!-- endsemconv -->`, where
  ID is `registry.<namespace>`, an attribute group id, `span.<refinement id>`, `event.<name>`,
  `metric.<name>` or `metric_refinement.<id>`.

Usage:
    python semconv/generate.py           # rewrite the generated files
    python semconv/generate.py --check   # exit 1, naming each stale file, if any would change

Exit status 2 means the registry itself is invalid; every problem found is printed.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import re
import sys
import textwrap
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import jinja2
import yaml

FILE_FORMAT: Final = "definition/2"
MANIFEST: Final = "manifest.yaml"

REGISTRY_DIR: Final = Path("semconv/registry")
TEMPLATES_DIR: Final = Path("semconv/templates")
README: Final = Path("semconv/README.md")
CONSTANTS_MODULE: Final = Path("src/opentelemetry_instrumentation_tokenbudget/semconv.py")
REGISTRY_MODULE: Final = Path("tests/semconv_registry.py")
COMMAND: Final = "python semconv/generate.py"

PRIMITIVE_TYPES: Final = frozenset(
    {"string", "int", "double", "boolean", "string[]", "int[]", "double[]", "boolean[]"}
)
INSTRUMENTS: Final = frozenset({"counter", "updowncounter", "gauge", "histogram"})
VALUE_TYPES: Final = frozenset({"int", "double"})
STABILITIES: Final = frozenset({"development", "alpha", "beta", "release_candidate", "stable"})
LEVELS: Final = ("required", "conditionally_required", "recommended", "opt_in")
TOP_LEVEL_KEYS: Final = frozenset(
    {
        "file_format",
        "attributes",
        "attribute_groups",
        "metrics",
        "events",
        "span_refinements",
        "metric_refinements",
    }
)

# The conventions' tooling accepts lowercase Latin letters, digits, `_` and `.`; a name starts with a
# letter, ends with a letter or digit, and never has two delimiters in a row.
NAME_RE: Final = re.compile(r"^[a-z](?:[a-z0-9]|[._](?=[a-z0-9]))*$")
PY_NAME_RE: Final = re.compile(r"^[A-Z][A-Z0-9_]*$")

# Conditions written in one of these two forms can be checked by a machine (the live check does);
# any other wording is documentation only.
SET_CONDITION_RE: Final = re.compile(r"^If `([a-z0-9_.]+)` is set\.?$")
VALUE_CONDITION_RE: Final = re.compile(r"^If `([a-z0-9_.]+)` is `([^`]+)`\.?$")

_GENAI_REGISTRY: Final = "https://github.com/open-telemetry/semantic-conventions-genai/blob/main/docs/registry/attributes/gen-ai.md"
_CORE_REGISTRY: Final = "https://opentelemetry.io/docs/specs/semconv/registry/attributes/"

# Attributes that signals here refer to but that other registries define (the manifest's
# dependencies, which this script does not download). Only their type and home are needed, for the
# tables; the live check leaves them to the registries that own them.
EXTERNAL_ATTRIBUTES: Final[Mapping[str, tuple[str, str]]] = {
    "gen_ai.operation.name": ("string", _GENAI_REGISTRY),
    "gen_ai.provider.name": ("string", _GENAI_REGISTRY),
    "gen_ai.request.model": ("string", _GENAI_REGISTRY),
    "gen_ai.response.model": ("string", _GENAI_REGISTRY),
    "server.address": ("string", _CORE_REGISTRY + "server/"),
    "server.port": ("int", _CORE_REGISTRY + "server/"),
    "error.type": ("string", _CORE_REGISTRY + "error/"),
    "user.id": ("string", _CORE_REGISTRY + "user/"),
    "session.id": ("string", _CORE_REGISTRY + "session/"),
}


class RegistryError(Exception):
    """The registry breaks a rule; `problems` lists every one found, so they can be fixed at once."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


# --------------------------------------------------------------------------------------------------
# Model


@dataclass(frozen=True)
class Member:
    id: str
    value: str
    brief: str
    note: str
    stability: str


@dataclass(frozen=True)
class Attribute:
    key: str
    type: str  # one of PRIMITIVE_TYPES, or "enum" (string members)
    members: tuple[Member, ...]
    brief: str
    note: str
    examples: tuple[object, ...]
    stability: str

    @property
    def namespace(self) -> str:
        return self.key.rpartition(".")[0]


@dataclass(frozen=True)
class Requirement:
    level: str
    condition: str  # the free text of `conditionally_required: ...` (or `recommended: ...`), or ""
    # The machine-readable form of `condition`: (attribute, value), value None meaning "is set".
    required_when: tuple[str, str | None] | None


@dataclass(frozen=True)
class AttributeUse:
    key: str
    requirement: Requirement
    note: str


@dataclass(frozen=True)
class Group:
    id: str
    visibility: str
    brief: str
    stability: str
    entries: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True)
class Signal:
    """A metric, an event, or a span or metric refinement, with its resolved attributes."""

    kind: str  # "metric" | "event" | "span_refinement" | "metric_refinement"
    id: str  # metric or event name, or refinement id
    brief: str
    note: str
    stability: str
    attributes: tuple[AttributeUse, ...]
    ref: str = ""  # the refined span type or metric name
    instrument: str = ""
    unit: str = ""
    value_type: str = ""
    python_constant: str = ""


@dataclass
class Registry:
    attributes: dict[str, Attribute] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)
    metrics: dict[str, Signal] = field(default_factory=dict)
    events: dict[str, Signal] = field(default_factory=dict)
    span_refinements: dict[str, Signal] = field(default_factory=dict)
    metric_refinements: dict[str, Signal] = field(default_factory=dict)

    def signals(self) -> Iterator[Signal]:
        yield from self.span_refinements.values()
        yield from self.events.values()
        yield from self.metrics.values()
        yield from self.metric_refinements.values()

    def namespaces(self) -> tuple[str, ...]:
        """The outermost namespaces this registry defines attributes in (e.g. `tokenbudget`)."""
        spaces = sorted({attribute.namespace for attribute in self.attributes.values()})
        return tuple(s for s in spaces if not any(s.startswith(o + ".") for o in spaces if o != s))

    def is_ours(self, key: str) -> bool:
        return any(key.startswith(space + ".") for space in self.namespaces())


# --------------------------------------------------------------------------------------------------
# Loading and validation


class _Reader:
    """Turns the YAML documents into the model, collecting problems instead of stopping at the first."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.registry = Registry()
        self._raw_signals: list[tuple[str, Mapping[str, Any], str]] = []

    def problem(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}")

    def text(self, data: Mapping[str, Any], key: str, where: str, *, required: bool = True) -> str:
        value = data.get(key)
        if value is None:
            if required:
                self.problem(where, f"`{key}` is missing")
            return ""
        if not isinstance(value, str):
            self.problem(where, f"`{key}` must be a string")
            return ""
        # Briefs are sentences; one that stops short was most likely cut by an unquoted ` #` in YAML.
        if key == "brief" and not value.rstrip().endswith((".", ")")):
            self.problem(where, f"`brief` must be a sentence ending with a period: {value!r}")
        return value.strip()

    def stability(self, data: Mapping[str, Any], where: str) -> str:
        value = self.text(data, "stability", where)
        if value and value not in STABILITIES:
            self.problem(where, f"unknown stability {value!r}")
        return value

    def name(self, name: str, where: str) -> None:
        if not NAME_RE.match(name):
            self.problem(where, f"{name!r} is not a valid name (lowercase letters, digits, `_`, `.`)")

    def read_file(self, path: Path, label: str) -> None:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(document, dict):
            self.problem(label, "not a mapping")
            return
        if document.get("file_format") != FILE_FORMAT:
            self.problem(label, f"`file_format` must be {FILE_FORMAT!r}")
        for key in sorted(set(document) - TOP_LEVEL_KEYS):
            self.problem(label, f"unsupported section `{key}`")
        for entry in self.entries(document, "attributes", label):
            self.read_attribute(entry, label)
        for entry in self.entries(document, "attribute_groups", label):
            self.read_group(entry, label)
        for kind, section in (
            ("metric", "metrics"),
            ("event", "events"),
            ("span_refinement", "span_refinements"),
            ("metric_refinement", "metric_refinements"),
        ):
            # Signals are resolved after every file is read: they may use groups defined later.
            self._raw_signals.extend((kind, entry, label) for entry in self.entries(document, section, label))

    def entries(self, document: Mapping[str, Any], section: str, label: str) -> list[Mapping[str, Any]]:
        value = document.get(section, [])
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            self.problem(label, f"`{section}` must be a list of mappings")
            return []
        return value

    def read_attribute(self, data: Mapping[str, Any], label: str) -> None:
        key = self.text(data, "key", label)
        where = f"{label}: attribute {key!r}"
        self.name(key, where)
        raw_type = data.get("type")
        members: tuple[Member, ...] = ()
        if isinstance(raw_type, dict):
            members = self.read_members(raw_type, where)
            type_name = "enum"
        elif isinstance(raw_type, str) and raw_type in PRIMITIVE_TYPES:
            type_name = raw_type
        else:
            self.problem(where, f"unsupported type {raw_type!r}")
            type_name = "string"
        examples = data.get("examples", [])
        examples = tuple(examples) if isinstance(examples, list) else (examples,)
        for example in examples:
            if not _example_fits(type_name, example):
                self.problem(where, f"example {example!r} is not a {type_name}")
        if type_name not in ("enum", "boolean") and not examples:
            self.problem(where, "`examples` are missing")
        attribute = Attribute(
            key=key,
            type=type_name,
            members=members,
            brief=self.text(data, "brief", where),
            note=self.text(data, "note", where, required=False),
            examples=examples,
            stability=self.stability(data, where),
        )
        if key in self.registry.attributes:
            self.problem(where, "defined twice")
        self.registry.attributes[key] = attribute

    def read_members(self, raw_type: Mapping[str, Any], where: str) -> tuple[Member, ...]:
        raw_members = raw_type.get("members")
        if not isinstance(raw_members, list) or not raw_members:
            self.problem(where, "an enum needs `members`")
            return ()
        members = []
        for raw in raw_members:
            if not isinstance(raw, dict):
                self.problem(where, "an enum member must be a mapping")
                continue
            member_id = self.text(raw, "id", where)
            value = raw.get("value")
            if not isinstance(value, str):
                self.problem(where, f"member {member_id!r}: only string values are supported")
                value = str(value)
            self.name(member_id, f"{where}: member")
            members.append(
                Member(
                    id=member_id,
                    value=value,
                    brief=self.text(raw, "brief", f"{where}: member {member_id!r}"),
                    note=self.text(raw, "note", where, required=False),
                    stability=self.stability(raw, f"{where}: member {member_id!r}"),
                )
            )
        for what, values in (("id", [m.id for m in members]), ("value", [m.value for m in members])):
            if len(set(values)) != len(values):
                self.problem(where, f"enum member {what}s must be unique")
        return tuple(members)

    def read_group(self, data: Mapping[str, Any], label: str) -> None:
        group_id = self.text(data, "id", label)
        where = f"{label}: group {group_id!r}"
        visibility = self.text(data, "visibility", where)
        if visibility not in ("internal", "public"):
            self.problem(where, "`visibility` must be `internal` or `public`")
        public = visibility == "public"
        entries = data.get("attributes")
        if not isinstance(entries, list) or not entries:
            self.problem(where, "`attributes` must be a non-empty list")
            entries = []
        if group_id in self.registry.groups:
            self.problem(where, "defined twice")
        self.registry.groups[group_id] = Group(
            id=group_id,
            visibility=visibility,
            brief=self.text(data, "brief", where, required=public),
            stability=self.stability(data, where) if public else "",
            entries=tuple(entries),
        )

    def requirement(self, raw: object, where: str) -> Requirement | None:
        """Parse `requirement_level`; None when absent (the default is `recommended`)."""
        if raw is None:
            return None
        if isinstance(raw, str) and raw in ("required", "recommended", "opt_in"):
            return Requirement(raw, "", None)
        if isinstance(raw, dict) and len(raw) == 1:
            ((level, condition),) = raw.items()
            if level in ("conditionally_required", "recommended") and isinstance(condition, str):
                condition = " ".join(condition.split())
                return Requirement(level, condition, _machine_condition(condition))
        self.problem(where, f"invalid requirement_level {raw!r}")
        return None

    def resolve(
        self, entries: Iterable[Mapping[str, Any]], where: str, seen: tuple[str, ...] = ()
    ) -> list[AttributeUse]:
        """Expand `ref_group`s, in order; a later `ref` to the same attribute overrides what it sets."""
        uses: dict[str, AttributeUse] = {}
        for entry in entries:
            if "ref_group" in entry:
                group_id = entry["ref_group"]
                group = self.registry.groups.get(group_id)
                if group is None:
                    self.problem(where, f"unknown group {group_id!r}")
                    continue
                if group_id in seen:
                    self.problem(where, f"groups refer to each other in a cycle: {' -> '.join(seen)}")
                    continue
                for use in self.resolve(group.entries, where, (*seen, group_id)):
                    uses[use.key] = use
                continue
            key = entry.get("ref")
            if not isinstance(key, str):
                self.problem(where, "an attribute entry needs `ref` or `ref_group`")
                continue
            self.check_reference(key, where)
            requirement = self.requirement(entry.get("requirement_level"), f"{where}: {key}")
            note = entry.get("note")
            previous = uses.get(key)
            uses[key] = AttributeUse(
                key=key,
                requirement=requirement
                or (previous.requirement if previous else Requirement("recommended", "", None)),
                note=" ".join(note.split()) if isinstance(note, str) else (previous.note if previous else ""),
            )
        return list(uses.values())

    def check_reference(self, key: str, where: str) -> None:
        if key in self.registry.attributes or key in EXTERNAL_ATTRIBUTES:
            return
        if self.registry.is_ours(key):
            self.problem(where, f"unknown attribute {key!r} in this registry's namespaces")
        else:
            self.problem(where, f"{key!r} is defined elsewhere: add its type to EXTERNAL_ATTRIBUTES")

    def read_signals(self) -> None:
        for kind, data, label in self._raw_signals:
            self.read_signal(kind, data, label)

    def read_signal(self, kind: str, data: Mapping[str, Any], label: str) -> None:
        id_key = "name" if kind in ("metric", "event") else "id"
        signal_id = self.text(data, id_key, label)
        where = f"{label}: {kind} {signal_id!r}"
        self.name(signal_id, where)
        entries = data.get("attributes", [])
        attributes = tuple(self.resolve(entries if isinstance(entries, list) else [], where))
        signal = Signal(
            kind=kind,
            id=signal_id,
            brief=self.text(data, "brief", where),
            note=self.text(data, "note", where, required=False),
            stability=self.stability(data, where),
            attributes=attributes,
        )
        table: dict[str, Signal]
        if kind == "metric":
            signal = self.metric_details(signal, data, where)
            table = self.registry.metrics
        elif kind == "event":
            table = self.registry.events
        else:
            ref = self.text(data, "ref", where)
            signal = dataclasses.replace(signal, ref=ref)
            table = (
                self.registry.span_refinements
                if kind == "span_refinement"
                else self.registry.metric_refinements
            )
        if signal_id in table:
            self.problem(where, "defined twice")
        table[signal_id] = signal
        for use in attributes:
            condition = use.requirement.required_when
            if condition is not None and condition[0] not in {u.key for u in attributes}:
                self.problem(
                    where, f"{use.key}: its condition refers to {condition[0]!r}, not on this signal"
                )

    def metric_details(self, signal: Signal, data: Mapping[str, Any], where: str) -> Signal:
        instrument = self.text(data, "instrument", where)
        if instrument not in INSTRUMENTS:
            self.problem(where, f"unknown instrument {instrument!r}")
        unit = data.get("unit")
        if not isinstance(unit, str) or not unit:
            self.problem(where, "`unit` must be a non-empty string (UCUM, or `{annotation}`)")
            unit = ""
        annotations = data.get("annotations", {})
        code_generation = annotations.get("code_generation", {}) if isinstance(annotations, dict) else {}
        value_type = code_generation.get("metric_value_type") if isinstance(code_generation, dict) else None
        if value_type not in VALUE_TYPES:
            self.problem(where, "annotations.code_generation.metric_value_type must be `int` or `double`")
            value_type = "double"
        python_constant = (
            code_generation.get("python_constant", "") if isinstance(code_generation, dict) else ""
        )
        if python_constant and not PY_NAME_RE.match(str(python_constant)):
            self.problem(where, f"python_constant {python_constant!r} is not an UPPER_CASE name")
        return dataclasses.replace(
            signal,
            instrument=instrument,
            unit=unit,
            value_type=str(value_type),
            python_constant=str(python_constant),
        )


def _example_fits(type_name: str, example: object) -> bool:
    if type_name.endswith("[]"):
        return isinstance(example, list) and all(_example_fits(type_name[:-2], item) for item in example)
    if type_name == "boolean":
        return isinstance(example, bool)
    if type_name == "int":
        return isinstance(example, int) and not isinstance(example, bool)
    if type_name == "double":
        return isinstance(example, (int, float)) and not isinstance(example, bool)
    return isinstance(example, str)


def _machine_condition(condition: str) -> tuple[str, str | None] | None:
    if match := SET_CONDITION_RE.match(condition):
        return (match.group(1), None)
    if match := VALUE_CONDITION_RE.match(condition):
        return (match.group(1), match.group(2))
    return None


def _collisions(names: Iterable[str], what: str) -> Iterator[str]:
    """A name may not be a namespace of another name of the same kind (the conventions' policy)."""
    ordered = sorted(set(names))
    for name in ordered:
        for other in ordered:
            if other.startswith(name + "."):
                yield f"{what} {name!r} is used as a namespace by {what} {other!r}"


def _check_registry(registry: Registry) -> list[str]:
    problems = list(_collisions(registry.attributes, "attribute"))
    problems += _collisions(registry.metrics, "metric")
    problems += _collisions(registry.events, "event")
    # Names of two attributes must not map to one constant (e.g. `a.b_c` and `a_b.c`).
    constants: dict[str, str] = {}
    for key in registry.attributes:
        other = constants.setdefault(attribute_constant(key), key)
        if other != key:
            problems.append(f"attributes {other!r} and {key!r} have the same constant name")
    used = {use.key for signal in registry.signals() for use in signal.attributes}
    used |= {use_key for group in registry.groups.values() for use_key in _group_keys(group)}
    problems += [
        f"attribute {key!r} is defined but no group or signal uses it"
        for key in registry.attributes
        if key not in used
    ]
    for signal in registry.metric_refinements.values():
        base = registry.metrics.get(signal.ref)
        if base is None and registry.is_ours(signal.ref):
            problems.append(f"metric refinement {signal.id!r} refines unknown metric {signal.ref!r}")
    return problems


def _group_keys(group: Group) -> Iterator[str]:
    for entry in group.entries:
        if isinstance(entry.get("ref"), str):
            yield entry["ref"]


def load_registry(directory: Path) -> Registry:
    reader = _Reader()
    files = sorted(p for p in directory.rglob("*.yaml") if p.name != MANIFEST)
    if not files:
        raise RegistryError([f"{directory}: no registry files"])
    for path in files:
        reader.read_file(path, path.relative_to(directory).as_posix())
    reader.read_signals()
    problems = reader.problems + _check_registry(reader.registry)
    if problems:
        raise RegistryError(problems)
    return reader.registry


# --------------------------------------------------------------------------------------------------
# Names of the generated code


def attribute_constant(key: str) -> str:
    return key.upper().replace(".", "_")


def enum_class(key: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[._]", key)) + "Values"


def event_constant(name: str) -> str:
    return attribute_constant(name) + "_EVENT"


def metric_constants(registry: Registry, metric: Signal) -> tuple[str, str]:
    """The metric's constant and its unit's constant.

    The unit constant is `<base>_UNIT`. The metric constant is `<base>`, unless an attribute has
    that constant already (the conventions let an attribute and a metric share a name; Python
    cannot), in which case `_METRIC` is appended. `base` is the metric name in upper case, or the
    `python_constant` annotation where a renamed metric keeps its old constant.
    """
    base = metric.python_constant or attribute_constant(metric.id)
    taken = {attribute_constant(key) for key in registry.attributes}
    return (f"{base}_METRIC" if base in taken else base, f"{base}_UNIT")


# --------------------------------------------------------------------------------------------------
# Rendering


def py_literal(value: object, indent: int = 0) -> str:
    """A Python literal laid out the way `ruff format` leaves it: one item a line, trailing commas.

    Every non-empty container is split over lines, so the magic trailing comma keeps ruff from
    joining them, and the generated module is stable under the formatter whatever its content.
    """
    pad = "    " * (indent + 1)
    end = "    " * indent
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [f"{pad}{py_literal(k)}: {py_literal(v, indent + 1)}," for k, v in value.items()]
        return "{\n" + "\n".join(items) + f"\n{end}}}"
    if isinstance(value, (tuple, list)):
        if not value:
            return "()"
        items = [f"{pad}{py_literal(v, indent + 1)}," for v in value]
        return "(\n" + "\n".join(items) + f"\n{end})"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)
    raise TypeError(f"no literal for {type(value).__name__}")


def py_docstring(text: str, indent: int = 0) -> str:
    """A docstring for a constant, wrapped to stay within the project's line length."""
    body = " ".join(text.split()).replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    width = 100 - 4 * indent
    lines = textwrap.wrap(body, width=width, break_long_words=False, break_on_hyphens=False) or [""]
    pad = "    " * indent
    if len(lines) == 1 and len(lines[0]) + 6 <= width:
        return f'{pad}"""{lines[0]}"""'
    return f'{pad}"""' + lines[0] + "".join(f"\n{pad}{line}" for line in lines[1:]) + f'\n{pad}"""'


def md_cell(text: str) -> str:
    """Table cells hold one line, and a `|` would end the cell."""
    return " ".join(text.split()).replace("|", "\\|")


def md_example(value: object) -> str:
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, list):
        return "`[" + ", ".join(md_example(v).strip("`") for v in value) + "]`"
    return f"`{value}`"


def registry_data(registry: Registry) -> dict[str, object]:
    """What the live check needs, as plain data for `tests/semconv_registry.py`."""

    def uses(signal: Signal) -> dict[str, object]:
        return {
            use.key: {
                "requirement_level": use.requirement.level,
                "required_when": use.requirement.required_when,
            }
            for use in signal.attributes
        }

    return {
        "namespaces": registry.namespaces(),
        "attributes": {
            a.key: {"type": a.type, "members": tuple(m.value for m in a.members), "stability": a.stability}
            for a in registry.attributes.values()
        },
        "metrics": {
            m.id: {
                "instrument": m.instrument,
                "unit": m.unit,
                "value_type": m.value_type,
                "stability": m.stability,
                "attributes": uses(m),
            }
            for m in registry.metrics.values()
        },
        "metric_refinements": {
            r.id: {"ref": r.ref, "attributes": uses(r)} for r in registry.metric_refinements.values()
        },
        "events": {e.id: {"stability": e.stability, "attributes": uses(e)} for e in registry.events.values()},
        "span_refinements": {
            r.id: {"ref": r.ref, "attributes": uses(r)} for r in registry.span_refinements.values()
        },
    }


def make_environment(templates: Path, registry: Registry) -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates),
        # The outputs are Python and Markdown, where HTML escaping would corrupt them; only a
        # template named *.html (there is none) would be escaped.
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=False),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(
        py_literal=py_literal,
        py_docstring=py_docstring,
        md_cell=md_cell,
        md_example=md_example,
        attribute_constant=attribute_constant,
        enum_class=enum_class,
        event_constant=event_constant,
    )
    environment.globals.update(
        command=COMMAND,
        registry=registry,
        external=EXTERNAL_ATTRIBUTES,
        metric_constants=lambda metric: metric_constants(registry, metric),
        level_label=_level_label,
        attribute_type=lambda key: _attribute_type(registry, key),
    )
    return environment


def _level_label(requirement: Requirement) -> str:
    label = {
        "required": "`Required`",
        "conditionally_required": "`Conditionally Required`",
        "recommended": "`Recommended`",
        "opt_in": "`Opt-In`",
    }[requirement.level]
    return f"{label} {requirement.condition}".strip()


def _attribute_type(registry: Registry, key: str) -> str:
    attribute = registry.attributes.get(key)
    if attribute is None:
        return EXTERNAL_ATTRIBUTES[key][0]
    return "string (enum)" if attribute.type == "enum" else attribute.type


def render_snippet(environment: jinja2.Environment, registry: Registry, snippet_id: str) -> str | None:
    """The Markdown for one README marker, or None when the id names nothing in the registry."""
    kind, _, name = snippet_id.partition(".")
    if kind == "registry":
        attributes = [a for a in registry.attributes.values() if a.namespace == name]
        if not attributes:
            return None
        return environment.get_template("markdown/registry.md.j2").render(attributes=attributes)
    if snippet_id in registry.groups:
        group = registry.groups[snippet_id]
        uses = resolve_group(registry, group)
        return environment.get_template("markdown/group.md.j2").render(group=group, uses=uses)
    tables = {
        "span": registry.span_refinements,
        "event": registry.events,
        "metric": registry.metrics,
        "metric_refinement": registry.metric_refinements,
    }
    signal = tables.get(kind, {}).get(name)
    if signal is None:
        return None
    return environment.get_template(f"markdown/{kind}.md.j2").render(signal=signal)


def resolve_group(registry: Registry, group: Group) -> list[AttributeUse]:
    """A group's attributes with its `ref_group`s expanded (the registry is valid by now)."""
    reader = _Reader()
    reader.registry = registry
    return reader.resolve(group.entries, group.id)


MARKER_RE: Final = re.compile(
    r"(<!-- semconv (?P<id>\S+) -->\n)(?P<body>.*?)(<!-- endsemconv -->)", re.DOTALL
)


def render_readme(environment: jinja2.Environment, registry: Registry, text: str) -> str:
    problems: list[str] = []
    documented: set[str] = set()

    def replace(match: re.Match[str]) -> str:
        snippet_id = match.group("id")
        documented.add(snippet_id)
        snippet = render_snippet(environment, registry, snippet_id)
        if snippet is None:
            problems.append(f"{README}: marker {snippet_id!r} names nothing in the registry")
            return match.group(0)
        return match.group(1) + snippet + match.group(4)

    rendered = MARKER_RE.sub(replace, text)
    # A proposal that leaves a name undocumented is incomplete: every namespace, signal and public
    # group must have its table.
    expected = {f"registry.{a.namespace}" for a in registry.attributes.values()}
    expected |= {g.id for g in registry.groups.values() if g.visibility == "public"}
    expected |= {f"span.{s}" for s in registry.span_refinements}
    expected |= {f"event.{s}" for s in registry.events}
    expected |= {f"metric.{s}" for s in registry.metrics}
    expected |= {f"metric_refinement.{s}" for s in registry.metric_refinements}
    problems += [f"{README}: no `<!-- semconv {i} -->` table" for i in sorted(expected - documented)]
    if problems:
        raise RegistryError(problems)
    return rendered


def generate(root: Path) -> dict[Path, str]:
    """Every generated file's path (relative to `root`) and the content it should have."""
    registry = load_registry(root / REGISTRY_DIR)
    environment = make_environment(root / TEMPLATES_DIR, registry)
    constants = environment.get_template("semconv.py.j2").render(
        attributes=list(registry.attributes.values()),
        events=list(registry.events.values()),
        metrics=list(registry.metrics.values()),
    )
    registry_module = environment.get_template("semconv_registry.py.j2").render(data=registry_data(registry))
    readme = render_readme(environment, registry, (root / README).read_text(encoding="utf-8"))
    return {CONSTANTS_MODULE: constants, REGISTRY_MODULE: registry_module, README: readme}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if a generated file is stale")
    parser.add_argument(
        "--root", type=Path, default=Path(__file__).resolve().parent.parent, help="repository root"
    )
    args = parser.parse_args(argv)
    root: Path = args.root
    try:
        outputs = generate(root)
    except RegistryError as error:
        print(f"semconv registry is invalid ({len(error.problems)} problem(s)):", file=sys.stderr)
        for problem in error.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    stale = []
    for path, content in outputs.items():
        target = root / path
        current = target.read_text(encoding="utf-8") if target.exists() else ""
        if current == content:
            continue
        stale.append(path)
        if args.check:
            print(f"stale: {path.as_posix()}")
            diff = difflib.unified_diff(
                current.splitlines(),
                content.splitlines(),
                f"{path} (current)",
                f"{path} (generated)",
                lineterm="",
            )
            for line in list(diff)[:40]:
                print(f"    {line}")
        else:
            target.write_text(content, encoding="utf-8")
            print(f"wrote {path.as_posix()}")
    if args.check and stale:
        print(f"{len(stale)} generated file(s) are stale: run `{COMMAND}`")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
