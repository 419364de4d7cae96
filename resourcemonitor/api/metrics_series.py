"""``GET /api/v1/devices/{id}/metrics``: a device's stored metrics (SNMP, pushed telemetry).

Grouped by metric name, each a list of ``[t, value]`` points, oldest first, over at most
7 days (raw retention). The newest ``limit`` rows of the range are kept when it holds more.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from ninja import Field, Query, Router, Schema

from resourcemonitor.api.devices import _require_device, json_response
from resourcemonitor.api.params import Timestamp, invalid, isoformat
from resourcemonitor.api.schemas import ErrorOut
from resourcemonitor.monitoring.ingest import MAX_METRIC_NAME
from resourcemonitor.monitoring.metricstore import metrics_for_device

router = Router(tags=["devices"])

MAX_RANGE = timedelta(days=7)
DEFAULT_RANGE = timedelta(hours=1)
MAX_NAMES = 20


class MetricsQuery(Schema):
    start: Timestamp | None = Field(None, description="Default: one hour before end")
    end: Timestamp | None = Field(None, description="Default: now")
    name: list[str] = Field(
        default_factory=list,
        description="Only these metric names (repeat for several); default: all",
    )
    limit: int = Field(10000, ge=1, le=50000, description="At most this many points in all")


class MetricSeries(Schema):
    name: str
    points: list[tuple[datetime, float]] = Field(description="[t, value], oldest first")


class MetricsOut(Schema):
    device: int
    start: datetime
    end: datetime
    truncated: bool = Field(description="More points in the range than limit: the newest kept")
    series: list[MetricSeries]


@router.get(
    "/devices/{device_id}/metrics",
    response={200: MetricsOut, 404: ErrorOut, 422: ErrorOut},
    summary="Stored metrics of one device (SNMP rates, CPU, uptime, pushed telemetry)",
)
def device_metrics(
    request: HttpRequest, device_id: int, query: Query[MetricsQuery]
) -> HttpResponse:
    end: datetime = query.end or timezone.now()
    start: datetime = query.start or end - DEFAULT_RANGE
    if start >= end:
        raise invalid("start", "start must be before end")
    if end - start > MAX_RANGE:
        raise invalid("start", "the range from start to end may be at most 7 days")
    if len(query.name) > MAX_NAMES:
        raise invalid("name", f"at most {MAX_NAMES} names")
    for name in query.name:
        if not 0 < len(name) <= MAX_METRIC_NAME:
            raise invalid("name", f"metric names are 1 to {MAX_METRIC_NAME} characters")
    _require_device(device_id)
    rows = metrics_for_device(
        device_id,
        int(start.timestamp() * 1000),
        int(end.timestamp() * 1000),
        names=query.name,
        limit=query.limit + 1,
    )
    truncated = len(rows) > query.limit
    if truncated:
        rows = rows[1:]
    series: dict[str, list[tuple[str | None, float]]] = {}
    stamps: dict[int, str | None] = {}
    for t, name, value in rows:
        stamp = stamps.get(t)
        if stamp is None:
            stamp = stamps[t] = isoformat(datetime.fromtimestamp(t / 1000, tz=UTC))
        series.setdefault(name, []).append((stamp, value))
    payload: dict[str, Any] = {
        "device": device_id,
        "start": isoformat(start),
        "end": isoformat(end),
        "truncated": truncated,
        "series": [{"name": name, "points": series[name]} for name in sorted(series)],
    }
    return json_response(payload)
