"""Import and export of the inventory: YAML (the canonical format) and CSV (the flat one).

An import runs in three steps, so that the pure part can be fuzzed and nothing of a bad
file is ever written:

1. ``parse_inventory()`` turns bytes into records: syntax, types, choices and each field's
   own model validators. No database.
2. ``plan_import()`` checks the records against the database (parents, dependency cycles,
   feeds, ``Device.full_clean()``) and works out what would change. Reads only.
3. ``apply_import()`` writes the plan. ``import_inventory()`` runs 2 and 3 in one
   transaction.

Every problem carries the line it was found on; all of them are collected before
``InventoryFileError`` is raised, so a user fixes a file in one pass, not one error a run.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import gc
import io
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, Literal

import yaml
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models, transaction
from django.utils import timezone

from resourcemonitor.inventory.models import CheckMethod, Device, Feed, Kind, Site, Tag

Format = Literal["yaml", "csv"]
FORMATS: tuple[Format, ...] = ("yaml", "csv")
ColumnType = Literal["text", "int", "float", "bool", "choice", "ref", "tags"]


# --- the columns, defined once for both formats and both directions ---------------------


@dataclass(frozen=True)
class Column:
    """One device attribute: its CSV column (and model field), where it sits in YAML."""

    name: str
    yaml_path: tuple[str, ...]
    type: ColumnType


COLUMNS: tuple[Column, ...] = (
    Column("name", ("name",), "text"),
    Column("address", ("address",), "text"),
    Column("kind", ("kind",), "choice"),
    Column("site", ("site",), "ref"),
    Column("parent", ("parent",), "ref"),
    Column("tags", ("tags",), "tags"),
    Column("enabled", ("enabled",), "bool"),
    Column("check_method", ("check", "method"), "choice"),
    Column("check_port", ("check", "port"), "int"),
    Column("check_path", ("check", "path"), "text"),
    Column("check_tls", ("check", "tls"), "bool"),
    Column("check_expect_status", ("check", "expect_status"), "int"),
    Column("check_body_match", ("check", "body_match"), "text"),
    Column("check_interval_s", ("check", "interval_s"), "float"),
    Column("check_timeout_s", ("check", "timeout_s"), "float"),
    Column("fail_threshold", ("thresholds", "fail"), "int"),
    Column("recover_threshold", ("thresholds", "recover"), "int"),
    Column("latency_threshold_ms", ("thresholds", "latency_ms"), "float"),
    Column("slo_target", ("slo_target",), "float"),
    # Only feed-owned devices carry these two; the collector keys them by both.
    Column("feed", ("feed",), "ref"),
    Column("external_id", ("external_id",), "text"),
)
CSV_COLUMNS: tuple[str, ...] = tuple(column.name for column in COLUMNS)
# Plain Device fields, as opposed to site/parent/feed (foreign keys by name) and tags.
MODEL_FIELDS: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.type not in {"ref", "tags"})
REQUIRED = ("name", "address")
CHOICES: dict[str, tuple[str, list[str]]] = {
    "kind": ("kind", list(Kind.values)),
    "check_method": ("check method", list(CheckMethod.values)),
}
YAML_TOP = {c.yaml_path[0]: c for c in COLUMNS if len(c.yaml_path) == 1}
YAML_GROUPS: dict[str, dict[str, Column]] = {}
for _column in COLUMNS:
    if len(_column.yaml_path) == 2:
        YAML_GROUPS.setdefault(_column.yaml_path[0], {})[_column.yaml_path[1]] = _column
SITE_KEYS = ("name", "description")

# A 10,000-device YAML file is about 3 MB; anything far bigger is a mistake, not a network.
MAX_FILE_BYTES = 64 * 1024 * 1024
_BOOLEANS = {"true": True, "yes": True, "on": True, "1": True}
_BOOLEANS |= {"false": False, "no": False, "off": False, "0": False}
_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]{1,18}")
_NULL_TAG = "tag:yaml.org,2002:null"
_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"
# The plain scalars YAML 1.1 reads as null (PyYAML's resolver, spelled out).
_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_RESOLVER = yaml.resolver.Resolver()
# libyaml's event parser is ~20x faster than PyYAML's and, like it, iterative.
_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# An inventory nests five levels (file, devices, device, check, tags); merges add one.
MAX_YAML_DEPTH = 32


# --- problems ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an import file, where it is and which field it is about."""

    message: str
    line: int = 0  # 0: the file as a whole
    field: str = ""

    def format(self, source: str) -> str:
        """``FILE:LINE: field 'check_port': must be between 1 and 65535 (got 70000)``."""
        where = f"{source}:{self.line}" if self.line else source
        if self.field:
            return f"{where}: field '{self.field}': {self.message}"
        return f"{where}: {self.message}"


class InventoryFileError(Exception):
    """An import file that cannot be imported, with every problem found in it."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        # Stable sort: problems on one line keep the order they were found in.
        self.problems: list[Problem] = sorted(problems, key=lambda problem: problem.line)
        super().__init__("\n".join(self.lines("<file>")))

    def lines(self, source: str) -> list[str]:
        return [problem.format(source) for problem in self.problems]


class _Invalid(Exception):
    """A bad value; the caller knows the line and the field."""


# --- records -------------------------------------------------------------------------------


@dataclass
class SiteRecord:
    """A site as written in the file's ``sites`` section."""

    name: str
    description: str
    line: int


@dataclass
class DeviceRecord:
    """A device as written in the file.

    ``values`` is keyed by column name; site, parent and feed are names/URLs, tags a
    sorted tuple. Columns the file leaves out hold the model's defaults. ``ok`` is False
    when the device has a problem; then ``values`` lacks the columns that were bad.
    """

    line: int
    values: dict[str, Any]
    lines: dict[str, int] = field(default_factory=dict)
    ok: bool = True

    @property
    def name(self) -> str:
        return str(self.values["name"])

    def line_of(self, column: str) -> int:
        return self.lines.get(column, self.line)


