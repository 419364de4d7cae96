"""Export: the whole inventory as YAML (canonical) or CSV, byte-stable."""

from __future__ import annotations

import csv
import functools
import io
import re
from collections.abc import Iterable
from typing import Any

import yaml

from resourcemonitor.inventory.io.columns import (
    _RESOLVER,
    _STR_TAG,
    COLUMNS,
    CSV_COLUMNS,
    MAINTENANCE_KEYS,
    SNMP_COLUMNS,
    Column,
    Format,
    _device_field,
    number,
)
from resourcemonitor.inventory.io.maintenance import export_rows
from resourcemonitor.inventory.io.plan import inventory_rows
from resourcemonitor.inventory.models import CheckMethod, Site

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


@functools.lru_cache(maxsize=4096)
def _yaml_float(value: float) -> str:
    # Cached: the same few floats (99.9, 0.5) recur on every device, and a safe_dump
    # each took half of a 10,000-device export.
    return str(yaml.safe_dump(value)).split("\n", 1)[0]


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
            return _yaml_float(value)
    return str(value)


def _flow(pairs: Iterable[tuple[str, Any]]) -> str:
    return "{" + ", ".join(f"{key}: {yaml_scalar(value)}" for key, value in pairs) + "}"


def _yaml_device_lines(row: dict[str, Any]) -> list[str]:
    """``  - name: ...`` and the rest of one device, in the documented order."""
    lines: list[str] = []
    groups: dict[str, list[tuple[str, Any]]] = {}
    snmp = row["check_method"] == CheckMethod.SNMP or any(
        row[name] != default for name, default in _snmp_defaults().items()
    )
    for column in COLUMNS:
        if column.name in {"feed", "external_id"} and not (row["feed"] or row["external_id"]):
            continue  # only feed-owned devices carry them
        if column.name in SNMP_COLUMNS and not snmp:
            continue  # the defaults: an import without the group restores them exactly
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


@functools.cache
def _snmp_defaults() -> dict[str, Any]:
    return {name: _device_field(name).get_default() for name in SNMP_COLUMNS}


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
    windows = export_rows()
    lines.append("maintenance:" if windows else "maintenance: []")
    for window in windows:
        entries = [f"{key}: {yaml_scalar(window[key])}" for key in MAINTENANCE_KEYS]
        lines += [f"  - {entries[0]}", *(f"    {entry}" for entry in entries[1:])]
    return "\n".join(lines) + "\n"
