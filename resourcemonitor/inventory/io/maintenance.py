"""Maintenance windows in an inventory file: plan, apply and export.

Windows are matched by name (the file's top-level ``maintenance`` list). They are few
(dozens, not thousands), so they are read whole and written one by one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

from resourcemonitor.inventory.io.columns import (
    MAINTENANCE_FIELDS,
    MAINTENANCE_KEYS,
    MaintenanceRecord,
    Problem,
    _show,
)
from resourcemonitor.inventory.models import Device, MaintenanceWindow, Site, Tag


def utc_text(value: datetime | None) -> str | None:
    """``2026-11-28T02:00:00Z``: the form export writes and import reads back."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def window_rows() -> dict[str, list[dict[str, Any]]]:
    """Every window as file values (plus ``pk``), by name; a list, as names may repeat."""
    rows: dict[str, list[dict[str, Any]]] = {}
    windows = MaintenanceWindow.objects.order_by("name", "pk").prefetch_related(
        "devices", "sites", "tags"
    )
    for window in windows:
        row: dict[str, Any] = {name: getattr(window, name) for name in MAINTENANCE_FIELDS}
        row["pk"] = window.pk
        row["reason"] = row["reason"] or ""
        row["recurrence"] = row["recurrence"] or ""
        for name in ("starts_at", "ends_at", "until"):
            row[name] = row[name].astimezone(UTC) if row[name] is not None else None
        row["devices"] = tuple(sorted(device.name for device in window.devices.all()))
        row["sites"] = tuple(sorted(site.name for site in window.sites.all()))
        row["tags"] = tuple(sorted(tag.name for tag in window.tags.all()))
        row["kinds"] = tuple(sorted(window.kinds or []))
        rows.setdefault(window.name, []).append(row)
    return rows


def _display(value: object) -> str:
    return str(utc_text(value)) if isinstance(value, datetime) else _show(value)


@dataclass
class WindowPlan:
    """What an import does to one maintenance window."""

    name: str
    action: Literal["create", "update", "unchanged", "delete"]
    record: MaintenanceRecord | None = None
    pk: int | None = None
    changes: list[tuple[str, object, object]] = field(default_factory=list)

    def describe(self) -> str:
        """``update maintenance core-upgrade: ends_at 2026-... -> 2026-...``."""
        head = f"{self.action} maintenance {self.name}"
        if not self.changes:
            return head
        diff = ", ".join(
            f"{name} {_display(old)} -> {_display(new)}" for name, old, new in self.changes
        )
        return f"{head}: {diff}"


def window_problems(
    windows: list[MaintenanceRecord], existing: dict[str, list[dict[str, Any]]], devices: set[str]
) -> list[Problem]:
    """Duplicate names, unknown devices, and the model's own rules (``clean()``).

    ``devices`` are the device names that exist once the import is done.
    """
    problems: list[Problem] = []
    first: dict[str, int] = {}
    for window in windows:
        if window.name in first:
            message = f"duplicate maintenance window {_show(window.name)} (first at line "
            problems.append(Problem(f"{message}{first[window.name]})", window.line, "name"))
        first.setdefault(window.name, window.line)
        if len(existing.get(window.name, [])) > 1:
            message = (
                f"{len(existing[window.name])} maintenance windows are named "
                f"{_show(window.name)} here; rename all but one first"
            )
            problems.append(Problem(message, window.line_of("name"), "name"))
        unknown = [name for name in window.values["devices"] if name not in devices]
        if unknown:
            message = f"unknown device{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}"
            problems.append(Problem(message, window.line_of("devices"), "devices"))
        problems += _model_problems(window)
    return problems


def _model_problems(window: MaintenanceRecord) -> list[Problem]:
    values = {name: window.values[name] for name in MAINTENANCE_FIELDS}
    instance = MaintenanceWindow(**values, kinds=list(window.values["kinds"]))
    try:
        instance.clean()
    except ValidationError as exc:
        return [
            Problem(message, window.line_of(name), "" if name == NON_FIELD_ERRORS else name)
            for name, messages in exc.message_dict.items()
            for message in messages
        ]
    return []


def plan_windows(
    windows: list[MaintenanceRecord] | None,
    existing: dict[str, list[dict[str, Any]]],
    *,
    prune: bool,
) -> list[WindowPlan]:
    """Create, update or leave each window of the file; delete the others when pruning.

    A file without a ``maintenance`` key (``windows`` None) leaves every window alone.
    """
    if windows is None:
        return []
    plans: list[WindowPlan] = []
    for window in windows:
        rows = existing.get(window.name)
        if not rows:
            plans.append(WindowPlan(window.name, "create", window))
            continue
        row = rows[0]
        changes = [
            (key, row[key], window.values[key])
            for key in MAINTENANCE_KEYS
            if row[key] != window.values[key]
        ]
        plans.append(
            WindowPlan(
                window.name, "update" if changes else "unchanged", window, row["pk"], changes
            )
        )
    if prune:
        named = {window.name for window in windows}
        plans += [
            WindowPlan(name, "delete", pk=row["pk"])
            for name, rows in sorted(existing.items())
            if name not in named
            for row in rows
        ]
    return plans


def apply_windows(plans: list[WindowPlan]) -> None:
    """Write the windows' plans; run after the devices, sites and tags exist."""
    writes = [plan for plan in plans if plan.action in {"create", "update"}]
    if writes:
        names = {key: set[str]() for key in ("devices", "sites", "tags")}
        for plan in writes:
            assert plan.record is not None
            for key in names:
                names[key].update(plan.record.values[key])
        pks = {
            "devices": dict(
                Device.objects.filter(name__in=names["devices"]).values_list("name", "pk")
            ),
            "sites": dict(Site.objects.filter(name__in=names["sites"]).values_list("name", "pk")),
            "tags": dict(Tag.objects.filter(name__in=names["tags"]).values_list("name", "pk")),
        }
        for plan in writes:
            _write_window(plan, pks)
    deleted = [plan.pk for plan in plans if plan.action == "delete"]
    if deleted:
        MaintenanceWindow.objects.filter(pk__in=deleted).delete()


def _write_window(plan: WindowPlan, pks: dict[str, dict[str, int]]) -> None:
    assert plan.record is not None
    values = plan.record.values
    fields = {name: values[name] for name in MAINTENANCE_FIELDS}
    fields["kinds"] = list(values["kinds"])
    if plan.action == "create":
        window = MaintenanceWindow.objects.create(**fields)
    else:
        assert plan.pk is not None
        MaintenanceWindow.objects.filter(pk=plan.pk).update(**fields)
        window = MaintenanceWindow(pk=plan.pk)
    changed = {name for name, _, _ in plan.changes}
    for key in ("devices", "sites", "tags"):
        if plan.action == "create" or key in changed:
            getattr(window, key).set([pks[key][name] for name in values[key]])


def export_rows() -> list[dict[str, Any]]:
    """Every window, by name, in the file's shape (times as ISO UTC text)."""
    rows = [row for rows in window_rows().values() for row in rows]
    for row in rows:
        for name in ("starts_at", "ends_at", "until"):
            row[name] = utc_text(row[name])
    return rows