@dataclass
class Inventory:
    """What a file holds, checked field by field.

    ``devices`` are the good ones; ``problems`` says what is wrong with the others, and
    ``plan_import()`` refuses to go on while there are any. ``rejected`` names the devices
    with problems, which still count as known parents: one bad device should not make
    every child of it an "unknown parent" too.
    """

    sites: list[SiteRecord]
    devices: list[DeviceRecord]
    problems: list[Problem] = field(default_factory=list)
    rejected: set[str] = field(default_factory=set)


# --- values: coercion and the model's own validators -----------------------------------


def _show(value: object) -> str:
    """A value as a person would type it, short."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(number(value))
    if isinstance(value, tuple | list):
        return "[" + ", ".join(str(item) for item in value) + "]"
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    return str(value)


def plural(count: int, noun: str) -> str:
    """``1 device``, ``16 devices``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def number(value: float) -> int | float:
    """Whole floats as ints, so ``interval_s: 10`` stays 10 through a round trip."""
    return int(value) if math.isfinite(value) and value.is_integer() else value


def _coerce(column: Column, value: object) -> object:
    """A parsed value (CSV text, or a YAML scalar) in the model field's type."""
    if column.type in {"text", "ref"}:
        return value
    if column.type == "choice":
        noun, allowed = CHOICES[column.name]
        if not isinstance(value, str) or value not in allowed:
            raise _Invalid(f"unknown {noun} {_show(value)} (expected one of: {', '.join(allowed)})")
        return value
    if column.type == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _BOOLEANS:
            return _BOOLEANS[value.strip().lower()]
        raise _Invalid(f"must be true or false (got {_show(value)})")
    if column.type == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and _WHOLE_NUMBER.fullmatch(value.strip()):
            return int(value.strip())
        raise _Invalid(f"must be a whole number (got {_show(value)})")
    # float
    result: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        result = float(value)
    elif isinstance(value, str):
        try:
            result = float(value.strip())
        except ValueError:
            result = None
    if result is None or not math.isfinite(result):
        raise _Invalid(f"must be a number (got {_show(value)})")
    return result


def _limits(model_field: models.Field[Any, Any]) -> tuple[Any, Any]:
    """The tightest bounds among a field's Min/MaxValueValidators (None: unbounded)."""
    lower: Any = None
    upper: Any = None
    for validator in model_field.validators:
        limit = validator.limit_value if hasattr(validator, "limit_value") else None
        limit = limit() if callable(limit) else limit
        if isinstance(validator, MinValueValidator):
            lower = limit if lower is None else max(lower, limit)
        elif isinstance(validator, MaxValueValidator):
            upper = limit if upper is None else min(upper, limit)
    return lower, upper


def validate_value(model_field: models.Field[Any, Any], value: object) -> None:
    """Run a model field's own validators, with messages that say what was given."""
    if value is None:
        if not model_field.null:
            raise _Invalid("must not be empty")
        return
    if value == "" and not model_field.blank:
        raise _Invalid("must not be empty")
    max_length = getattr(model_field, "max_length", None)
    if isinstance(value, str) and max_length and len(value) > max_length:
        raise _Invalid(f"must be at most {max_length} characters (got {len(value)})")
    if isinstance(value, int | float) and not isinstance(value, bool):
        lower, upper = _limits(model_field)
        if (lower is not None and value < lower) or (upper is not None and value > upper):
            if lower is not None and upper is not None:
                bounds = f"between {_show(lower)} and {_show(upper)}"
            else:
                bounds = (
                    f"at least {_show(lower)}" if lower is not None else f"at most {_show(upper)}"
                )
            raise _Invalid(f"must be {bounds} (got {_show(value)})")
    try:
        model_field.run_validators(value)
    except ValidationError as exc:
        raise _Invalid(" ".join(exc.messages)) from None


def _device_field(name: str) -> models.Field[Any, Any]:
    return Device._meta.get_field(name)  # type: ignore[return-value]


def _check_tags(raw: Iterable[str]) -> tuple[str, ...]:
    tag_field: models.Field[Any, Any] = Tag._meta.get_field("name")
    names = sorted({name.strip() for name in raw if name.strip()})
    for name in names:
        try:
            validate_value(tag_field, name)
        except _Invalid as exc:
            raise _Invalid(f"tag {_show(name)}: {exc}") from None
    return tuple(names)


def _build_device(
    raw: dict[str, tuple[object, int]], line: int, problems: list[Problem], *, ok: bool = True
) -> DeviceRecord:
    """A record from the given columns (``raw``: column -> value, line).

    Not given, null or (for numbers, booleans and choices) empty means the model's
    default; an empty text column is the empty string; an empty site/parent/feed is none.
    """
    values: dict[str, Any] = {}
    lines = {name: where for name, (_, where) in raw.items()}
    for column in COLUMNS:
        value, where = raw.get(column.name, (None, line))
        try:
            values[column.name] = _column_value(column, value)
        except _Invalid as exc:
            problems.append(Problem(str(exc), where, column.name))
            ok = False
    return DeviceRecord(line=line, values=values, lines=lines, ok=ok)


# What site, parent and feed name, and so which field's validators their values pass.
_REFERENCES: dict[str, tuple[type[models.Model], str]] = {
    "site": (Site, "name"),
    "parent": (Device, "name"),
    "feed": (Feed, "url"),
}


