"""Alerting logic that spans models: incidents from events, routing, maintenance, acks.

Every function is keyword-only and typed; the worker (``resmon alerts``) and the API call
them, tests call them directly.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from resourcemonitor.alerts.models import (
    PROBLEM_SEVERITY,
    Channel,
    Incident,
    Notification,
    NotificationKind,
    Problem,
    Severity,
    channels_for,
)
from resourcemonitor.inventory.models import Device, MaintenanceWindow
from resourcemonitor.monitoring.models import DeviceState, Event
from resourcemonitor.monitoring.status import Status

MAINTENANCE_RECHECK_S = 15.0

# --- facts about devices ------------------------------------------------------------


def in_maintenance(*, device: Device, at: datetime) -> MaintenanceWindow | None:
    """The active maintenance window covering ``device`` at ``at``, or None."""
    tag_ids = {t.pk for t in device.tags.all()}
    for window in MaintenanceWindow.objects.may_be_active(at).prefetch_related(
        "devices", "sites", "tags"
    ):
        covers = (
            any(d.pk == device.pk for d in window.devices.all())
            or (
                device.site_id is not None
                and any(s.pk == device.site_id for s in window.sites.all())
            )
            or bool(tag_ids & {t.pk for t in window.tags.all()})
            or device.kind in (window.kinds or [])
        )
        if covers and window.is_active(at):
            return window
    return None


def count_descendants(*, device_id: int) -> int:
    """Devices behind this one (children, grandchildren, …); safe against cycles.

    One recursive query that walks only this subtree: in a large outage every notified
    incident asks, and loading every parent link each time would be O(devices) apiece.
    UNION (not UNION ALL) drops rows already reached, so a cycle ends the walk.
    """
    table = connection.ops.quote_name(Device._meta.db_table)
    sql = f"""
        WITH RECURSIVE behind(id) AS (
            SELECT id FROM {table} WHERE parent_id = %s
            UNION
            SELECT d.id FROM {table} d JOIN behind b ON d.parent_id = b.id
        )
        SELECT COUNT(*) FROM behind WHERE id <> %s
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [device_id, device_id])
        return int(cursor.fetchone()[0])


def blocking_ancestor(*, device: Device) -> Device | None:
    """The nearest ancestor that is down or unreachable (then this device is not the cause)."""
    seen = {device.pk}
    parent_id = device.parent_id
    while parent_id is not None and parent_id not in seen and len(seen) < 64:
        seen.add(parent_id)
        state = DeviceState.objects.filter(device_id=parent_id).select_related("device").first()
        if state is None:
            parent_id = (
                Device.objects.filter(pk=parent_id).values_list("parent_id", flat=True).first()
            )
            continue
        if state.status in (Status.DOWN, Status.UNREACHABLE):
            return state.device
        parent_id = state.device.parent_id
    return None


def _is_flapping(device: Device) -> bool:
    return DeviceState.objects.filter(device=device, flapping=True).exists()


# --- the outbox -------------------------------------------------------------------


def enqueue(*, incident: Incident, kind: str, now: datetime, first: bool = False) -> int:
    """Queue one notification per channel; returns how many were queued.

    The ``first`` notification of an incident goes where routing says; every later one
    (flapping, escalated, still open, resolved) goes to the channels that got the first,
    so whoever was paged hears the all-clear, and nobody hears an all-clear alone.
    """
    if first:
        device = (
            Device.objects.prefetch_related("tags")
            .select_related("site")
            .get(pk=incident.device_id)
        )
        channels = Channel.objects.filter(enabled=True).prefetch_related("sites", "tags")
        chosen = channels_for(severity=incident.severity, device=device, channels=channels)
    else:
        chosen = list(
            Channel.objects.filter(enabled=True, notifications__incident=incident).distinct()
        )
    title, body = _message(incident=incident, kind=kind)
    Notification.objects.bulk_create(
        Notification(
            incident=incident,
            channel=channel,
            kind=kind,
            title=title,
            body=body,
            created_at=now,
            next_attempt_at=now,
        )
        for channel in chosen
    )
    incident.last_notified_at = now
    incident.log(
        "notified", f"{NotificationKind(kind).label}: queued for {len(chosen)} channel(s)", now
    )
    return len(chosen)


