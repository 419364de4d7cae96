"""Pushed results (HTTP ``POST /api/v1/ingest`` and MQTT): validate, then record.

The one place that turns a device's own report into samples, a state and events. It runs
the collector's pure state machine (``collector.state.TrackedState``) on the stored
``DeviceState`` and writes through the collector's write path (``storage.write_batch``),
so a push device goes ``down`` after ``fail_threshold`` failed reports and recovers after
``recover_threshold`` good ones, exactly like a probed one.

Only ``check_method=push`` devices accept reports: the collector holds the live state of
every probed device in memory and would overwrite anything written behind its back.

A push device that stops reporting goes ``down`` once it has been silent for longer than
``check_interval_s x fail_threshold`` (``mark_silent_push_devices``, run periodically by
the collector). A device that never reported stays ``unknown``, as healthchecks.io keeps
a new check "new" until its first ping.

Limits, on purpose:

- ``metrics`` (names → finite numbers) are stored as ``DeviceMetric`` rows at the report's
  time (``monitoring.metricstore``), in the same transaction as the sample. MQTT telemetry
  (``record_telemetry``) stores metrics only: no sample, no state change, and any check
  method is accepted (a pinged device may still publish its CPU).
- The flap history is read and written with the state row (``DeviceState.flap_history``),
  so a push device is weighed over its last 21 reports, across requests and messages.
- A report older than the device's last applied one is kept as a sample but does not move
  the state (MQTT may deliver out of order; a retried batch must not count twice).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from resourcemonitor.inventory.models import CheckMethod, Device
from resourcemonitor.monitoring.collector.state import DOWNISH, Topology, TrackedState
from resourcemonitor.monitoring.metricstore import MetricRow, rows_for, write_metrics
from resourcemonitor.monitoring.models import DeviceState
from resourcemonitor.monitoring.probes.base import ProbeResult
from resourcemonitor.monitoring.status import Status
from resourcemonitor.monitoring.storage import (
    STATE_COLUMNS,
    Batch,
    EventRow,
    SampleRow,
    StateRow,
    write_batch,
)

MAX_BATCH = 1000
MAX_METRICS = 64
MAX_METRIC_NAME = 100
MAX_ERROR_TEXT = 300
MAX_DEVICE_NAME = 200
# A latency above an hour is a unit mistake (seconds vs ms), not a measurement.
MAX_LATENCY_MS = 3_600_000.0
# Clocks drift; a report from further away than this is a mistake, not a measurement.
MAX_PAST = timedelta(days=1)
MAX_FUTURE = timedelta(minutes=5)
# Sample.error holds a short code; the words go to DeviceState.last_error.
PUSHED_FAILURE = "pushed"
NO_REPORT = "no_report"
REPORT_FIELDS = frozenset({"device", "ok", "latency_ms", "ts", "metrics", "error"})


class IngestError(ValueError):
    """A bad report: ``field`` names what is wrong (``items[3].latency_ms``)."""

    def __init__(self, field: str, message: str, *, status: int = 422) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.status = status


@dataclass(frozen=True, slots=True)
class Report:
    """One validated report from a device."""

    device: int | str
    ok: bool
    latency_ms: float | None = None
    ts: datetime | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    error: str = ""


@dataclass(slots=True)
class IngestResult:
    """What ``record_reports`` did."""

    accepted: int = 0
    samples: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    events: int = 0
    metrics: int = 0
    statuses: dict[str, str] = field(default_factory=dict)


# -- validation, pure --------------------------------------------------------------------


def _parse_ts(value: Any, where: str, now: datetime) -> datetime:
    if not isinstance(value, str):
        raise IngestError(where, "must be an ISO 8601 timestamp string")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise IngestError(where, f"not an ISO 8601 timestamp: {value[:40]!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # stored and bucketed in UTC
    parsed = parsed.astimezone(UTC)
    if parsed < now - MAX_PAST or parsed > now + MAX_FUTURE:
        raise IngestError(where, "more than a day in the past or 5 minutes in the future")
    return parsed


def _parse_metrics(value: Any, where: str) -> dict[str, float]:
    if not isinstance(value, dict):
        raise IngestError(where, "must be an object of name → number")
    if len(value) > MAX_METRICS:
        raise IngestError(where, f"at most {MAX_METRICS} metrics per report")
    metrics: dict[str, float] = {}
    for name, number in value.items():
        if not name or len(name) > MAX_METRIC_NAME:
            raise IngestError(where, f"metric names are 1 to {MAX_METRIC_NAME} characters")
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise IngestError(f"{where}.{name}", "must be a number")
        if not math.isfinite(number):
            raise IngestError(f"{where}.{name}", "must be a finite number")
        metrics[name] = float(number)
    return metrics


def parse_report(data: Any, *, where: str = "", now: datetime | None = None) -> Report:
    """Validate one report; raise ``IngestError`` naming the field at fault."""
    prefix = f"{where}." if where else ""
    now = now or timezone.now()
    if not isinstance(data, dict):
        raise IngestError(where or "body", "must be a JSON object")
    unknown = sorted(set(data) - REPORT_FIELDS)
    if unknown:
        raise IngestError((prefix + (unknown[0] or '""'))[:100], "unknown field")
    device = data.get("device")
    if isinstance(device, bool) or not isinstance(device, int | str):
        raise IngestError(f"{prefix}device", "required: a device name or id")
    if isinstance(device, str) and not 0 < len(device) <= MAX_DEVICE_NAME:
        raise IngestError(f"{prefix}device", f"a name is 1 to {MAX_DEVICE_NAME} characters")
    if isinstance(device, int) and device < 1:
        raise IngestError(f"{prefix}device", "an id is a positive integer")
    ok = data.get("ok")
    if not isinstance(ok, bool):
        raise IngestError(f"{prefix}ok", "required: true or false")
    latency = data.get("latency_ms")
    if latency is not None:
        if isinstance(latency, bool) or not isinstance(latency, int | float):
            raise IngestError(f"{prefix}latency_ms", "must be a number of milliseconds")
        if not (math.isfinite(latency) and 0 <= latency <= MAX_LATENCY_MS):
            raise IngestError(f"{prefix}latency_ms", f"must be between 0 and {MAX_LATENCY_MS:g}")
        latency = float(latency)
    ts = data.get("ts")
    parsed_ts = None if ts is None else _parse_ts(ts, f"{prefix}ts", now)
    metrics = data.get("metrics")
    parsed_metrics = {} if metrics is None else _parse_metrics(metrics, f"{prefix}metrics")
    error = data.get("error", "")
    if not isinstance(error, str):
        raise IngestError(f"{prefix}error", "must be a string")
    return Report(device, ok, latency, parsed_ts, parsed_metrics, error[:MAX_ERROR_TEXT])


def parse_payload(data: Any, *, now: datetime | None = None) -> list[Report]:
    """One report (an object) or a batch (``{"items": [...]}`` or a bare array)."""
    now = now or timezone.now()
    if isinstance(data, dict) and "items" in data:
        if set(data) != {"items"}:
            extra = sorted(set(data) - {"items"})[0]
            raise IngestError((extra or '""')[:100], "unknown field beside items")
        data = data["items"]
        if not isinstance(data, list):
            raise IngestError("items", "must be an array of reports")
    if isinstance(data, list):
        where = "items"
        if not data:
            raise IngestError(where, "an empty batch")
        if len(data) > MAX_BATCH:
            raise IngestError(where, f"at most {MAX_BATCH} reports per request", status=413)
        return [parse_report(item, where=f"{where}[{i}]", now=now) for i, item in enumerate(data)]
    return [parse_report(data, now=now)]


# -- recording ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PushDevice:
    """What recording needs of a device (it satisfies the state machine's Thresholds)."""

    id: int
    name: str
    check_method: str
    enabled: bool
    fail_threshold: int
    recover_threshold: int
    latency_threshold_ms: float | None
    check_interval_s: float


_PUSH_DEVICE_COLUMNS = (
    "id",
    "name",
    "check_method",
    "enabled",
    "fail_threshold",
    "recover_threshold",
    "latency_threshold_ms",
    "check_interval_s",
)


def _resolve_devices(reports: Sequence[Report]) -> dict[int | str, PushDevice]:
    ids = {r.device for r in reports if isinstance(r.device, int)}
    names = {r.device for r in reports if isinstance(r.device, str)}
    found: dict[int | str, PushDevice] = {}
    query = Device.objects.none()
    if ids:
        query = query | Device.objects.filter(id__in=ids)
    if names:
        query = query | Device.objects.filter(name__in=names)
    for row in query.values_list(*_PUSH_DEVICE_COLUMNS):
        device = PushDevice(*row)
        found[device.id] = device
        found[device.name] = device
    return found


def _check_devices(
    reports: Sequence[Report], devices: Mapping[int | str, PushDevice], *, batch: bool
) -> None:
    for index, report in enumerate(reports):
        where = f"items[{index}].device" if batch else "device"
        device = devices.get(report.device)
        if device is None:
            raise IngestError(where, f"unknown device {report.device!r}", status=404)
        if device.check_method != CheckMethod.PUSH:
            raise IngestError(
                where,
                f"device {device.name!r} is checked by {device.check_method}, not push: "
                "set its check method to push to accept reports",
                status=409,
            )
        if not device.enabled:
            raise IngestError(where, f"device {device.name!r} is paused", status=409)


def _load_states(device_ids: Iterable[int], now: datetime) -> dict[int, TrackedState]:
    """The stored states, locked until the transaction ends (PostgreSQL; SQLite has one
    writer anyway), so two requests for one device apply one after the other."""
    device_ids = list(device_ids)
    rows = (
        DeviceState.objects.select_for_update()
        .filter(device_id__in=device_ids)
        .order_by("device_id")  # one lock order: no deadlock between two batches
        .values(*STATE_COLUMNS)
    )
    states = {row["device_id"]: TrackedState.from_stored(row) for row in rows}
    for device_id in device_ids:
        states.setdefault(device_id, TrackedState.new(now))
    return states


def _load_topology() -> tuple[Topology, dict[int, str]]:
    """Parents of every device and the down-ish ones: only needed when a report failed."""
    parents: dict[int, int | None] = {}
    names: dict[int, str] = {}
    for device_id, parent_id, name in Device.objects.values_list("id", "parent_id", "name"):
        parents[device_id] = parent_id
        names[device_id] = name
    statuses = dict(
        DeviceState.objects.filter(status__in=DOWNISH, device__enabled=True).values_list(
            "device_id", "status"
        )
    )
    return Topology(parents, names), statuses


def _event(device_id: int, change: Any) -> EventRow:
    return EventRow(device_id, change.at, change.from_status, change.to_status, change.message)


def record_reports(
    *, reports: Sequence[Report], now: datetime | None = None, batch: bool = False
) -> IngestResult:
    """Apply validated reports to their devices and write them in one transaction.

    All or nothing: an unknown or non-push device rejects the whole call
    (``IngestError``), before anything is written. Reports are applied in time order.
    """
    now = now or timezone.now()
    devices = _resolve_devices(reports)
    _check_devices(reports, devices, batch=batch)
    ordered = sorted(
        ((report.ts or now, index, devices[report.device]) for index, report in enumerate(reports)),
        key=lambda item: (item[0], item[1]),
    )
    result = IngestResult()
    with transaction.atomic():
        states = _load_states({device.id for _, _, device in ordered}, now)
        topology: tuple[Topology, dict[int, str]] | None = None
        out = Batch()
        metric_rows: list[MetricRow] = []
        seen_keys: set[tuple[int, int]] = set()
        for at, index, device in ordered:
            report = reports[index]
            state = states[device.id]
            t_ms = int(at.timestamp() * 1000)
            result.accepted += 1
            if (t_ms, device.id) in seen_keys:
                result.duplicates += 1  # same device, same millisecond: one sample
                continue
            seen_keys.add((t_ms, device.id))
            metric_rows.extend(rows_for(t_ms, device.id, dict(report.metrics)))
            probe_result = _as_probe_result(report)
            latency_us = None
            if report.ok and report.latency_ms is not None:
                latency_us = round(report.latency_ms * 1000.0)
            sample = SampleRow(t_ms, device.id, report.ok, latency_us, probe_result.error)
            if state.last_check_at is not None and at <= state.last_check_at:
                result.out_of_order += 1
                out.add(sample, None)
                continue
            blocked_by = None
            if not report.ok:
                if topology is None:
                    topology = _load_topology()
                tree, statuses = topology
                blocked_by = tree.blocked_by(device.id, statuses.get)
            change = state.apply(probe_result, device, now=at, blocked_by=blocked_by)
            events = (_event(device.id, change),) if change is not None else ()
            if topology is not None:
                topology[1][device.id] = state.status
            out.add(sample, StateRow.of(device.id, state), events)
        written = write_batch(out)
        result.metrics = write_metrics(metric_rows)
    result.samples = written.samples_inserted
    result.duplicates += written.samples_ignored
    result.events = written.events
    result.statuses = {devices[r.device].name: states[devices[r.device].id].status for r in reports}
    return result


def record_telemetry(
    items: Sequence[tuple[int | str, datetime, Mapping[str, float]]],
) -> tuple[int, list[int | str]]:
    """Store metrics-only reports ``(device name or id, at, metrics)`` (MQTT telemetry).

    Returns the rows stored and the devices that are unknown (their metrics are dropped;
    the caller counts them as bad). Paused devices are skipped too: nobody reads them.
    """
    wanted = [device for device, _, _ in items]
    names = {d for d in wanted if isinstance(d, str)}
    ids = {d for d in wanted if isinstance(d, int)}
    found: dict[int | str, int] = {}
    query = Device.objects.none()
    if ids:
        query = query | Device.objects.filter(id__in=ids)
    if names:
        query = query | Device.objects.filter(name__in=names)
    for device_id, name, enabled in query.values_list("id", "name", "enabled"):
        if enabled:
            found[device_id] = found[name] = device_id
    rows: list[MetricRow] = []
    unknown: list[int | str] = []
    for device, at, metrics in items:
        known = found.get(device)
        if known is None:
            unknown.append(device)
            continue
        rows.extend(rows_for(int(at.timestamp() * 1000), known, dict(metrics)))
    return write_metrics(rows), unknown


def _as_probe_result(report: Report) -> ProbeResult:
    if report.ok:
        return ProbeResult(True, report.latency_ms)
    return ProbeResult(False, None, PUSHED_FAILURE, report.error or "reported a failure")


# -- silence: the heartbeat half ---------------------------------------------------------


def silence_limit(device: PushDevice | Device) -> timedelta:
    """How long a push device may stay silent before it is ``down``."""
    return timedelta(seconds=device.check_interval_s * device.fail_threshold)


def mark_silent_push_devices(*, now: datetime | None = None) -> list[str]:
    """Push devices silent for too long go ``down``; returns their names.

    One query for the candidates, one transaction for the changes. The transition goes
    through the state machine's ``set_status`` (and the same write path), with one failed
    sample at the moment of the change so availability counts the silence.
    """
    now = now or timezone.now()
    rows = (
        Device.objects.filter(
            check_method=CheckMethod.PUSH,
            enabled=True,
            state__last_check_at__isnull=False,
        )
        .exclude(state__status__in=[*DOWNISH, Status.MAINTENANCE])
        .values_list(*_PUSH_DEVICE_COLUMNS, "state__last_check_at")
    )
    silent: list[tuple[PushDevice, datetime]] = []
    for *columns, last_check_at in rows:
        device = PushDevice(*columns)
        if last_check_at + silence_limit(device) < now:
            silent.append((device, last_check_at))
    if not silent:
        return []
    with transaction.atomic():
        states = _load_states([device.id for device, _ in silent], now)
        tree, statuses = _load_topology()
        out = Batch()
        for device, last_check_at in silent:
            state = states[device.id]
            if state.status in DOWNISH or state.last_check_at != last_check_at:
                continue  # a report arrived meanwhile
            seconds = (now - last_check_at).total_seconds()
            text = f"no report for {seconds:.0f} s (expected every {device.check_interval_s:g} s)"
            state.last_error = text[:MAX_ERROR_TEXT]
            state.consecutive_failures = max(state.consecutive_failures, device.fail_threshold)
            state.consecutive_successes = 0
            state.latency_ms = None
            blocked_by = tree.blocked_by(device.id, statuses.get)
            if blocked_by is not None:
                change = state.set_status(
                    Status.UNREACHABLE, f"{text}; parent {blocked_by} is down", now
                )
            else:
                change = state.set_status(Status.DOWN, text, now)
            state.changed_at = now
            statuses[device.id] = state.status
            sample = SampleRow(int(now.timestamp() * 1000), device.id, False, None, NO_REPORT)
            events = (_event(device.id, change),) if change else ()
            out.add(sample, StateRow.of(device.id, state), events)
        write_batch(out)
    return [device.name for device, _ in silent]
