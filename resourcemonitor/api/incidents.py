"""/api/v1/incidents: open and past incidents, their timeline and delivery, and ack."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Count, Prefetch, Q
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from ninja import Field, Query, Router, Schema

from resourcemonitor.alerts.models import Incident, IncidentUpdate, Notification
from resourcemonitor.alerts.services import incident_acknowledge
from resourcemonitor.api.auth import TokenOrSession
from resourcemonitor.api.models import Role, Scope
from resourcemonitor.api.schemas import ErrorOut

router = Router(tags=["incidents"])

write_access = TokenOrSession(scope=Scope.WRITE, role=Role.OPERATOR)


class IncidentQuery(Schema):
    state: str | None = Field(
        None, pattern="^(open|acknowledged|resolved|active)$", description="active = not resolved"
    )
    device: int | None = Field(None, description="Only this device's incidents")
    limit: int = Field(100, ge=1, le=1000)
    offset: int = Field(0, ge=0)


class IncidentOut(Schema):
    id: int
    device_id: int
    device_name: str
    site: str | None
    problem: str
    severity: str
    state: str
    title: str
    summary: str
    affected_count: int
    opened_at: datetime
    notified_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    ack_note: str
    resolved_at: datetime | None
    suppressed_reason: str
    flap_count: int
    notifications_sent: int
    notifications_pending: int
    notifications_failed: int
    seconds_to_ack: float | None
    seconds_to_resolve: float | None


class IncidentList(Schema):
    count: int
    items: list[IncidentOut]


class TimelineOut(Schema):
    at: datetime
    kind: str
    message: str


class DeliveryOut(Schema):
    id: int
    channel: str
    kind: str
    status: str
    attempts: int
    created_at: datetime
    sent_at: datetime | None
    next_attempt_at: datetime
    last_error: str


class IncidentDetail(IncidentOut):
    timeline: list[TimelineOut]
    deliveries: list[DeliveryOut]


class AckIn(Schema):
    note: str = Field("", max_length=500)


def _row(incident: Any) -> dict[str, Any]:
    user = incident.acknowledged_by
    return {
        "id": incident.pk,
        "device_id": incident.device_id,
        "device_name": incident.device.name,
        "site": incident.device.site.name if incident.device.site else None,
        "problem": incident.problem,
        "severity": incident.severity,
        "state": incident.state,
        "title": incident.title,
        "summary": incident.summary,
        "affected_count": incident.affected_count,
        "opened_at": incident.opened_at,
        "notified_at": incident.notified_at,
        "acknowledged_at": incident.acknowledged_at,
        "acknowledged_by": user.get_username() if user else None,
        "ack_note": incident.ack_note,
        "resolved_at": incident.resolved_at,
        "suppressed_reason": incident.suppressed_reason,
        "flap_count": incident.flap_count,
        "notifications_sent": incident.n_sent,
        "notifications_pending": incident.n_pending,
        "notifications_failed": incident.n_failed,
        "seconds_to_ack": incident.seconds_to_ack(),
        "seconds_to_resolve": incident.seconds_to_resolve(),
    }


def _with_counts(qs: Any) -> Any:
    return qs.annotate(
        n_sent=Count("notifications", filter=Q(notifications__status="sent")),
        n_pending=Count(
            "notifications", filter=Q(notifications__status__in=["pending", "sending"])
        ),
        n_failed=Count("notifications", filter=Q(notifications__status="failed")),
    )


@router.get(
    "/incidents", response={200: IncidentList, 422: ErrorOut}, summary="Incidents, newest first"
)
def incident_list(request: HttpRequest, query: Query[IncidentQuery]) -> dict[str, Any]:
    incidents = Incident.objects.all()
    if query.device is not None:
        incidents = incidents.filter(device_id=query.device)
    if query.state == "resolved":
        incidents = incidents.filter(resolved_at__isnull=False)
    elif query.state == "active":
        incidents = incidents.filter(resolved_at__isnull=True)
    elif query.state == "open":
        incidents = incidents.filter(resolved_at__isnull=True, acknowledged_at__isnull=True)
    elif query.state == "acknowledged":
        incidents = incidents.filter(resolved_at__isnull=True, acknowledged_at__isnull=False)
    count = incidents.count()
    page = _with_counts(incidents.listing())[query.offset : query.offset + query.limit]
    return {"count": count, "items": [_row(incident) for incident in page]}


def _detail(incident_id: int) -> dict[str, Any]:
    incident = get_object_or_404(
        _with_counts(Incident.objects.listing()).prefetch_related(
            Prefetch("updates", queryset=IncidentUpdate.objects.order_by("at", "id")),
            Prefetch(
                "notifications",
                queryset=Notification.objects.select_related("channel").order_by("id"),
            ),
        ),
        pk=incident_id,
    )
    data = _row(incident)
    data["timeline"] = [
        {"at": u.at, "kind": u.kind, "message": u.message} for u in incident.updates.all()
    ]
    data["deliveries"] = [
        {
            "id": n.pk,
            "channel": n.channel.name,
            "kind": n.kind,
            "status": n.status,
            "attempts": n.attempts,
            "created_at": n.created_at,
            "sent_at": n.sent_at,
            "next_attempt_at": n.next_attempt_at,
            "last_error": n.last_error,
        }
        for n in incident.notifications.all()
    ]
    return data


@router.get(
    "/incidents/{incident_id}",
    response={200: IncidentDetail, 404: ErrorOut},
    summary="One incident with its timeline and delivery state",
)
def incident_detail(request: HttpRequest, incident_id: int) -> dict[str, Any]:
    return _detail(incident_id)


@router.post(
    "/incidents/{incident_id}/ack",
    response={200: IncidentDetail, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 422: ErrorOut},
    auth=write_access,
    summary="Acknowledge an incident (stops re-notification)",
)
def incident_ack(request: HttpRequest, incident_id: int, payload: AckIn) -> dict[str, Any]:
    incident = get_object_or_404(Incident, pk=incident_id)
    principal = request.auth  # type: ignore[attr-defined]
    incident_acknowledge(incident=incident, user=principal.user, note=payload.note)
    return _detail(incident_id)