def _message(*, incident: Incident, kind: str) -> tuple[str, str]:
    prefix = {
        NotificationKind.PROBLEM: "PROBLEM",
        NotificationKind.FLAPPING: "FLAPPING",
        NotificationKind.ESCALATED: "ESCALATED",
        NotificationKind.RENOTIFY: "STILL OPEN",
        NotificationKind.RESOLVED: "RESOLVED",
    }[NotificationKind(kind)]
    title = f"[{prefix}] {incident.title}"[:300]
    lines = [incident.summary] if incident.summary else []
    lines.append(
        f"Severity: {incident.severity}. Opened {incident.opened_at:%Y-%m-%d %H:%M:%S} UTC."
    )
    if kind == NotificationKind.FLAPPING:
        lines.append(
            f"It has changed state {incident.flap_count} times; one message for all of it."
        )
    if incident.resolved_at:
        minutes = (incident.resolved_at - incident.opened_at).total_seconds() / 60
        lines.append(f"Resolved after {minutes:.1f} min.")
    lines.append(f"Incident #{incident.pk}")
    return title, "\n".join(lines)


# --- incidents from events ----------------------------------------------------------


def handle_event(*, event: Event, now: datetime) -> Incident | None:
    """Fold one state change into incidents. Called inside the worker's claim transaction."""
    device = event.device
    to = event.to_status
    current = (
        Incident.objects.open()
        .filter(device=device, problem__in=[Problem.DOWN, Problem.DEGRADED])
        .first()
    )
    if event.from_status == to:
        # Not a state change (an SNMP reboot is recorded as up→up or down→down): it goes
        # on the open incident's timeline, if any, and never opens or pages anything.
        if current is not None:
            current.log("note", event.message or f"still {to}", now)
            current.save()
        return current
    if to == Status.DOWN:
        if current is None:
            # Timed from the event: a worker catching up must not delay (or skip) the wait.
            return open_incident(
                device=device, problem=Problem.DOWN, message=event.message, now=min(event.at, now)
            )
        if current.recovering_since is not None:
            # Failed again before the recovery held: the same problem, not a new page.
            current.recovering_since = None
            current.flap_count += 1
            current.log("flapped", f"down again: {event.message}", now)
        if current.problem == Problem.DEGRADED:
            current.problem = Problem.DOWN
            current.severity = Severity.CRITICAL
            current.title = f"{device.name} is down"
            current.log("escalated", f"down: {event.message}", now)
            if current.notified_at:
                enqueue(incident=current, kind=NotificationKind.ESCALATED, now=now)
        current.save()
        _maybe_flap_notify(incident=current, now=now)
        return current
    if current is None:
        return None  # degraded opens later (open_due_degraded); unreachable never opens
    if to == Status.UNREACHABLE:
        if current.notified_at is None:
            # It failed just before its parent did: the parent's incident covers it.
            return resolve_silently(
                incident=current, reason=f"unreachable: {event.message}", now=now
            )
        current.log("unreachable", event.message, now)
        return current
    answering_again = to == Status.UP or (to == Status.DEGRADED and current.problem == Problem.DOWN)
    if answering_again and current.recovering_since is None:
        # Resolved only once the recovery has held (resolve_due), so a flap is one incident.
        # From the event's time, not ours: a busy worker must not stretch the hold.
        current.recovering_since = min(event.at, now)
        current.save(update_fields=["recovering_since"])
        current.log("recovering", f"{to}: {event.message}", now)
    elif to == Status.DEGRADED and current.recovering_since is not None:
        current.recovering_since = None
        current.flap_count += 1
        current.save(update_fields=["recovering_since", "flap_count"])
        current.log("flapped", f"degraded again: {event.message}", now)
        _maybe_flap_notify(incident=current, now=now)
    return current


def _maybe_flap_notify(*, incident: Incident, now: datetime) -> None:
    """One message when a device starts flapping, not one per change."""
    if incident.flap_notified_at is not None or incident.resolved_at is not None:
        return
    if not (_is_flapping(incident.device) or incident.flap_count >= 2):
        return
    incident.flap_notified_at = now
    incident.save(update_fields=["flap_notified_at"])
    incident.log("flapping", f"flapping ({incident.flap_count} changes)", now)
    if incident.notified_at is not None:
        enqueue(incident=incident, kind=NotificationKind.FLAPPING, now=now)
        incident.save(update_fields=["last_notified_at"])


