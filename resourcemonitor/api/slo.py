"""/api/v1/slo, /api/v1/devices/{id}/slo and /api/v1/devices/{id}/history.

The figures come from resourcemonitor.monitoring.slo (rollups only); the accounting rules
are in docs/slo.md.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from ninja import Field, Query, Router, Schema

from resourcemonitor.api.devices import json_response
from resourcemonitor.api.params import Timestamp, invalid, isoformat
from resourcemonitor.api.schemas import ErrorOut
from resourcemonitor.inventory.models import Device
from resourcemonitor.monitoring import slo
from resourcemonitor.monitoring.models import GroupSlo

router = Router(tags=["slo"])

WindowName = Literal["1h", "24h", "7d", "30d", "month"]
DEFAULT_HISTORY_RANGE = timedelta(hours=24)
MAX_HISTORY_RANGE = timedelta(days=400)


def _iso(seconds: int) -> str | None:
    return isoformat(datetime.fromtimestamp(seconds, tz=UTC))


class BurnRates(Schema):
    model_config = {"populate_by_name": True}

    m5: float | None = Field(None, alias="5m")
    m30: float | None = Field(None, alias="30m")
    h1: float | None = Field(None, alias="1h")
    h6: float | None = Field(None, alias="6h")
    d1: float | None = Field(None, alias="1d")
    d3: float | None = Field(None, alias="3d")


class SloFigures(Schema):
    target: float = Field(description="Availability target, percent")
    checks: int = Field(description="Checks counted (maintenance excluded)")
    failed: int
    sli: float | None = Field(description="Availability, percent; null when not measured")
    coverage: float | None = Field(description="Checks received / checks expected, percent")
    budget_checks: float = Field(description="Allowed failed checks: (1 - target) x checks")
    budget_remaining_pct: float | None
    budget_remaining_min: float | None = Field(description="Devices only: checks x interval")
    exhausted_in_s: float | None = Field(description="At the 1 h burn rate; null if not burning")
    burn_rates: BurnRates


class SloDeviceItem(SloFigures):
    id: int
    name: str
    kind: str
    site: str | None


class SloGroupItem(SloFigures):
    group: str = Field(description="Selector, e.g. site:London,kind:switch")
    name: str
    devices: int
    latency_threshold_ms: float | None = None
    latency_target: float | None = None
    latency_sli: float | None = None


class SloReport(Schema):
    window: str
    start: datetime
    end: datetime
    count: int
    items: list[SloDeviceItem]
    groups: list[SloGroupItem]


class SloQuery(Schema):
    window: WindowName = Field("30d", description="Rolling 1h/24h/7d/30d or the calendar month")
    group: str | None = Field(
        None,
        max_length=300,
        description="Only devices of this group: site:NAME, kind:KIND, tag:NAME, comma-joined",
    )
    target: float | None = Field(
        None, gt=0, lt=100, description="Target (percent) for the group given by `group`"
    )


def _group_or_422(text: str) -> str:
    try:
        slo.parse_group(text)
    except slo.GroupError as error:
        raise invalid("group", str(error)) from None
    return text


def slo_table(
    window: str, group: str | None, target: float | None, now: datetime
) -> dict[str, Any]:
    """The SLO page's data: devices worst first, then the defined group SLOs."""
    report = slo.device_report(window, now, group=group)
    groups = []
    if group:
        groups.append(slo.group_report(group, window, now, target=target))
    else:
        for definition in GroupSlo.objects.select_related("site", "tag"):
            selector = definition.selector()
            if not selector:
                continue
            groups.append(
                slo.group_report(
                    selector,
                    window,
                    now,
                    target=definition.target,
                    latency_threshold_ms=definition.latency_threshold_ms,
                    latency_target=definition.latency_target,
                    name=definition.name,
                )
            )
    groups.sort(key=slo.worst_first)
    return {
        "window": window,
        "start": _iso(report.start_s),
        "end": _iso(report.end_s),
        "count": len(report.items),
        "items": report.items,
        "groups": groups,
    }


@router.get(
    "/slo",
    response={200: SloReport, 422: ErrorOut},
    summary="SLO report: every device (worst budget first) and the group SLOs",
)
def slo_report(request: HttpRequest, query: Query[SloQuery]) -> HttpResponse:
    group = _group_or_422(query.group) if query.group else None
    if query.target is not None and group is None:
        raise invalid("target", "target applies to a group: give group= too")
    return json_response(slo_table(query.window, group, query.target, timezone.now()))


class DeviceSloWindow(SloFigures):
    window: str
    start: datetime
    end: datetime


