"""Response shapes, for the OpenAPI schema and for the small endpoints' validation.

The device list builds its dicts directly (see listing.py) and returns them unvalidated
for speed; :class:`DeviceItem` still documents them, and a test checks they agree.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ninja import Field, Schema

from resourcemonitor.inventory.models import CheckMethod, Kind
from resourcemonitor.monitoring.status import Status


class DeviceItem(Schema):
    id: int
    name: str
    address: str
    kind: Kind
    site: str | None = Field(description="Site name")
    tags: list[str]
    parent_id: int | None
    parent_name: str | None
    status: Status = Field(description="Effective status: unknown when the data is stale")
    stale: bool = Field(description="No check for longer than max(3 * interval, 30 s)")
    last_known_status: Status | None = Field(
        description="The status the collector last stored, even when stale; null if never"
    )
    since: datetime | None = Field(description="When the stored status began")
    last_check_at: datetime | None
    latency_ms: float | None
    last_error: str | None
    flapping: bool
    check_method: CheckMethod
    check_interval_s: float
    enabled: bool


class DeviceList(Schema):
    count: int = Field(description="Devices matching the filters, before limit/offset")
    now: datetime = Field(description="Server time of this answer: pass it as changed_since")
    total_devices: int | None = Field(
        None,
        description=(
            "With changed_since only: every device in the inventory, so a client holding "
            "the full list can tell that some were deleted and reload"
        ),
    )
    items: list[DeviceItem]


class CheckOut(Schema):
    method: CheckMethod
    port: int | None
    path: str
    tls: bool
    expect_status: int
    body_match: str
    interval_s: float
    timeout_s: float
    fail_threshold: int
    recover_threshold: int
    latency_threshold_ms: float | None


class EventOut(Schema):
    id: int
    at: datetime
    device_id: int
    device_name: str
    from_status: Status
    to_status: Status
    message: str


class DeviceDetail(DeviceItem):
    check: CheckOut
    slo_target: float = Field(description="Availability target, percent")
    children_count: int
    recent_events: list[EventOut]


class SampleOut(Schema):
    t: datetime
    ok: bool
    latency_ms: float | None
    error: str | None


class SampleList(Schema):
    start: datetime
    end: datetime
    truncated: bool = Field(description="More samples in the range than limit: the newest kept")
    items: list[SampleOut]


class LatencyPoint(Schema):
    t: datetime = Field(description="Start of the one-minute bucket")
    count: int
    ok: int
    latency_avg_ms: float | None
    latency_max_ms: float | None


class LatencySeries(Schema):
    resolution_s: int
    start: datetime
    end: datetime
    items: list[LatencyPoint]


class EventList(Schema):
    items: list[EventOut]


class CollectorOut(Schema):
    alive: bool
    last_seen_at: datetime | None
    instances: int = Field(description="Collectors with a fresh heartbeat")
    info: dict[str, Any] = Field(description="The freshest collector heartbeat's own report")


class SummaryOut(Schema):
    now: datetime
    counts: dict[str, int] = Field(description="Devices per effective status, all six keys")
    total: int
    problems: int
    stale: int
    flapping: int
    collector: CollectorOut


class ErrorOut(Schema):
    detail: Any