def open_incident(*, device: Device, problem: str, message: str, now: datetime) -> Incident:
    severity = PROBLEM_SEVERITY.get(Problem(problem), Severity.WARNING)
    verb = {
        Problem.DOWN: "is down",
        Problem.DEGRADED: "is degraded",
        Problem.SLO_BURN: "is burning its error budget",
    }[Problem(problem)]
    incident = Incident.objects.create(
        device=device,
        problem=problem,
        severity=severity,
        title=f"{device.name} {verb}",
        summary=message[:1000],
        opened_at=now,
        notify_at=now + timedelta(seconds=settings.RESMON_ALERT_NOTIFY_DELAY_S),
    )
    incident.log("opened", message, now)
    return incident


def resolve_silently(*, incident: Incident, reason: str, now: datetime) -> Incident:
    incident.resolved_at = now
    incident.notify_at = None
    incident.suppressed_reason = reason[:300]
    incident.save(update_fields=["resolved_at", "notify_at", "suppressed_reason"])
    incident.log("suppressed", reason, now)
    return incident


def notify_due(*, incident: Incident, now: datetime) -> str:
    """Send the first notification of an incident whose wait is over, unless suppressed.

    Returns what happened: ``notified``; ``suppressed`` (a parent is down: closed);
    ``maintenance`` or ``recovering`` (kept open, un-notified, looked at again later).
    """
    device = incident.device
    # A device that keeps failing and recovering is a real problem even if each failure is
    # shorter than the notify delay: without this, a flap whose down spells all fall
    # between two looks would page nobody at all. It gets its one [FLAPPING] message.
    flapping = incident.flap_notified_at is not None or _is_flapping(device)
    if incident.recovering_since is not None and not flapping:
        # Back up before anyone was told: if the recovery holds it closes silently (a blip
        # shorter than the notify delay pages nobody); if it fails again, it is notified.
        incident.notify_at = now + timedelta(seconds=MAINTENANCE_RECHECK_S)
        incident.save(update_fields=["notify_at"])
        return "recovering"
    # The state now, not the event's: a worker working through a backlog may hold an old
    # "down" whose recovery it has not read yet; it must not page for it.
    status_now = DeviceState.objects.filter(device=device).values_list("status", flat=True).first()
    if status_now == Status.UNREACHABLE:
        resolve_silently(incident=incident, reason="unreachable: its parent is down", now=now)
        return "suppressed"
    if incident.problem == Problem.DOWN and status_now not in (None, Status.DOWN) and not flapping:
        incident.notify_at = now + timedelta(seconds=MAINTENANCE_RECHECK_S)
        incident.save(update_fields=["notify_at"])
        return "recovering"
    ancestor = blocking_ancestor(device=device)
    if ancestor is not None:
        resolve_silently(incident=incident, reason=f"parent {ancestor.name} is down", now=now)
        return "suppressed"
    window = in_maintenance(device=device, at=now)
    if window is not None:
        if not incident.updates.filter(kind="maintenance").exists():
            incident.log("maintenance", f"not notified: maintenance window {window.name!r}", now)
        # Look again later: a problem that outlasts the window is still worth a page.
        incident.notify_at = now + timedelta(seconds=MAINTENANCE_RECHECK_S)
        incident.save(update_fields=["notify_at"])
        return "maintenance"
    behind = count_descendants(device_id=device.pk)
    incident.affected_count = behind
    if behind and incident.problem == Problem.DOWN:
        incident.title = f"{device.name} is down; {behind} device(s) behind it are unreachable"[
            :300
        ]
    incident.notify_at = None
    incident.notified_at = now
    kind = NotificationKind.FLAPPING if incident.flap_notified_at else NotificationKind.PROBLEM
    enqueue(incident=incident, kind=kind, now=now, first=True)
    incident.save()
    return "notified"


def resolve(*, incident: Incident, now: datetime) -> Incident:
    """Recovery held: close it, and send the resolution wherever the problem went.

    Also during maintenance: a page that went out always gets its all-clear.
    """
    incident.resolved_at = now
    incident.notify_at = None
    incident.save(update_fields=["resolved_at", "notify_at"])
    incident.log("resolved", "recovered", now)
    if incident.notified_at is not None:
        enqueue(incident=incident, kind=NotificationKind.RESOLVED, now=now)
        incident.save(update_fields=["last_notified_at"])
    return incident