def _column_value(column: Column, value: object) -> object:
    if column.type == "tags":
        if value is None or value == "":
            return ()
        items = value.split(";") if isinstance(value, str) else value
        return _check_tags(items)  # type: ignore[arg-type]
    if column.type == "ref":
        if value is None or value == "":
            return None
        model, attribute = _REFERENCES[column.name]
        validate_value(model._meta.get_field(attribute), value)  # type: ignore[arg-type]
        return value
    model_field = _device_field(column.name)
    if value is None or (value == "" and column.type != "text"):
        if column.name in REQUIRED:
            raise _Invalid("is required")
        return model_field.get_default()
    value = _coerce(column, value)
    validate_value(model_field, value)
    return value


def _duplicates(devices: list[DeviceRecord], sites: list[SiteRecord]) -> list[Problem]:
    """Names (and feed external ids) used twice; the later copies are marked not ok."""
    problems: list[Problem] = []
    first: dict[str, int] = {}
    for site in sites:
        if site.name in first:
            message = f"duplicate site {_show(site.name)} (first at line {first[site.name]})"
            problems.append(Problem(message, site.line, "name"))
        first.setdefault(site.name, site.line)
    first = {}
    owned: dict[tuple[str, str], int] = {}
    for device in devices:
        name = device.values.get("name")
        if name is not None and name in first:
            message = f"duplicate name {_show(name)} (first at line {first[name]})"
            problems.append(Problem(message, device.line_of("name"), "name"))
            device.ok = False
        if name is not None:
            first.setdefault(name, device.line)
        key = (device.values.get("feed"), device.values.get("external_id"))
        if key[0] is not None and key[1] is not None:
            if key in owned:
                message = f"duplicate external id in feed {key[0]} (first at line {owned[key]})"
                problems.append(Problem(message, device.line_of("external_id"), "external_id"))
                device.ok = False
            owned.setdefault(key, device.line)  # type: ignore[arg-type]
    return problems


# --- parsing: bytes -> records, no database ---------------------------------------------


def guess_format(path: str) -> Format | None:
    """The format a file name's extension says, or None."""
    suffix = PurePath(path).suffix.lower()
    return {".yaml": "yaml", ".yml": "yaml", ".csv": "csv"}.get(suffix)  # type: ignore[return-value]


def parse_inventory(*, data: bytes, format: Format) -> Inventory:
    """Parse and check an import file, without the database.

    A file that cannot be read as an inventory at all (not text, empty, not YAML, no
    CSV header) raises InventoryFileError. Problems with single devices and fields are
    collected in ``Inventory.problems``, so that the database checks can add theirs and
    the user sees every problem at once.
    """
    text = _decode(data)
    problems: list[Problem] = []
    if format not in FORMATS:
        raise InventoryFileError([Problem(f"unknown format {format!r} (expected yaml or csv)")])
    with _gc_paused():
        if format == "yaml":
            sites, devices = _parse_yaml(text, problems)
        else:
            sites, devices = [], _parse_csv(text, problems)
    problems += _duplicates(devices, sites)
    return Inventory(
        sites=sites,
        devices=[device for device in devices if device.ok],
        problems=problems,
        rejected={str(d.values["name"]) for d in devices if not d.ok and "name" in d.values},
    )


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a file's half a million nodes are built.

    Each collection rescans the whole growing tree, which made parsing 10,000 devices
    three times slower. Reference counting still frees everything that is not a cycle;
    the pause is process-wide, but lasts only as long as the parse (seconds at most).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _decode(data: bytes) -> str:
    if len(data) > MAX_FILE_BYTES:
        raise InventoryFileError([Problem(f"too large ({len(data)} bytes)")])
    # NUL never occurs in YAML or CSV text; it is the usual sign of a binary file (and
    # libyaml would take one for the end of the file).
    if b"\x00" in data:
        raise InventoryFileError([Problem("is a binary file, not YAML or CSV")])
    try:
        text = data.decode("utf-8-sig")  # -sig: spreadsheets put a BOM in front
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InventoryFileError([Problem("is not UTF-8 text (a binary file?)", line)]) from None
    if not text.strip():
        raise InventoryFileError([Problem("is empty")])
    return text


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _yaml_syntax_problem(exc: yaml.YAMLError, text: str) -> Problem:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        # "while parsing a block mapping" says little; "expected a single document" a lot.
        context = exc.context if exc.context and exc.context.startswith("expected") else None
        what = " ".join(part for part in (context, exc.problem) if part) or "syntax error"
        return Problem(f"not valid YAML: {what}", mark.line + 1 if mark else 0)
    if isinstance(exc, yaml.reader.ReaderError):
        # PyYAML counts characters, libyaml bytes.
        if _YAML_LOADER is yaml.SafeLoader:
            line = text[: exc.position].count("\n") + 1
        else:
            line = text.encode()[: exc.position].count(b"\n") + 1
        return Problem(f"not valid YAML: {exc.reason}", line)
    return Problem(f"not valid YAML: {str(exc).splitlines()[0] if str(exc) else 'syntax error'}")


def _syntax(message: str, event: Any) -> InventoryFileError:
    return InventoryFileError([Problem(f"not valid YAML: {message}", event.start_mark.line + 1)])


def _scalar_tag(event: Any) -> str | None:
    """A scalar's tag where it is cheap to know; None for a plain scalar, resolved later.

    Resolving every scalar up front costs more than parsing the file; only the numbers
    and booleans of a device need their type, text is taken as written.
    """
    if event.tag not in {None, "!"}:
        return str(event.tag)
    if event.tag == "!" or not event.implicit[0]:
        return _STR_TAG  # quoted
    if event.value in _NULLS:
        return _NULL_TAG
    return _MERGE_TAG if event.value == "<<" else None


def _node(kind: type[yaml.Node], event: Any, tag: str | None, value: Any, style: Any) -> Any:
    # Any: libyaml's marks are not PyYAML's Mark class, and tag None means "resolve later".
    return kind(tag, value, event.start_mark, event.end_mark, style)  # type: ignore[arg-type,call-arg]


