"""/api/v1/events: recent state changes, newest first."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Field, Query, Router, Schema

from resourcemonitor.api.params import Timestamp
from resourcemonitor.api.schemas import ErrorOut, EventList
from resourcemonitor.monitoring.models import Event

router = Router(tags=["events"])


class EventQuery(Schema):
    device: int | None = Field(None, description="Only this device's events")
    limit: int = Field(100, ge=1, le=1000)
    before: Timestamp | None = Field(
        None, description="Only events strictly before this time (to page back)"
    )


@router.get("/events", response={200: EventList, 422: ErrorOut}, summary="Recent state changes")
def event_list(request: HttpRequest, query: Query[EventQuery]) -> dict[str, Any]:
    events = Event.objects.all()
    if query.device is not None:
        events = events.filter(device_id=query.device)
    if query.before is not None:
        events = events.filter(at__lt=query.before)
    rows = events.order_by("-at", "-id").values_list(
        "id", "at", "device_id", "device__name", "from_status", "to_status", "message"
    )[: query.limit]
    return {
        "items": [
            {
                "id": event_id,
                "at": at,
                "device_id": device_id,
                "device_name": device_name,
                "from_status": from_status,
                "to_status": to_status,
                "message": message,
            }
            for event_id, at, device_id, device_name, from_status, to_status, message in rows
        ]
    }