def incident_acknowledge(*, incident: Incident, user: object, note: str = "") -> Incident:
    """Someone is on it: stops re-notification. Acknowledging twice keeps the first."""
    with transaction.atomic():
        now = timezone.now()
        updated = Incident.objects.filter(pk=incident.pk, acknowledged_at__isnull=True).update(
            acknowledged_at=now, acknowledged_by=user, ack_note=note[:500]
        )
        incident.refresh_from_db()
        if updated:
            name = getattr(user, "get_username", lambda: str(user))()
            incident.log("acknowledged", f"by {name}" + (f": {note}" if note else ""), now)
    return incident


# --- SLO burn rates -----------------------------------------------------------------

BURN_WINDOWS = (
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=1),
    timedelta(hours=6),
    timedelta(days=3),
)


def burn_severity(rates: dict[timedelta, float | None]) -> tuple[str, str] | None:
    """The multi-window, multi-burn-rate rule: ``(severity, why)`` or None.

    Both windows of a pair must burn: the long one says it matters, the short one that
    it is still happening (so the alert stops soon after the problem does).
    """

    def over(window: timedelta, limit: float) -> bool:
        rate = rates.get(window)
        return rate is not None and rate > limit

    def rate(window: timedelta) -> str:
        return f"{rates.get(window) or 0:.1f}"

    h1, m5, h6, m30, d3 = (
        timedelta(hours=1),
        timedelta(minutes=5),
        timedelta(hours=6),
        timedelta(minutes=30),
        timedelta(days=3),
    )
    page_fast = settings.RESMON_ALERT_BURN_PAGE_1H
    page_slow = settings.RESMON_ALERT_BURN_PAGE_6H
    ticket = settings.RESMON_ALERT_BURN_TICKET_3D
    if over(h1, page_fast) and over(m5, page_fast):
        return Severity.CRITICAL, f"burn rate {rate(h1)}x over 1 h and {rate(m5)}x over 5 m"
    if over(h6, page_slow) and over(m30, page_slow):
        return Severity.CRITICAL, f"burn rate {rate(h6)}x over 6 h and {rate(m30)}x over 30 m"
    if over(d3, ticket) and over(h6, ticket):
        return Severity.WARNING, f"burn rate {rate(d3)}x over 3 d and {rate(h6)}x over 6 h"
    return None


def apply_burn_rates(
    *, rates: dict[int, dict[timedelta, float | None]], now: datetime
) -> dict[str, int]:
    """Open, escalate or start recovering SLO-burn incidents from burn rates per device.

    A device that already has a down/degraded incident (or is down or unreachable) gets
    no second page for the same outage: the burn alert is for what the status misses
    (intermittent failures that never reach the failure threshold).
    """
    counts = {"opened": 0, "escalated": 0, "recovering": 0}
    open_burns = {
        i.device_id: i
        for i in Incident.objects.open().filter(problem=Problem.SLO_BURN).select_related("device")
    }
    covered = set(
        Incident.objects.open()
        .filter(problem__in=[Problem.DOWN, Problem.DEGRADED])
        .values_list("device_id", flat=True)
    ) | set(
        DeviceState.objects.filter(status__in=[Status.DOWN, Status.UNREACHABLE]).values_list(
            "device_id", flat=True
        )
    )
    for device_id, device_rates in rates.items():
        verdict = burn_severity(device_rates)
        incident = open_burns.get(device_id)
        if verdict is None:
            if incident is not None and incident.recovering_since is None:
                incident.recovering_since = now
                incident.save(update_fields=["recovering_since"])
                incident.log("recovering", "burn rates back under the thresholds", now)
                counts["recovering"] += 1
            continue
        severity, why = verdict
        if incident is None:
            if device_id in covered:
                continue
            device = Device.objects.get(pk=device_id)
            incident = open_incident(device=device, problem=Problem.SLO_BURN, message=why, now=now)
            incident.severity = severity
            incident.save(update_fields=["severity"])
            counts["opened"] += 1
            continue
        changed = []
        if incident.recovering_since is not None:
            incident.recovering_since = None
            incident.flap_count += 1
            changed += ["recovering_since", "flap_count"]
        if severity == Severity.CRITICAL and incident.severity != Severity.CRITICAL:
            incident.severity = severity
            incident.summary = why
            changed += ["severity", "summary"]
            incident.log("escalated", why, now)
            if incident.notified_at is not None:
                enqueue(incident=incident, kind=NotificationKind.ESCALATED, now=now)
                changed.append("last_notified_at")
            counts["escalated"] += 1
        if changed:
            incident.save(update_fields=changed)
    return counts
