"""The database side of an import: plan (reads) and apply (writes)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import transaction
from django.utils import timezone

from resourcemonitor.inventory.io.columns import (
    CSV_COLUMNS,
    MODEL_FIELDS,
    DeviceRecord,
    Inventory,
    InventoryFileError,
    MaintenanceRecord,
    Problem,
    SiteRecord,
    _show,
    plural,
)
from resourcemonitor.inventory.io.maintenance import (
    WindowPlan,
    apply_windows,
    plan_windows,
    window_problems,
    window_rows,
)
from resourcemonitor.inventory.models import Device, Feed, Site, Tag

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
    windows: list[WindowPlan] = field(default_factory=list)
    # --prune: devices of the database the file no longer has (never feed-owned ones).
    deleted: list[str] = field(default_factory=list)
    prune: bool = False

    def count(self, action: str) -> int:
        return sum(1 for device in self.devices if device.action == action)

    def window_count(self, action: str) -> int:
        return sum(1 for window in self.windows if window.action == action)

    def summary(self) -> str:
        """``16 devices (12 created, 4 updated, 0 unchanged)``, then deletions and windows."""
        text = (
            f"{plural(len(self.devices), 'device')} ({self.count('create')} created, "
            f"{self.count('update')} updated, {self.count('unchanged')} unchanged"
        )
        text += f", {len(self.deleted)} deleted)" if self.prune else ")"
        if self.windows:
            kept = len(self.windows) - self.window_count("delete")
            text += (
                f", {plural(kept, 'maintenance window')} ({self.window_count('create')} created,"
                f" {self.window_count('update')} updated,"
                f" {self.window_count('unchanged')} unchanged"
            )
            text += f", {self.window_count('delete')} deleted)" if self.prune else ")"
        return text

    def as_dict(self, *, dry_run: bool) -> dict[str, Any]:
        """The summary for scripts (``--json``)."""
        return {
            "dry_run": dry_run,
            "devices": {
                "total": len(self.devices),
                "created": self.count("create"),
                "updated": self.count("update"),
                "unchanged": self.count("unchanged"),
                "deleted": len(self.deleted),
            },
            "maintenance": {
                action + "d": self.window_count(action) for action in ("create", "update", "delete")
            }
            | {"unchanged": self.window_count("unchanged")},
            "sites_created": len(self.new_sites),
            "tags_created": len(self.new_tags),
            "skipped": len(self.skipped),
            "changes": self.describe(),
        }

    def describe(self) -> list[str]:
        """One line per change: sites, tags, devices, windows, then deletions."""
        lines = [f"create site {site.name}" for site in self.new_sites]
        lines += [f"update site {site.name}: description" for site in self.changed_sites]
        lines += [f"create tag {tag}" for tag in self.new_tags]
        lines += [device.describe() for device in self.devices if device.action != "unchanged"]
        lines += [w.describe() for w in self.windows if w.action in {"create", "update"}]
        lines += [f"delete {name}" for name in self.deleted]
        lines += [w.describe() for w in self.windows if w.action == "delete"]
        return lines


def plan_import(*, inventory: Inventory, prune: bool = False) -> ImportPlan:
    """Check parsed records against the database and work out what an import changes.

    With ``prune``, devices the file does not name are deleted (feed-owned ones never:
    their feed owns them), and so are maintenance windows, if the file has a
    ``maintenance`` list. Reads only. Raises InventoryFileError with every problem found.
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
    named = {record.name for record in inventory.devices} | inventory.rejected
    deleted = (
        sorted(name for name, row in existing.items() if row["feed"] is None and name not in named)
        if prune
        else []
    )
    problems += _parent_problems(records, existing, skipped, inventory.rejected, set(deleted))
    windows = inventory.maintenance or []
    existing_windows = window_rows() if inventory.maintenance is not None else {}
    remaining = (existing.keys() - set(deleted)) | {record.name for record in records}
    problems += window_problems(windows, existing_windows, remaining)
    if problems:
        raise InventoryFileError(problems)
    return ImportPlan(
        devices=[_device_plan(record, existing.get(record.name)) for record in records],
        feeds=feeds,
        skipped=skipped,
        windows=plan_windows(inventory.maintenance, existing_windows, prune=prune),
        deleted=deleted,
        prune=prune,
        **_site_and_tag_plan(inventory.sites, records, windows),
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


def _site_and_tag_plan(
    sites: list[SiteRecord], records: list[DeviceRecord], windows: list[MaintenanceRecord]
) -> dict[str, Any]:
    existing_sites = dict(Site.objects.values_list("name", "description"))
    wanted = {site.name: site for site in sites}
    for record in records:
        site = record.values["site"]
        if site is not None and site not in wanted:
            wanted[site] = SiteRecord(site, "", record.line_of("site"))
    for window in windows:
        for site in window.values["sites"]:
            wanted.setdefault(site, SiteRecord(site, "", window.line_of("sites")))
    existing_tags = set(Tag.objects.values_list("name", flat=True))
    tags = {tag for record in records for tag in record.values["tags"]}
    tags |= {tag for window in windows for tag in window.values["tags"]}
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
    deleted: set[str],
) -> list[Problem]:
    problems: list[Problem] = []
    by_name = {record.name: record for record in records}
    skipped_names = {record.name for record in skipped}
    known = by_name.keys() | (existing.keys() - deleted) | rejected
    for record in records:
        parent = record.values["parent"]
        if parent is not None and parent not in known:
            why = ""
            if parent in skipped_names:
                why = " (its feed is not registered, so it was skipped)"
            elif parent in deleted:
                why = " (--prune deletes it: the file does not have it)"
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
    apply_windows(plan.windows)
    for start in range(0, len(plan.deleted), 500):
        Device.objects.filter(name__in=plan.deleted[start : start + 500], feed=None).delete()


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


def import_inventory(
    *, inventory: Inventory, dry_run: bool = False, prune: bool = False
) -> ImportPlan:
    """Plan and (unless ``dry_run``) apply an import in one transaction: all or nothing."""
    if dry_run:
        return plan_import(inventory=inventory, prune=prune)
    with transaction.atomic():
        plan = plan_import(inventory=inventory, prune=prune)
        apply_import(plan=plan)
    return plan