def _compose(text: str) -> yaml.Node | None:
    """The YAML node tree (values with their line numbers), built without recursion.

    PyYAML's composers recurse once per nesting level: a few thousand ``[`` make the
    Python one raise RecursionError and crash the C one (a segfault). Building the tree
    from the parser's events with an explicit stack, and refusing anything deeper than
    an inventory can be, bounds both the stack and libyaml's per-level bookkeeping.
    """
    root: yaml.Node | None = None
    open_nodes: list[list[Any]] = []  # [collection node, mapping key waiting for a value]
    anchors: dict[str, yaml.Node] = {}
    documents = 0
    node: yaml.Node
    event: Any  # libyaml's events and marks are not PyYAML's classes
    for event in yaml.parse(text, Loader=_YAML_LOADER):
        if isinstance(event, yaml.DocumentStartEvent):
            documents += 1
            if documents > 1:
                raise _syntax("expected a single document, but found another", event)
            continue
        if isinstance(event, yaml.SequenceStartEvent | yaml.MappingStartEvent):
            if len(open_nodes) >= MAX_YAML_DEPTH:
                raise _syntax(f"nested more than {MAX_YAML_DEPTH} levels deep", event)
            sequence = isinstance(event, yaml.SequenceStartEvent)
            kind = yaml.SequenceNode if sequence else yaml.MappingNode
            node = _node(kind, event, event.tag or "", [], event.flow_style)
            if event.anchor is not None:
                anchors[event.anchor] = node
            open_nodes.append([node, None])
            continue  # joins its parent when it ends
        if isinstance(event, yaml.CollectionEndEvent):
            node = open_nodes.pop()[0]
        elif isinstance(event, yaml.AliasEvent):
            if event.anchor not in anchors:
                raise _syntax(f"found undefined alias {event.anchor!r}", event)
            node = anchors[event.anchor]
        elif isinstance(event, yaml.ScalarEvent):
            node = _node(yaml.ScalarNode, event, _scalar_tag(event), event.value, event.style)
            if event.anchor is not None:
                anchors[event.anchor] = node
        else:
            continue  # stream start and end, document end
        if not open_nodes:
            root = node
            continue
        entry = open_nodes[-1]
        if isinstance(entry[0], yaml.SequenceNode):
            entry[0].value.append(node)
        elif entry[1] is None:
            entry[1] = node
        else:
            entry[0].value.append((entry[1], node))
            entry[1] = None
    return root


def _parse_yaml(text: str, problems: list[Problem]) -> tuple[list[SiteRecord], list[DeviceRecord]]:
    try:
        root = _compose(text)
    except yaml.YAMLError as exc:
        raise InventoryFileError([_yaml_syntax_problem(exc, text)]) from None
    if root is None:
        raise InventoryFileError([Problem("is empty (no YAML document)")])
    if not isinstance(root, yaml.MappingNode):
        message = "not an inventory file: expected a mapping with 'sites' and 'devices'"
        raise InventoryFileError([Problem(message, _line(root))])
    top = _pairs(root, "the file", problems)
    for key, (key_node, _) in top.items():
        # x- keys are free for anchors (&defaults), as in docker compose files.
        if key not in {"sites", "devices"} and not key.startswith("x-"):
            problems.append(
                Problem(f"unknown key {key!r} (expected sites, devices)", _line(key_node))
            )
    if "devices" not in top:
        message = "not an inventory file: no 'devices' list"
        raise InventoryFileError([*problems, Problem(message, _line(root))])
    constructor = yaml.constructor.SafeConstructor()
    sites = [
        site
        for node in _sequence(top.get("sites"), "'sites'", problems)
        if (site := _yaml_site(node, problems)) is not None
    ]
    devices = [
        _yaml_device(node, constructor, problems)
        for node in _sequence(top.get("devices"), "'devices'", problems)
    ]
    return sites, devices


def _pairs(
    node: yaml.MappingNode, what: str, problems: list[Problem]
) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    """A mapping's entries by key; ``<<: *anchor`` merges supply defaults, as in YAML."""
    own: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    merged: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    for key_node, value_node in node.value:
        if key_node.tag == _MERGE_TAG:
            sources = (
                value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            )
            for source in sources:
                if not isinstance(source, yaml.MappingNode):
                    problems.append(Problem("'<<' must merge a mapping", _line(value_node)))
                    continue
                for merged_key, merged_value in source.value:
                    if isinstance(merged_key, yaml.ScalarNode) and merged_key.tag != _MERGE_TAG:
                        merged.setdefault(merged_key.value, (merged_key, merged_value))
            continue
        if not isinstance(key_node, yaml.ScalarNode):
            problems.append(Problem(f"keys in {what} must be text", _line(key_node)))
        elif key_node.value in own:
            problems.append(Problem(f"duplicate key {key_node.value!r}", _line(key_node)))
        else:
            own[key_node.value] = (key_node, value_node)
    return merged | own


def _sequence(
    entry: tuple[yaml.Node, yaml.Node] | None, what: str, problems: list[Problem]
) -> list[yaml.Node]:
    if entry is None:
        return []
    node = entry[1]
    if isinstance(node, yaml.ScalarNode) and node.tag == _NULL_TAG:
        return []
    if not isinstance(node, yaml.SequenceNode):
        problems.append(Problem(f"{what} must be a list", _line(node)))
        return []
    return list(node.value)


def _mapping(
    node: yaml.Node, what: str, problems: list[Problem]
) -> dict[str, tuple[yaml.Node, yaml.Node]] | None:
    if isinstance(node, yaml.ScalarNode) and node.tag == _NULL_TAG:
        return {}
    if not isinstance(node, yaml.MappingNode):
        problems.append(Problem(f"{what} must be a mapping", _line(node)))
        return None
    return _pairs(node, what, problems)


