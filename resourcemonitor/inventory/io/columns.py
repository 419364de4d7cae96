"""The inventory's columns, defined once for both formats and both directions; the
records a file is read into; values checked by the model's own validators."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from resourcemonitor.inventory.models import (
    CheckMethod,
    Device,
    Feed,
    Kind,
    Site,
    SnmpAuthProtocol,
    SnmpPrivProtocol,
    SnmpVersion,
    Tag,
)

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
    # SNMP (check method snmp). Export leaves the group out while it holds the defaults.
    Column("snmp_version", ("snmp", "version"), "choice"),
    Column("snmp_community", ("snmp", "community"), "text"),
    Column("snmp_v3_user", ("snmp", "v3_user"), "text"),
    Column("snmp_v3_auth_protocol", ("snmp", "v3_auth_protocol"), "choice"),
    Column("snmp_v3_auth_key", ("snmp", "v3_auth_key"), "text"),
    Column("snmp_v3_priv_protocol", ("snmp", "v3_priv_protocol"), "choice"),
    Column("snmp_v3_priv_key", ("snmp", "v3_priv_key"), "text"),
    Column("snmp_v3_context", ("snmp", "v3_context"), "text"),
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
    "snmp_version": ("SNMP version", list(SnmpVersion.values)),
    "snmp_v3_auth_protocol": ("SNMP auth protocol", list(SnmpAuthProtocol.values)),
    "snmp_v3_priv_protocol": ("SNMP privacy protocol", list(SnmpPrivProtocol.values)),
}
SNMP_COLUMNS: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.yaml_path[0] == "snmp")
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
    # None: the file has no 'maintenance' key (CSV never has), so windows are left alone.
    maintenance: list[MaintenanceRecord] | None = None


@dataclass
class MaintenanceRecord:
    """A maintenance window as written in the file's ``maintenance`` section.

    ``values`` holds the model's fields (times aware, in UTC) and, for the relations,
    sorted tuples of names: ``devices``, ``sites``, ``tags`` and ``kinds``.
    """

    line: int
    values: dict[str, Any]
    lines: dict[str, int] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.values["name"])

    def line_of(self, key: str) -> int:
        return self.lines.get(key, self.line)


MAINTENANCE_FIELDS = ("name", "reason", "starts_at", "ends_at", "recurrence", "until")
MAINTENANCE_LISTS = ("devices", "sites", "tags", "kinds")
MAINTENANCE_KEYS = (*MAINTENANCE_FIELDS, *MAINTENANCE_LISTS)


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
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # `version: 3` means "3"
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
