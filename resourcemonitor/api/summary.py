"""/api/v1/summary: devices per status, and whether the collector is reporting."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from django.db import connections
from django.http import HttpRequest
from django.utils import timezone
from ninja import Field, Query, Router, Schema

from resourcemonitor.api.listing import fetch_rows, row_clock
from resourcemonitor.api.params import isoformat
from resourcemonitor.api.schemas import ErrorOut, SummaryOut
from resourcemonitor.inventory.models import Device
from resourcemonitor.monitoring import slo
from resourcemonitor.monitoring.freshness import effective_status
from resourcemonitor.monitoring.models import GroupSlo, Heartbeat
from resourcemonitor.monitoring.status import PROBLEM_STATUSES, STATUS_META

router = Router(tags=["summary"])


class GroupSloItem(Schema):
    site: str | None
    kind: str | None = Field(description="null: the whole site")
    group: str = Field(description="Selector, as the SLO API's group=")
    name: str
    defined: bool = Field(description="True when a group SLO is defined for exactly this group")
    devices: int
    target: float = Field(description="Availability target, percent")
    checks: int
    failed: int
    sli: float | None = Field(description="Availability, percent; null when not measured")
    budget_remaining_pct: float | None


class GroupSloOut(Schema):
    window: str
    start: datetime
    end: datetime
    groups: list[GroupSloItem]


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


class GroupSloQuery(Schema):
    window: Literal["1h", "24h", "7d", "30d", "month"] = Field(
        "30d", description="Rolling 1h/24h/7d/30d or the calendar month"
    )


def group_rollups(window: str, now: datetime) -> dict[str, Any]:
    """Every site, and every kind within each site, with its availability against its
    SLO: the checks of its devices counted as one stream, as ``slo.group_report`` does,
    from one device report (one pass over the rollups) rather than one report per group.
    A group SLO defined for exactly that site (or site and kind) gives the target; else
    the strictest target among its devices."""
    report = slo.device_report(window, now, with_burn=False)
    defined = {
        definition.selector(): definition
        for definition in GroupSlo.objects.select_related("site", "tag")
    }
    totals: dict[tuple[str | None, str | None], tuple[slo.Counts, list[float], list[int]]] = {}
    for item in report.items:
        counts = slo.Counts(checks=item["checks"], ok=item["checks"] - item["failed"])
        for key in ((item["site"], None), (item["site"], item["kind"])):
            total, targets, devices = totals.setdefault(key, (slo.Counts(), [], []))
            total.add(counts)
            targets.append(item["target"])
            devices.append(item["id"])
    groups = []
    for (site, kind), (total, targets, devices) in totals.items():
        parts = (f"site:{site}" if site else "", f"kind:{kind}" if kind else "")
        selector = ",".join(part for part in parts if part)
        definition = defined.get(selector) if site else None
        target = definition.target if definition else min(targets)
        figures = slo.budget_figures(
            total,
            target,
            valid_s=0,
            interval_s=None,
            window_s=report.end_s - report.start_s,
            current_burn=None,
        )
        groups.append(
            {
                "site": site,
                "kind": kind,
                "group": selector,
                "name": definition.name if definition else selector or "No site",
                "defined": definition is not None,
                "devices": len(devices),
                "target": target,
                "checks": figures["checks"],
                "failed": figures["failed"],
                "sli": figures["sli"],
                "budget_remaining_pct": figures["budget_remaining_pct"],
            }
        )
    groups.sort(key=lambda group: (group["site"] or "", group["kind"] or ""))
    return {
        "window": window,
        "start": isoformat(datetime.fromtimestamp(report.start_s, tz=UTC)),
        "end": isoformat(datetime.fromtimestamp(report.end_s, tz=UTC)),
        "groups": groups,
    }


@router.get(
    "/summary/groups",
    response={200: GroupSloOut, 422: ErrorOut},
    summary="Each site, and each kind within it, with its availability against its SLO",
)
def summary_groups(request: HttpRequest, query: Query[GroupSloQuery]) -> dict[str, Any]:
    return group_rollups(query.window, timezone.now())