def _yaml_site(node: yaml.Node, problems: list[Problem]) -> SiteRecord | None:
    entries = _mapping(node, "a site", problems)
    if entries is None:
        return None
    values: dict[str, str] = {}
    ok = True
    for key, (key_node, value_node) in entries.items():
        if key not in SITE_KEYS:
            problems.append(Problem(f"unknown key {key!r} in a site", _line(key_node)))
            ok = False
            continue
        try:
            text = _text(value_node)
            validate_value(Site._meta.get_field(key), text)  # type: ignore[arg-type]
            values[key] = text or ""
        except _Invalid as exc:
            problems.append(Problem(str(exc), _line(value_node), key))
            ok = False
    if "name" not in values and ok:
        problems.append(Problem("is required", _line(node), "name"))
        return None
    return SiteRecord(values["name"], values.get("description", ""), _line(node)) if ok else None


def _text(node: yaml.Node) -> str | None:
    """A scalar as written: ``name: 2024-01-01`` is the text, not a date."""
    if not isinstance(node, yaml.ScalarNode):
        raise _Invalid("must be a single value, not a list or mapping")
    return None if node.tag == _NULL_TAG else str(node.value)


def _scalar(
    node: yaml.Node, column: Column, constructor: yaml.constructor.SafeConstructor
) -> object:
    if column.type == "tags":
        if isinstance(node, yaml.SequenceNode):
            items = [_text(item) for item in node.value]
            if any(item is None for item in items):
                raise _Invalid("tags must not be null")
            return items
        if _text(node) is None:
            return None
        raise _Invalid("must be a list, like [core, uplink]")
    text = _text(node)
    assert isinstance(node, yaml.ScalarNode)  # _text() said so
    if text is None or column.type in {"text", "ref"} or node.tag == _STR_TAG:
        # Quoted numbers ("8080") are read as a CSV cell would be.
        return text
    tag = node.tag or _RESOLVER.resolve(yaml.ScalarNode, node.value, (True, False))
    typed = yaml.ScalarNode(tag, node.value, node.start_mark, node.end_mark, node.style)
    try:
        return constructor.construct_object(typed, deep=True)
    except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise _Invalid(f"not a valid value ({first_line})") from None


def _yaml_device(
    node: yaml.Node, constructor: yaml.constructor.SafeConstructor, problems: list[Problem]
) -> DeviceRecord:
    entries = _mapping(node, "a device", problems)
    if entries is None:
        return DeviceRecord(line=_line(node), values={}, ok=False)
    raw: dict[str, tuple[object, int]] = {}
    count = len(problems)
    for key, (key_node, value_node) in entries.items():
        if key in YAML_GROUPS:
            group = _mapping(value_node, repr(key), problems) or {}
            for sub_key, (sub_key_node, sub_value) in group.items():
                column = YAML_GROUPS[key].get(sub_key)
                if column is None:
                    expected = ", ".join(YAML_GROUPS[key])
                    message = f"unknown key {sub_key!r} in '{key}' (expected one of: {expected})"
                    problems.append(Problem(message, _line(sub_key_node)))
                else:
                    _read_value(raw, column, sub_value, constructor, problems)
        elif key in YAML_TOP:
            _read_value(raw, YAML_TOP[key], value_node, constructor, problems)
        else:
            problems.append(Problem(f"unknown key {key!r} in a device", _line(key_node)))
    return _build_device(raw, _line(node), problems, ok=len(problems) == count)


def _read_value(
    raw: dict[str, tuple[object, int]],
    column: Column,
    node: yaml.Node,
    constructor: yaml.constructor.SafeConstructor,
    problems: list[Problem],
) -> None:
    try:
        raw[column.name] = (_scalar(node, column, constructor), _line(node))
    except _Invalid as exc:
        problems.append(Problem(str(exc), _line(node), column.name))


def _parse_csv(text: str, problems: list[Problem]) -> list[DeviceRecord]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    devices: list[DeviceRecord] = []
    end_of_previous = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise InventoryFileError(
                [*problems, Problem(f"not valid CSV: {exc}", reader.line_num)]
            ) from None
        # A quoted cell may span lines: a row starts where the previous one ended.
        line, end_of_previous = end_of_previous + 1, reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if header is None:
            header = _csv_header(row, line)
            continue
        if len(row) != len(header):
            message = f"has {plural(len(row), 'field')}, the header has {len(header)}"
            problems.append(Problem(message, line))
            # Keep its name, if it has one, so that its children still know their parent.
            named = dict(zip(header, row, strict=False))
            values = {"name": named["name"]} if named.get("name") else {}
            devices.append(DeviceRecord(line=line, values=values, ok=False))
            continue
        raw: dict[str, tuple[object, int]] = {
            name: (cell, line) for name, cell in zip(header, row, strict=True)
        }
        devices.append(_build_device(raw, line, problems))
    return devices


def _csv_header(row: list[str], line: int) -> list[str]:
    """The column names, or InventoryFileError: without them no row can be read."""
    header = [cell.strip() for cell in row]
    if not set(header) & set(CSV_COLUMNS):
        message = "not an inventory CSV: the first line must name the columns (name,address,...)"
        raise InventoryFileError([Problem(message, line)])
    problems: list[Problem] = []
    for name in header:
        if name not in CSV_COLUMNS:
            problems.append(Problem(f"unknown column {name!r}", line))
    for name in sorted({name for name in header if header.count(name) > 1}):
        problems.append(Problem(f"duplicate column {name!r}", line))
    for name in REQUIRED:
        if name not in header:
            problems.append(Problem(f"missing column {name!r}", line))
    if problems:
        raise InventoryFileError(problems)
    return header


# --- the database side: plan (reads) and apply (writes) ---------------------------------


