"""/api/v1/devices/status-at: what the network looked like at a moment in the past.

The status of a device at T is the ``to_status`` of its last Event before T (unknown when
there is none). One query for all devices: a correlated subquery per device that the
``event_device_at`` index (device, -at) answers with one seek, so the cost grows with
the number of devices, not with the length of the history.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import OuterRef, Subquery
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from ninja import Field, Query, Router, Schema

from resourcemonitor.api.devices import json_response
from resourcemonitor.api.listing import db_isoformat, fetch_rows
from resourcemonitor.api.params import Timestamp, invalid, isoformat
from resourcemonitor.api.schemas import ErrorOut
from resourcemonitor.inventory.models import Device
from resourcemonitor.monitoring.models import Event

router = Router(tags=["devices"])

# Further back than the slider goes is allowed, but not before events can exist.
MAX_LOOKBACK = timedelta(days=400)


class StatusAtQuery(Schema):
    t: Timestamp = Field(description="The moment to reconstruct (not in the future)")


class StatusAtItem(Schema):
    id: int
    status: str = Field(description="to_status of the last event before t; unknown if none")
    since: str | None = Field(description="When that event happened")


class StatusAtList(Schema):
    at: str
    count: int
    items: list[StatusAtItem]


def statuses_at(moment: Any) -> list[dict[str, Any]]:
    """Every device with its status at ``moment`` (unknown before its first event): one query."""
    last_event = Event.objects.filter(device=OuterRef("pk"), at__lt=moment).order_by("-at", "-id")
    qs = Device.objects.annotate(
        status_then=Subquery(last_event.values("to_status")[:1]),
        then_since=Subquery(last_event.values("at")[:1]),
    ).order_by()
    rows = fetch_rows(qs, ("id", "status_then", "then_since"))
    return [
        {"id": device_id, "status": status or "unknown", "since": db_isoformat(since)}
        for device_id, status, since in rows
    ]


@router.get(
    "/devices/status-at",
    response={200: StatusAtList, 422: ErrorOut},
    summary="Every device's status at a past moment, from the events",
)
def status_at(request: HttpRequest, query: Query[StatusAtQuery]) -> HttpResponse:
    now = timezone.now()
    if query.t > now + timedelta(seconds=5):
        raise invalid("t", "must not be in the future")
    if query.t < now - MAX_LOOKBACK:
        raise invalid("t", f"must be within the last {MAX_LOOKBACK.days} days")
    items = statuses_at(query.t)
    return json_response({"at": isoformat(query.t), "count": len(items), "items": items})