class DeviceSlo(Schema):
    id: int
    name: str
    target: float
    windows: list[DeviceSloWindow]


@router.get(
    "/devices/{device_id}/slo",
    response={200: DeviceSlo, 404: ErrorOut},
    summary="One device's availability against its target, budget and burn rates per window",
)
def device_slo(request: HttpRequest, device_id: int) -> HttpResponse:
    get_object_or_404(Device.objects.only("pk"), pk=device_id)
    now = timezone.now()
    windows: list[dict[str, Any]] = []
    target = slo.DEFAULT_TARGET
    name = ""
    for window in slo.WINDOW_NAMES:
        # Burn rates do not depend on the window: computed once, with the first.
        report = slo.device_report(window, now, device_ids=[device_id], with_burn=not windows)
        item = dict(report.items[0])
        if windows:
            item["burn_rates"] = windows[0]["burn_rates"]
            item["exhausted_in_s"] = slo.exhaustion(
                item["budget_remaining_pct"],
                window_s=report.end_s - report.start_s,
                burn=item["burn_rates"].get("1h"),
            )
        target, name = item.pop("target"), item.pop("name")
        for key in ("id", "kind", "site"):
            item.pop(key)
        windows.append(
            {
                "window": window,
                "start": _iso(report.start_s),
                "end": _iso(report.end_s),
                "target": target,
                **item,
            }
        )
    return json_response({"id": device_id, "name": name, "target": target, "windows": windows})


class HistoryQuery(Schema):
    start: Timestamp | None = Field(None, description="Default: 24 hours before end")
    end: Timestamp | None = Field(None, description="Default: now")
    step: int | None = Field(
        None,
        ge=1,
        le=86400,
        description=(
            "Seconds per point (default: the finest that keeps ≤ 1,000 points). Under 60 "
            "reads raw samples, multiples of 3600 the 1-hour rollups, else 1-minute rollups."
        ),
    )


class HistoryPoint(Schema):
    t: datetime
    checks: int
    ok: int
    availability: float | None
    latency_avg_ms: float | None
    latency_max_ms: float | None
    latency_p95_ms: float | None = Field(description="Histogram bucket bound for rollups")


class History(Schema):
    source: Literal["raw", "1m", "1h"]
    step_s: int
    start: datetime
    end: datetime
    items: list[HistoryPoint]


@router.get(
    "/devices/{device_id}/history",
    response={200: History, 404: ErrorOut, 422: ErrorOut},
    summary="A device's checks, availability and latency per step (≤ 1,000 points)",
)
def device_history(
    request: HttpRequest, device_id: int, query: Query[HistoryQuery]
) -> HttpResponse:
    end: datetime = query.end or timezone.now()
    start: datetime = query.start or end - DEFAULT_HISTORY_RANGE
    if start >= end:
        raise invalid("start", "start must be before end")
    if end - start > MAX_HISTORY_RANGE:
        raise invalid("start", "the range from start to end may be at most 400 days")
    start_s, end_s = int(start.timestamp()), math.ceil(end.timestamp())
    step = query.step or slo.auto_step(start_s, end_s)
    points = math.ceil((end_s - start_s) / step)
    if points > slo.MAX_POINTS:
        raise invalid(
            "step",
            f"{points} points: at most {slo.MAX_POINTS}; use a step of at least "
            f"{math.ceil((end_s - start_s) / slo.MAX_POINTS)} s",
        )
    get_object_or_404(Device.objects.only("pk"), pk=device_id)
    history = slo.device_history(device_id, start_s, end_s, step)
    for item in history["items"]:
        item["t"] = _iso(item["t"])
    return json_response(
        {
            "source": history["source"],
            "step_s": step,
            "start": _iso(start_s),
            "end": _iso(end_s),
            "items": history["items"],
        }
    )


class BurndownQuery(Schema):
    window: WindowName = "30d"


class BurndownPoint(Schema):
    t: datetime
    remaining_pct: float | None


@router.get(
    "/devices/{device_id}/slo/burndown",
    response={200: list[BurndownPoint], 404: ErrorOut, 422: ErrorOut},
    summary="Error budget remaining through the window (the SLO page's burn-down chart)",
)
def device_burndown(
    request: HttpRequest, device_id: int, query: Query[BurndownQuery]
) -> HttpResponse:
    devices = slo.load_devices([device_id])
    if not devices:
        get_object_or_404(Device.objects.only("pk"), pk=device_id)
    series = slo.burndown(devices[0], query.window, timezone.now())
    for point in series:
        point["t"] = _iso(point["t"])
    return HttpResponse(json.dumps(series), content_type="application/json")