def inventory_rows() -> dict[str, dict[str, Any]]:
    """Every device in the database as column values (plus ``pk``), by name.

    Two queries whatever the size; export and the import plan both read this.
    """
    related = {"site": "site__name", "parent": "parent__name", "feed": "feed__url"}
    rows: dict[str, dict[str, Any]] = {}
    by_pk: dict[int, dict[str, Any]] = {}
    for row in Device.objects.values("pk", *MODEL_FIELDS, *related.values()):
        for column, lookup in related.items():
            row[column] = row.pop(lookup)
        row["tags"] = []
        rows[row["name"]] = by_pk[row["pk"]] = row
    # Through the link table, not prefetch_related: no IN list of 10,000 ids.
    through = Device.tags.through.objects.values_list("device_id", "tag__name")
    for device_id, tag_name in through:
        by_pk[device_id]["tags"].append(tag_name)
    for row in rows.values():
        row["tags"] = tuple(sorted(row["tags"]))
    return rows


@dataclass
class DevicePlan:
    """What an import does to one device."""

    record: DeviceRecord
    action: Literal["create", "update", "unchanged"]
    pk: int | None = None
    changes: list[tuple[str, object, object]] = field(default_factory=list)

    def describe(self) -> str:
        """``update lon-core-1: check_port 8080 -> 8081, tags [] -> [core]``."""
        if not self.changes:
            return f"{self.action} {self.record.name}"
        diff = ", ".join(f"{name} {_show(old)} -> {_show(new)}" for name, old, new in self.changes)
        return f"{self.action} {self.record.name}: {diff}"


@dataclass
class ImportPlan:
    """Everything an import would write, worked out before anything is written."""

    devices: list[DevicePlan]
    new_sites: list[SiteRecord]
    changed_sites: list[SiteRecord]
    new_tags: list[str]
    feeds: dict[str, int]
    # Devices of feeds not registered here: the feed creates them once it is added.
    skipped: list[DeviceRecord]

    def count(self, action: str) -> int:
        return sum(1 for device in self.devices if device.action == action)

    def summary(self) -> str:
        """``16 devices (12 created, 4 updated, 0 unchanged)``."""
        return (
            f"{plural(len(self.devices), 'device')} ({self.count('create')} created, "
            f"{self.count('update')} updated, {self.count('unchanged')} unchanged)"
        )

    def describe(self) -> list[str]:
        """One line per change: sites, tags, then devices that are created or updated."""
        lines = [f"create site {site.name}" for site in self.new_sites]
        lines += [f"update site {site.name}: description" for site in self.changed_sites]
        lines += [f"create tag {tag}" for tag in self.new_tags]
        lines += [device.describe() for device in self.devices if device.action != "unchanged"]
        return lines


def plan_import(*, inventory: Inventory) -> ImportPlan:
    """Check parsed records against the database and work out what an import changes.

    Reads only. Raises InventoryFileError with every problem found.
    """
    urls = {d.values["feed"] for d in inventory.devices if d.values["feed"] is not None}
    feeds = dict(Feed.objects.filter(url__in=urls).values_list("url", "pk"))
    records: list[DeviceRecord] = []
    skipped: list[DeviceRecord] = []
    for device in inventory.devices:
        feed = device.values["feed"]
        (records if feed is None or feed in feeds else skipped).append(device)
    existing = inventory_rows()
    problems = [*inventory.problems, *_feed_problems(records, existing, feeds)]
    for record in records:
        row = existing.get(record.name)
        problems += _model_problems(record, row["pk"] if row else None, feeds)
    problems += _parent_problems(records, existing, skipped, inventory.rejected)
    if problems:
        raise InventoryFileError(problems)
    return ImportPlan(
        devices=[_device_plan(record, existing.get(record.name)) for record in records],
        feeds=feeds,
        skipped=skipped,
        **_site_and_tag_plan(inventory.sites, records),
    )


def _device_plan(record: DeviceRecord, row: dict[str, Any] | None) -> DevicePlan:
    if row is None:
        return DevicePlan(record, "create")
    changes = [
        (name, row[name], record.values[name])
        for name in CSV_COLUMNS
        if row[name] != record.values[name]
    ]
    return DevicePlan(record, "update" if changes else "unchanged", row["pk"], changes)


def _site_and_tag_plan(sites: list[SiteRecord], records: list[DeviceRecord]) -> dict[str, Any]:
    existing_sites = dict(Site.objects.values_list("name", "description"))
    wanted = {site.name: site for site in sites}
    for record in records:
        site = record.values["site"]
        if site is not None and site not in wanted:
            wanted[site] = SiteRecord(site, "", record.line_of("site"))
    existing_tags = set(Tag.objects.values_list("name", flat=True))
    tags = {tag for record in records for tag in record.values["tags"]}
    return {
        "new_sites": [site for name, site in sorted(wanted.items()) if name not in existing_sites],
        "changed_sites": [
            site
            for site in sites
            if existing_sites.get(site.name, site.description) != site.description
        ],
        "new_tags": sorted(tags - existing_tags),
    }


def _feed_problems(
    records: list[DeviceRecord], existing: dict[str, dict[str, Any]], feeds: dict[str, int]
) -> list[Problem]:
    """Feed-owned devices stay owned by their feed; the collector keys them by external id."""
    problems: list[Problem] = []
    owner = {
        (row["feed"], row["external_id"]): name for name, row in existing.items() if row["feed"]
    }
    for record in records:
        feed, external_id = record.values["feed"], record.values["external_id"]
        row = existing.get(record.name)
        if feed is None and row is not None and row["feed"] is not None:
            message = (
                f"{record.name!r} belongs to the feed {row['feed']}; add 'feed: {row['feed']}'"
            )
            problems.append(Problem(message, record.line_of("name"), "name"))
        if feed is not None and not external_id:
            problems.append(
                Problem("a feed device needs its external id", record.line, "external_id")
            )
        other = owner.get((feed, external_id)) if feed is not None else None
        if other is not None and other != record.name:
            message = f"the feed {feed} already has external id {external_id!r} as {other!r}"
            problems.append(Problem(message, record.line_of("external_id"), "external_id"))
    return problems


