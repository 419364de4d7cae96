"""/api/v1/summary: devices per status, and whether the collector is reporting."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import connections
from django.http import HttpRequest
from django.utils import timezone
from ninja import Router

from resourcemonitor.api.listing import fetch_rows, row_clock
from resourcemonitor.api.schemas import SummaryOut
from resourcemonitor.inventory.models import Device
from resourcemonitor.monitoring.freshness import effective_status
from resourcemonitor.monitoring.models import Heartbeat
from resourcemonitor.monitoring.status import PROBLEM_STATUSES, STATUS_META

router = Router(tags=["summary"])

COLLECTOR = "collector"


def collector_status() -> dict[str, Any]:
    """From the collectors' heartbeats: alive when any beat within RESMON_HEARTBEAT_STALE_S."""
    beats = list(
        Heartbeat.objects.filter(component=COLLECTOR)
        .order_by("-last_seen_at")
        .values("last_seen_at", "info", "instance")[:100]
    )
    alive_count = Heartbeat.objects.alive(COLLECTOR).count()
    freshest = beats[0] if beats else None
    return {
        "alive": alive_count > 0,
        "last_seen_at": freshest["last_seen_at"] if freshest else None,
        "instances": alive_count,
        "info": freshest["info"] if freshest and isinstance(freshest["info"], dict) else {},
    }


def status_summary(now: datetime) -> dict[str, Any]:
    """Counts by effective status (every status present, zero or not)."""
    counts = {str(status): 0 for status in STATUS_META}
    stale_count = 0
    flapping_count = 0
    qs = Device.objects.order_by()
    to_datetime, row_now, _ = row_clock(connections[qs.db].vendor, now, None)
    rows = fetch_rows(
        qs, ("check_interval_s", "state__status", "state__last_check_at", "state__flapping")
    )
    for interval_s, stored_status, last_check_at, flapping in rows:
        status, stale = effective_status(
            stored_status, to_datetime(last_check_at), interval_s, row_now
        )
        counts[status] += 1
        stale_count += stale
        flapping_count += bool(flapping)
    return {
        "now": now,
        "counts": counts,
        "total": sum(counts.values()),
        "problems": sum(counts[str(status)] for status in PROBLEM_STATUSES),
        "stale": stale_count,
        "flapping": flapping_count,
        "collector": collector_status(),
    }


@router.get("/summary", response=SummaryOut, summary="Devices per status and collector health")
def summary(request: HttpRequest) -> dict[str, Any]:
    return status_summary(timezone.now())
