"""/api/v1/devices: the list, one device, its raw samples and its latency series."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from ninja import Field, Query, Router, Schema

from resourcemonitor.api.listing import DeviceFilter, encode_json
from resourcemonitor.api.listing import cached_list_devices as list_devices  # issue 5 cache
from resourcemonitor.api.params import Timestamp, invalid, isoformat
from resourcemonitor.api.schemas import (
    DeviceDetail,
    DeviceList,
    ErrorOut,
    LatencySeries,
    SampleList,
)
from resourcemonitor.inventory.models import Device, Kind
from resourcemonitor.monitoring.freshness import state_freshness
from resourcemonitor.monitoring.models import DeviceState, Event
from resourcemonitor.monitoring.slo.history import device_history
from resourcemonitor.monitoring.status import Status
from resourcemonitor.monitoring.storage import samples_for_device

router = Router(tags=["devices"])

MAX_SAMPLE_RANGE = timedelta(days=7)
DEFAULT_SAMPLE_RANGE = timedelta(hours=1)
ROLLUP_MINUTE = 60


def json_response(payload: dict[str, Any]) -> HttpResponse:
    # Values are already JSON types (timestamps preformatted): orjson encodes them with
    # no pydantic validation, ~6x faster than json.dumps at 10,000 devices (issue 5).
    return HttpResponse(encode_json(payload), content_type="application/json")


class DeviceQuery(Schema):
    status: list[Status] = Field(
        default_factory=list, description="Effective status; repeat for several"
    )
    kind: Kind | None = None
    site: str | None = Field(None, max_length=100, description="Site name, exact")
    tag: str | None = Field(None, max_length=64, description="Tag name, exact")
    q: str | None = Field(
        None, max_length=200, description="Case-insensitive substring of name or address"
    )
    problems: bool = Field(False, description="Only down, unreachable and degraded devices")
    limit: int = Field(1000, ge=1, le=10000)
    offset: int = Field(0, ge=0)
    changed_since: Timestamp | None = Field(
        None,
        description=(
            "Only devices that changed after this time (status, error, flapping, a new "
            "check, going stale, an inventory edit). Pass back the previous answer's `now`."
        ),
    )


@router.get(
    "/devices",
    response={200: DeviceList, 422: ErrorOut},
    summary="List devices, problems first",
)
def device_list(request: HttpRequest, query: Query[DeviceQuery]) -> HttpResponse:
    now = timezone.now()
    device_filter = DeviceFilter(
        statuses=frozenset(str(status) for status in query.status),
        kind=query.kind,
        site=query.site,
        tag=query.tag,
        search=query.q.strip() if query.q else None,
        problems=query.problems,
        changed_since=query.changed_since,
    )
    listing = list_devices(device_filter, now=now, limit=query.limit, offset=query.offset)
    # Changes-only lists carry ``total_devices``; a cached full list, its encoded answer.
    return HttpResponse(listing.json(), content_type="application/json")


def _event_out(event: Event) -> dict[str, Any]:
    return {
        "id": event.pk,
        "at": event.at,
        "device_id": event.device_id,
        "device_name": event.device.name,
        "from_status": event.from_status,
        "to_status": event.to_status,
        "message": event.message,
    }


@router.get(
    "/devices/{device_id}",
    response={200: DeviceDetail, 404: ErrorOut},
    summary="One device with its check settings and recent events",
)
def device_detail(request: HttpRequest, device_id: int) -> dict[str, Any]:
    now = timezone.now()
    device = get_object_or_404(Device.objects.select_related("site", "parent"), pk=device_id)
    state = DeviceState.objects.filter(device=device).first()
    status, stale = state_freshness(state, device.check_interval_s, now)
    events = Event.objects.filter(device=device).recent(20)
    return {
        "id": device.pk,
        "name": device.name,
        "address": device.address,
        "kind": device.kind,
        "site": device.site.name if device.site else None,
        "tags": list(device.tags.order_by("name").values_list("name", flat=True)),
        "parent_id": device.parent_id,
        "parent_name": device.parent.name if device.parent else None,
        "status": status,
        "stale": stale,
        "last_known_status": state.status if state else None,
        "since": state.since if state else None,
        "last_check_at": state.last_check_at if state else None,
        "latency_ms": state.latency_ms if state else None,
        "last_error": (state.last_error or None) if state else None,
        "flapping": state.flapping if state else False,
        "check_method": device.check_method,
        "check_interval_s": device.check_interval_s,
        "enabled": device.enabled,
        "check": {
            "method": device.check_method,
            "port": device.check_port,
            "path": device.check_path,
            "tls": device.check_tls,
            "expect_status": device.check_expect_status,
            "body_match": device.check_body_match,
            "interval_s": device.check_interval_s,
            "timeout_s": device.check_timeout_s,
            "fail_threshold": device.fail_threshold,
            "recover_threshold": device.recover_threshold,
            "latency_threshold_ms": device.latency_threshold_ms,
        },
        "slo_target": device.slo_target,
        "children_count": device.children.count(),
        "recent_events": [_event_out(event) for event in events],
    }


def _require_device(device_id: int) -> None:
    get_object_or_404(Device.objects.only("pk"), pk=device_id)


class SampleQuery(Schema):
    start: Timestamp | None = Field(None, description="Default: one hour before end")
    end: Timestamp | None = Field(None, description="Default: now")
    limit: int = Field(10000, ge=1, le=10000)


@router.get(
    "/devices/{device_id}/samples",
    response={200: SampleList, 404: ErrorOut, 422: ErrorOut},
    summary="Raw check results, oldest first (the newest `limit` in the range)",
)
def device_samples(request: HttpRequest, device_id: int, query: Query[SampleQuery]) -> HttpResponse:
    end: datetime = query.end or timezone.now()
    start: datetime = query.start or end - DEFAULT_SAMPLE_RANGE
    if start >= end:
        raise invalid("start", "start must be before end")
    if end - start > MAX_SAMPLE_RANGE:
        raise invalid("start", "the range from start to end may be at most 7 days")
    _require_device(device_id)
    start_ms = int(start.timestamp() * 1000)
    end_ms = int(end.timestamp() * 1000)
    # One more than asked tells whether the range held more than the limit.
    rows = samples_for_device(device_id, start_ms, end_ms, query.limit + 1)
    truncated = len(rows) > query.limit
    if truncated:
        rows = rows[1:]
    items = [{**row, "t": _ms_iso(row["t"])} for row in rows]
    return json_response(
        {"start": isoformat(start), "end": isoformat(end), "truncated": truncated, "items": items}
    )


def _ms_iso(ms: int) -> str | None:
    return isoformat(datetime.fromtimestamp(ms / 1000, tz=UTC))


class LatencyQuery(Schema):
    minutes: int = Field(60, ge=1, le=1440)


@router.get(
    "/devices/{device_id}/latency",
    response={200: LatencySeries, 404: ErrorOut, 422: ErrorOut},
    summary="Per-minute checks, successes and latency over the last N minutes (from rollups)",
)
def device_latency(
    request: HttpRequest, device_id: int, query: Query[LatencyQuery]
) -> dict[str, Any]:
    _require_device(device_id)
    minutes = query.minutes
    now_s = int(timezone.now().timestamp())
    # The current, still-filling minute is included: the chart's right edge is "now".
    end_s = now_s - now_s % ROLLUP_MINUTE + ROLLUP_MINUTE
    start_s = end_s - minutes * ROLLUP_MINUTE
    # From the SLO history reader: minute rollups, and the last minutes (which the
    # collector's writer may still hold in memory) from raw samples.
    series = device_history(device_id, start_s, end_s, ROLLUP_MINUTE)
    return {
        "resolution_s": ROLLUP_MINUTE,
        "start": datetime.fromtimestamp(start_s, tz=UTC),
        "end": datetime.fromtimestamp(end_s, tz=UTC),
        "items": [
            {
                "t": datetime.fromtimestamp(point["t"], tz=UTC),
                "count": point["checks"],
                "ok": point["ok"],
                "latency_avg_ms": point["latency_avg_ms"],
                "latency_max_ms": point["latency_max_ms"],
            }
            for point in series["items"]
        ],
    }