def _model_problems(record: DeviceRecord, pk: int | None, feeds: dict[str, int]) -> list[Problem]:
    """``Device.full_clean()``: the model's own rules (a TCP check needs a port, ...).

    Parent, site and feed are checked by name elsewhere (they may not exist yet), so the
    instance has no parent and the cycle check is the graph walk in ``_parent_problems``.
    """
    values = {name: record.values[name] for name in MODEL_FIELDS}
    device = Device(pk=pk, feed_id=feeds.get(record.values["feed"] or ""), **values)
    try:
        device.full_clean(
            exclude=["site", "parent", "feed", "tags"],
            validate_unique=False,  # upsert by name: a name that exists is an update
            validate_constraints=False,  # (feed, external_id): _feed_problems
        )
    except ValidationError as exc:
        return [
            Problem(message, record.line_of(name), "" if name == NON_FIELD_ERRORS else name)
            for name, messages in exc.message_dict.items()
            for message in messages
        ]
    return []


def _parent_problems(
    records: list[DeviceRecord],
    existing: dict[str, dict[str, Any]],
    skipped: list[DeviceRecord],
    rejected: set[str],
) -> list[Problem]:
    problems: list[Problem] = []
    by_name = {record.name: record for record in records}
    skipped_names = {record.name for record in skipped}
    known = by_name.keys() | existing.keys() | rejected
    for record in records:
        parent = record.values["parent"]
        if parent is not None and parent not in known:
            why = (
                " (its feed is not registered, so it was skipped)"
                if parent in skipped_names
                else ""
            )
            problems.append(
                Problem(f"unknown device {parent!r}{why}", record.line_of("parent"), "parent")
            )
    parent_of = {name: row["parent"] for name, row in existing.items()}
    parent_of |= {name: record.values["parent"] for name, record in by_name.items()}
    for cycle in find_cycles(parent_of, starts=list(by_name)):
        members = [by_name[name] for name in cycle if name in by_name]
        if not members:
            continue  # a cycle already in the database, above a device of the file
        # Report it once, on the first device of the file that takes part in it.
        first = min(members, key=lambda record: record.line)
        at = cycle.index(first.name)
        loop = [*cycle[at:], *cycle[:at], first.name]
        message = f"dependency cycle: {' -> '.join(loop)}"
        problems.append(Problem(message, first.line_of("parent"), "parent"))
    return problems


def find_cycles(parent_of: dict[str, str | None], *, starts: Iterable[str]) -> list[list[str]]:
    """The dependency cycles reachable from ``starts``, each once, child before parent.

    Every device has at most one parent, so each walk is a path that either ends or
    runs into a cycle; marking visited devices keeps the whole search linear.
    """
    ON_PATH, DONE = 1, 2
    state: dict[str, int] = {}
    cycles: list[list[str]] = []
    for start in starts:
        path: list[str] = []
        node: str | None = start
        while node is not None and node not in state:
            state[node] = ON_PATH
            path.append(node)
            node = parent_of.get(node)
        if node is not None and state[node] == ON_PATH:
            cycles.append(path[path.index(node) :])
        for name in path:
            state[name] = DONE
    return cycles


def apply_import(*, plan: ImportPlan) -> None:
    """Write a plan. Run it in the transaction that made the plan (import_inventory)."""
    Site.objects.bulk_create([Site(name=s.name, description=s.description) for s in plan.new_sites])
    for site in plan.changed_sites:
        Site.objects.filter(name=site.name).update(description=site.description)
    Tag.objects.bulk_create([Tag(name=name) for name in plan.new_tags])
    site_pks = dict(Site.objects.values_list("name", "pk"))
    device_pks = dict(Device.objects.values_list("name", "pk"))
    _create_devices(plan, site_pks, device_pks)
    _update_devices(plan, site_pks, device_pks)
    _apply_tags(plan, device_pks)


def _relation_ids(
    record: DeviceRecord,
    site_pks: dict[str, int],
    feeds: dict[str, int],
    device_pks: dict[str, int],
) -> dict[str, Any]:
    site, feed, parent = (record.values[name] for name in ("site", "feed", "parent"))
    return {
        "site_id": site_pks[site] if site is not None else None,
        "feed_id": feeds[feed] if feed is not None else None,
        "parent_id": device_pks[parent] if parent is not None else None,
    }


def _create_devices(plan: ImportPlan, site_pks: dict[str, int], device_pks: dict[str, int]) -> None:
    """Insert new devices a generation at a time, parents first, with their parent set.

    Adds the new devices to ``device_pks``, for the updates and tags that follow.

    A parent may come later in the file than its children; inserting by generation
    (rather than inserting all, then a bulk_update of parents, which is slow) needs
    as many passes as the tree is deep. The plan has no cycles, so every pass inserts.
    """
    waiting = [device.record for device in plan.devices if device.action == "create"]
    while waiting:
        ready = [
            r for r in waiting if r.values["parent"] is None or r.values["parent"] in device_pks
        ]
        assert ready, "plan_import() let a dependency cycle through"
        Device.objects.bulk_create(
            Device(
                **{name: record.values[name] for name in MODEL_FIELDS},
                **_relation_ids(record, site_pks, plan.feeds, device_pks),
            )
            for record in ready
        )
        names = [record.name for record in ready]
        for start in range(0, len(names), 500):  # SQLite caps the variables of a query
            chunk = names[start : start + 500]
            device_pks.update(Device.objects.filter(name__in=chunk).values_list("name", "pk"))
        done = set(names)
        waiting = [record for record in waiting if record.name not in done]


