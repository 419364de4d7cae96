"""Parsing: bytes -> records, no database (YAML and CSV)."""

from __future__ import annotations

import contextlib
import csv
import gc
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import PurePath
from typing import Any

import yaml

from resourcemonitor.inventory.io.columns import (
    _MERGE_TAG,
    _NULL_TAG,
    _NULLS,
    _RESOLVER,
    _STR_TAG,
    _YAML_LOADER,
    CSV_COLUMNS,
    FORMATS,
    MAINTENANCE_KEYS,
    MAINTENANCE_LISTS,
    MAX_FILE_BYTES,
    MAX_YAML_DEPTH,
    REQUIRED,
    SITE_KEYS,
    YAML_GROUPS,
    YAML_TOP,
    Column,
    DeviceRecord,
    Format,
    Inventory,
    InventoryFileError,
    MaintenanceRecord,
    Problem,
    SiteRecord,
    _build_device,
    _check_tags,
    _duplicates,
    _Invalid,
    _show,
    plural,
    validate_value,
)
from resourcemonitor.inventory.models import MaintenanceWindow, Recurrence, Site

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
    windows: list[MaintenanceRecord] | None = None
    with _gc_paused():
        if format == "yaml":
            sites, devices, windows = _parse_yaml(text, problems)
        else:
            sites, devices = [], _parse_csv(text, problems)
    problems += _duplicates(devices, sites)
    return Inventory(
        sites=sites,
        devices=[device for device in devices if device.ok],
        problems=problems,
        rejected={str(d.values["name"]) for d in devices if not d.ok and "name" in d.values},
        maintenance=windows,
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


def _parse_yaml(
    text: str, problems: list[Problem]
) -> tuple[list[SiteRecord], list[DeviceRecord], list[MaintenanceRecord] | None]:
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
        if key not in {"sites", "devices", "maintenance"} and not key.startswith("x-"):
            message = f"unknown key {key!r} (expected sites, devices, maintenance)"
            problems.append(Problem(message, _line(key_node)))
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
    windows = None
    if "maintenance" in top:
        windows = [
            window
            for node in _sequence(top["maintenance"], "'maintenance'", problems)
            if (window := _yaml_window(node, problems)) is not None
        ]
    return sites, devices, windows


def _yaml_window(node: yaml.Node, problems: list[Problem]) -> MaintenanceRecord | None:
    """One maintenance window, or None (with its problems noted)."""
    entries = _mapping(node, "a maintenance window", problems)
    if entries is None:
        return None
    count = len(problems)
    values: dict[str, Any] = {"reason": "", "recurrence": "", "until": None}
    values |= {key: () for key in MAINTENANCE_LISTS}
    lines: dict[str, int] = {}
    for key, (key_node, value_node) in entries.items():
        if key not in MAINTENANCE_KEYS:
            expected = ", ".join(MAINTENANCE_KEYS)
            message = f"unknown key {key!r} in a maintenance window (expected one of: {expected})"
            problems.append(Problem(message, _line(key_node)))
            continue
        lines[key] = _line(value_node)
        try:
            values[key] = _window_value(key, value_node)
        except _Invalid as exc:
            problems.append(Problem(str(exc), _line(value_node), key))
    for key in ("name", "starts_at", "ends_at"):
        if values.get(key) is None and key not in {p.field for p in problems[count:]}:
            problems.append(Problem("is required", _line(node), key))
    if len(problems) > count:
        return None
    return MaintenanceRecord(line=_line(node), values=values, lines=lines)


def _window_value(key: str, node: yaml.Node) -> object:
    if key in MAINTENANCE_LISTS:
        if isinstance(node, yaml.ScalarNode) and node.tag == _NULL_TAG:
            return ()
        if not isinstance(node, yaml.SequenceNode):
            raise _Invalid("must be a list, like [a, b]")
        items = [item for item in (_text(item) for item in node.value) if item]
        if len(items) != len(node.value):
            raise _Invalid("names must not be empty")
        if key == "tags":
            return _check_tags(items)
        if key == "sites":
            for item in items:
                validate_value(Site._meta.get_field("name"), item)
        return tuple(sorted(set(items)))
    text = _text(node)
    if key in {"starts_at", "ends_at", "until"}:
        return None if text is None else parse_utc(text)
    if key == "recurrence":
        allowed = [value for value in Recurrence.values if value]
        if text in {None, "", "once"}:
            return ""
        if text not in allowed:
            raise _Invalid(f"unknown recurrence {_show(text)} (expected once, daily or weekly)")
        return text
    validate_value(MaintenanceWindow._meta.get_field(key), text)  # type: ignore[arg-type]
    return text or ""


def parse_utc(text: str) -> datetime:
    """An ISO 8601 time with its zone (``2026-11-28T02:00:00Z``), in UTC."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise _Invalid(f"not an ISO 8601 time (got {_show(text)})") from None
    if value.tzinfo is None:
        raise _Invalid(f"needs a time zone, like 2026-11-28T02:00:00Z (got {_show(text)})")
    return value.astimezone(UTC)


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