def _update_devices(plan: ImportPlan, site_pks: dict[str, int], device_pks: dict[str, int]) -> None:
    """Write only the changed columns, so a concurrent edit of another field survives.

    Devices that get the same change (a new interval for all, say) share one UPDATE.
    """
    groups: dict[tuple[tuple[str, Any], ...], list[int]] = {}
    for device in plan.devices:
        if device.action != "update" or device.pk is None:
            continue
        changed = {name for name, _, _ in device.changes}
        fields = {name: device.record.values[name] for name in MODEL_FIELDS if name in changed}
        relations = _relation_ids(device.record, site_pks, plan.feeds, device_pks)
        fields |= {key: value for key, value in relations.items() if key[:-3] in changed}
        groups.setdefault(tuple(sorted(fields.items())), []).append(device.pk)
    now = timezone.now()
    for fields_key, pks in groups.items():
        for start in range(0, len(pks), 500):
            chunk = pks[start : start + 500]
            Device.objects.filter(pk__in=chunk).update(updated_at=now, **dict(fields_key))


def _apply_tags(plan: ImportPlan, device_pks: dict[str, int]) -> None:
    retag = [
        device
        for device in plan.devices
        if (device.action == "create" and device.record.values["tags"])
        or any(name == "tags" for name, _, _ in device.changes)
    ]
    if not retag:
        return
    tag_pks = dict(Tag.objects.values_list("name", "pk"))
    through = Device.tags.through
    ids = [device_pks[device.record.name] for device in retag]
    for start in range(0, len(ids), 500):
        through.objects.filter(device_id__in=ids[start : start + 500]).delete()
    links = [
        through(device_id=device_pks[device.record.name], tag_id=tag_pks[tag])
        for device in retag
        for tag in device.record.values["tags"]
    ]
    through.objects.bulk_create(links, batch_size=500)


def import_inventory(*, inventory: Inventory, dry_run: bool = False) -> ImportPlan:
    """Plan and (unless ``dry_run``) apply an import in one transaction: all or nothing."""
    if dry_run:
        return plan_import(inventory=inventory)
    with transaction.atomic():
        plan = plan_import(inventory=inventory)
        apply_import(plan=plan)
    return plan


# --- export ----------------------------------------------------------------------------------

# Text that YAML reads back as the same text when written bare, in block and flow alike:
# no indicators (: , [ ] { } # & * ! | > ' " % @ `), no spaces, not starting with - ? .
_PLAIN = re.compile(r"[A-Za-z0-9_/][A-Za-z0-9_./+-]*")


@functools.lru_cache(maxsize=4096)
def _yaml_text(value: str) -> str:
    """A string as a YAML scalar that reads back as this very string, anywhere.

    Bare when that is safe (and the resolver agrees it is text, not 007, yes or
    2024-01-01), else as PyYAML's emitter quotes it inside a flow list, with newlines
    and other control characters escaped in double quotes, on one line.
    """
    if (
        _PLAIN.fullmatch(value)
        and _RESOLVER.resolve(yaml.ScalarNode, value, (True, False)) == _STR_TAG
    ):
        return value
    printable = value.isprintable()
    text = yaml.safe_dump(
        [value],
        default_flow_style=True,
        allow_unicode=True,
        width=1 << 30,
        default_style=None if printable else '"',
    )
    return text.strip()[1:-1]  # "[...]\n" without the brackets


def yaml_scalar(value: Any) -> str:
    """One exported value as YAML; floats as PyYAML writes them, whole ones as ints."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _yaml_text(value)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(yaml_scalar(item) for item in value) + "]"
    if isinstance(value, float):
        value = number(value)
        if isinstance(value, float):
            return str(yaml.safe_dump(value)).split("\n", 1)[0]
    return str(value)


def _flow(pairs: Iterable[tuple[str, Any]]) -> str:
    return "{" + ", ".join(f"{key}: {yaml_scalar(value)}" for key, value in pairs) + "}"


def _yaml_device_lines(row: dict[str, Any]) -> list[str]:
    """``  - name: ...`` and the rest of one device, in the documented order."""
    lines: list[str] = []
    groups: dict[str, list[tuple[str, Any]]] = {}
    for column in COLUMNS:
        if column.name in {"feed", "external_id"} and not (row["feed"] or row["external_id"]):
            continue  # only feed-owned devices carry them
        if len(column.yaml_path) == 2:
            group, key = column.yaml_path
            if group not in groups:
                groups[group] = []
                lines.append(group)  # placeholder: written once the group is complete
            groups[group].append((key, row[column.name]))
        else:
            lines.append(f"{column.name}: {yaml_scalar(row[column.name])}")
    lines = [f"{line}: {_flow(groups[line])}" if line in groups else line for line in lines]
    return [f"  - {lines[0]}", *(f"    {line}" for line in lines[1:])]


def _csv_cell(column: Column, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if column.type == "tags":
        return ";".join(value)
    return str(number(value)) if isinstance(value, float) else str(value)


def export_inventory(*, format: Format) -> str:
    """The whole inventory as text, sorted by name, so that export -> import -> export is
    byte-identical. Sites with no devices are kept (YAML); unused tags are not.

    The YAML is written line by line, not by yaml.dump: the shape is fixed, and PyYAML's
    emitter takes seconds for 10,000 devices. Every scalar still goes through YAML's rules.
    """
    rows = sorted(inventory_rows().values(), key=lambda row: row["name"])
    if format == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for row in rows:
            writer.writerow([_csv_cell(column, row[column.name]) for column in COLUMNS])
        return out.getvalue()
    sites = Site.objects.order_by("name").values_list("name", "description")
    lines = ["sites:" if sites else "sites: []"]
    lines += [f"  - {_flow([('name', name), ('description', text)])}" for name, text in sites]
    lines.append("devices:" if rows else "devices: []")
    for row in rows:
        lines += _yaml_device_lines(row)
    return "\n".join(lines) + "\n"
