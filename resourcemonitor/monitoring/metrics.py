"""What /metrics says about the network and the monitor itself, read from storage.

The text is written here directly, in the Prometheus text exposition format (0.0.4),
rather than through prometheus-client's metric objects: at 10,000 devices that is 30,000
lines a scrape, and formatting them through sample objects costs several times the one
``values_list()`` query they come from. prometheus-client still serves the web process's
own metrics (``resourcemonitor.api.metrics``); the two never share a metric name.

Cardinality, per scrape (documented in docs/operations.md):

- per device: ``resmon_device_up`` (1 series), ``resmon_device_status`` (1: only the
  current status is exported, with value 1; the previous one goes stale), and
  ``resmon_device_latency_seconds`` (1, while the device answers). 3 series a device.
- the latency histogram is per device kind (8 kinds x 18 series) by default; per device
  (18 series a device: 180,000 at 10,000 devices) only with
  ``RESMON_METRICS_DEVICE_HISTOGRAMS=true``.
- per running component (web workers, collectors, ingesters, simulator): about 15.
- per device with recent metrics (SNMP, push telemetry): at most 7 fixed families
  (``monitoring.metricstore.EXPORTED``); names devices push freely are never exported.

Everything is O(devices): one query over devices and their state, one over the current
hour's rollups, one over the last minute of failed samples, one over heartbeats.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connections
from django.db.models import Count, Sum
from django.utils import timezone

from resourcemonitor.api.listing import fetch_rows, row_clock
from resourcemonitor.inventory.models import Device
from resourcemonitor.monitoring import metricstore
from resourcemonitor.monitoring.freshness import effective_status
from resourcemonitor.monitoring.models import (
    HISTOGRAM_COLUMNS,
    LATENCY_BUCKETS_MS,
    Heartbeat,
    Rollup,
    Sample,
)
from resourcemonitor.monitoring.status import STATUS_META, Status

# Heartbeats older than this are left out of /metrics entirely (a restarted process has
# a new instance name; its old row would otherwise be exported forever).
COMPONENT_HORIZON = timedelta(hours=1)
# "Recent" failed checks, by error class, are counted over this window.
FAILURE_WINDOW_S = 60
HOUR_S = 3600

# The `le` labels of the latency histogram, in seconds, formatted once.
_LE = [f"{ms / 1000:g}" for ms in LATENCY_BUCKETS_MS] + ["+Inf"]


def escape_label(value: object) -> str:
    """A label value as the text format wants it: backslash, quote and newline escaped."""
    text = str(value)
    if "\\" in text or '"' in text or "\n" in text:
        text = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return text


def number(value: float) -> str:
    """A sample value: integers without a fraction, NaN and infinities as Prometheus spells them."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def labels(**pairs: object) -> str:
    return "{" + ",".join(f'{key}="{escape_label(value)}"' for key, value in pairs.items()) + "}"


class Exposition:
    """Collects lines family by family: HELP and TYPE once, then the samples."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, label_text: str, value: float) -> None:
        self.lines.append(f"{name}{label_text} {number(value)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n" if self.lines else ""


# -- devices ---------------------------------------------------------------------------

_DEVICE_FIELDS = (
    "id",
    "name",
    "kind",
    "site__name",
    "check_interval_s",
    "state__status",
    "state__last_check_at",
    "state__latency_ms",
)


def device_rows(using: str = "default") -> list[tuple[Any, ...]]:
    qs = Device.objects.using(using).filter(enabled=True).order_by("name")
    return fetch_rows(qs, _DEVICE_FIELDS)


def write_devices(out: Exposition, rows: list[tuple[Any, ...]], now: datetime, vendor: str) -> None:
    """Per-device gauges and the fleet's counts by status (stale devices count as unknown)."""
    read_time, clock_now, _ = row_clock(vendor, now, None)
    counts = dict.fromkeys((str(status) for status in Status), 0)
    up_lines: list[str] = []
    status_lines: list[str] = []
    latency_lines: list[str] = []
    for _, name, kind, site, interval_s, status, last_check_at, latency_ms in rows:
        shown = effective_status(status, read_time(last_check_at), interval_s, clock_now).status
        counts[shown] = counts.get(shown, 0) + 1
        device = escape_label(name)
        up_lines.append(
            f'resmon_device_up{{device="{device}",kind="{kind}",site="{escape_label(site or "")}"}}'
            f" {STATUS_META[shown].metric_value}"
        )
        status_lines.append(f'resmon_device_status{{device="{device}",status="{shown}"}} 1')
        if latency_ms is not None and shown not in ("unknown", "down", "unreachable"):
            latency_lines.append(
                f'resmon_device_latency_seconds{{device="{device}"}} {latency_ms / 1000.0!r}'
            )

    out.family(
        "resmon_devices",
        "gauge",
        "Enabled devices by status (a device with stale data counts as unknown).",
    )
    for status, count in counts.items():
        out.sample("resmon_devices", labels(status=status), count)
    out.family(
        "resmon_device_up",
        "gauge",
        "1 while the device is usable (up, degraded or in maintenance), else 0.",
    )
    out.lines.extend(up_lines)
    out.family(
        "resmon_device_status",
        "gauge",
        "The device's current status; only the current one is exported, with value 1.",
    )
    out.lines.extend(status_lines)
    out.family(
        "resmon_device_latency_seconds",
        "gauge",
        "Latency of the device's last successful check, in seconds.",
    )
    out.lines.extend(latency_lines)


# -- latency histogram -------------------------------------------------------------------


def _histogram_lines(
    out: Exposition, label_text: str, counts: Iterable[int], total: int, sum_ms: float
) -> None:
    running = 0
    inner = label_text[1:-1]
    prefix = f"{inner}," if inner else ""
    for le, count in zip(_LE, counts, strict=True):
        running += count
        if le == "+Inf":
            running = total  # the last column is everything slower; +Inf is all of them
        out.lines.append(f'resmon_check_latency_seconds_bucket{{{prefix}le="{le}"}} {running}')
    out.sample("resmon_check_latency_seconds_sum", label_text, sum_ms / 1000.0)
    out.sample("resmon_check_latency_seconds_count", label_text, total)


def write_latency_histogram(
    out: Exposition, now: datetime, *, per_device: bool, using: str = "default"
) -> None:
    """Check latencies of the current hour, from the 1-hour rollups.

    The counts are a counter that starts again from zero at the top of each hour;
    Prometheus's ``rate()`` and ``increase()`` read that as a counter reset, which it is.
    The hour row grows as the collector's writer closes minutes (it holds the open ones in
    memory), so the counts trail the checks by about a minute; a counter may lag, and
    scraping the raw samples for the open minutes on every scrape would not pay.
    """
    hour = int(now.timestamp()) // HOUR_S * HOUR_S
    qs = Rollup.objects.using(using).filter(resolution=HOUR_S, bucket=hour)
    out.family(
        "resmon_check_latency_seconds",
        "histogram",
        "Latency of successful checks in the current hour, up to about a minute ago "
        "(restarts at each hour).",
    )
    sums = {column: Sum(column) for column in HISTOGRAM_COLUMNS}
    if per_device:
        rows = qs.order_by("device__name").values_list(
            "device__name", "latency_count", "latency_sum_ms", *HISTOGRAM_COLUMNS
        )
        for name, total, sum_ms, *buckets in rows:
            _histogram_lines(out, labels(device=name), buckets, total, sum_ms)
        return
    grouped = (
        qs.order_by()
        .values("device__kind")
        .annotate(total=Sum("latency_count"), sum_ms=Sum("latency_sum_ms"), **sums)
        .order_by("device__kind")
    )
    for row in grouped:
        buckets = [row[column] or 0 for column in HISTOGRAM_COLUMNS]
        _histogram_lines(
            out, labels(kind=row["device__kind"]), buckets, row["total"] or 0, row["sum_ms"] or 0.0
        )


def write_recent_failures(out: Exposition, now: datetime, using: str = "default") -> None:
    """Failed checks of the last minute by error class (``timeout``, ``refused``, ``http_503``…).

    Reads the raw samples of one minute: the table's time-first key makes that a range
    scan of about devices x 60 / interval rows.
    """
    since_ms = int(now.timestamp() * 1000) - FAILURE_WINDOW_S * 1000
    rows = (
        Sample.objects.using(using)
        .filter(t__gte=since_ms, ok=False)
        .order_by()
        .values_list("error")
        .annotate(count=Count("*"))
    )
    out.family(
        "resmon_check_failures_last_minute",
        "gauge",
        "Failed checks in the last 60 seconds, by error class.",
    )
    for error, count in sorted(rows, key=lambda row: str(row[0])):
        out.sample("resmon_check_failures_last_minute", labels(error=error or "error"), count)


# -- components --------------------------------------------------------------------------

# Collector heartbeat info key → (metric, type, help, divisor to base units). Counters
# end in _total; milliseconds become seconds.
COLLECTOR_INFO: tuple[tuple[str, str, str, str, float], ...] = (
    ("checks_total", "resmon_collector_checks_total", "counter", "Checks done.", 1.0),
    (
        "errors_total",
        "resmon_collector_errors_total",
        "counter",
        "Collector errors (probe crashes, failed writes, failed feed polls).",
        1.0,
    ),
    (
        "skipped_total",
        "resmon_collector_skipped_checks_total",
        "counter",
        "Check slots skipped because the previous check was still running or late.",
        1.0,
    ),
    (
        "checks_per_s",
        "resmon_collector_checks_per_second",
        "gauge",
        "Checks per second over the last heartbeat period.",
        1.0,
    ),
    (
        "lag_p50_ms",
        "resmon_collector_schedule_lag_p50_seconds",
        "gauge",
        "Median delay between a check's due time and its start.",
        1000.0,
    ),
    (
        "lag_p99_ms",
        "resmon_collector_schedule_lag_p99_seconds",
        "gauge",
        "99th percentile delay between a check's due time and its start.",
        1000.0,
    ),
    (
        "write_ms",
        "resmon_collector_write_duration_seconds",
        "gauge",
        "Duration of the last batch write.",
        1000.0,
    ),
    (
        "queue_depth",
        "resmon_collector_queue_depth",
        "gauge",
        "Results waiting to be written (queued and held).",
        1.0,
    ),
    (
        "spool_batches",
        "resmon_collector_spool_batches",
        "gauge",
        "Batches in the durable spool, waiting for storage to come back.",
        1.0,
    ),
    (
        "spool_bytes",
        "resmon_collector_spool_bytes",
        "gauge",
        "Size of the durable spool on disk.",
        1.0,
    ),
    (
        "spool_oldest_s",
        "resmon_collector_spool_oldest_age_seconds",
        "gauge",
        "Age of the oldest spooled batch (0 when the spool is empty).",
        1.0,
    ),
    (
        "spool_dropped_batches",
        "resmon_collector_spool_dropped_batches_total",
        "counter",
        "Spooled batches dropped because the spool reached RESMON_SPOOL_MAX_MB.",
        1.0,
    ),
    ("devices", "resmon_collector_devices", "gauge", "Devices this collector owns.", 1.0),
    ("in_flight", "resmon_collector_in_flight_checks", "gauge", "Checks in flight.", 1.0),
)


# MQTT ingester heartbeat info (``resmon ingest-mqtt``), the same way.
INGESTER_INFO: tuple[tuple[str, str, str, str, float], ...] = (
    (
        "received_total",
        "resmon_ingester_messages_received_total",
        "counter",
        "MQTT messages received.",
        1.0,
    ),
    (
        "recorded_total",
        "resmon_ingester_results_recorded_total",
        "counter",
        "Pushed check results stored.",
        1.0,
    ),
    (
        "telemetry_total",
        "resmon_ingester_telemetry_messages_total",
        "counter",
        "Telemetry messages received.",
        1.0,
    ),
    (
        "bad_total",
        "resmon_ingester_bad_messages_total",
        "counter",
        "Messages refused (bad topic, JSON or fields).",
        1.0,
    ),
    (
        "reconnects_total",
        "resmon_ingester_reconnects_total",
        "counter",
        "Reconnections to the broker.",
        1.0,
    ),
    ("pending", "resmon_ingester_pending_results", "gauge", "Results not yet written.", 1.0),
    ("connected", "resmon_ingester_connected", "gauge", "1 while connected to the broker.", 1.0),
)


def write_components(out: Exposition, now: datetime, using: str = "default") -> None:
    """Every component seen in the last hour: alive or not, version, start, collector numbers."""
    beats = list(
        Heartbeat.objects.using(using)
        .filter(last_seen_at__gte=now - COMPONENT_HORIZON)
        .exclude(component="deadman")  # the dead-man's switch's claim row, not a process
        .order_by("component", "instance")
    )
    stale_s = settings.RESMON_HEARTBEAT_STALE_S
    out.family(
        "resmon_component_up",
        "gauge",
        "1 while the component's heartbeat is fresh (RESMON_HEARTBEAT_STALE_S), else 0.",
    )
    for beat in beats:
        alive = (now - beat.last_seen_at).total_seconds() <= stale_s
        out.sample(
            "resmon_component_up", labels(component=beat.component, instance=beat.instance), alive
        )
    out.family("resmon_component_info", "gauge", "The version each component runs; always 1.")
    for beat in beats:
        out.sample(
            "resmon_component_info",
            labels(component=beat.component, instance=beat.instance, version=beat.version),
            1,
        )
    out.family(
        "resmon_component_last_heartbeat_timestamp_seconds",
        "gauge",
        "When the component last reported, Unix time.",
    )
    for beat in beats:
        out.sample(
            "resmon_component_last_heartbeat_timestamp_seconds",
            labels(component=beat.component, instance=beat.instance),
            beat.last_seen_at.timestamp(),
        )
    out.family(
        "resmon_component_start_time_seconds", "gauge", "When the component started, Unix time."
    )
    for beat in beats:
        out.sample(
            "resmon_component_start_time_seconds",
            labels(component=beat.component, instance=beat.instance),
            beat.started_at.timestamp(),
        )
    for component, table in (("collector", COLLECTOR_INFO), ("ingester", INGESTER_INFO)):
        reporting = [beat for beat in beats if beat.component == component]
        for key, metric, kind, help_text, divisor in table:
            out.family(metric, kind, help_text)
            for beat in reporting:
                value = (beat.info or {}).get(key)
                if isinstance(value, int | float):  # bools too: connected is 0 or 1
                    out.sample(metric, labels(instance=beat.instance), value / divisor)


# -- SLOs ------------------------------------------------------------------------------

SLO_WINDOW = "30d"
_slo_lock = threading.Lock()
_slo_cache: dict[str, tuple[float, list[str]]] = {}


def reset_slo_cache() -> None:
    with _slo_lock:
        _slo_cache.clear()


def _ratio(percent: float | None) -> float | None:
    return None if percent is None else percent / 100.0


def slo_lines(now: datetime) -> list[str]:
    """Per-device and group SLO figures over 30 days, from ``monitoring.slo``.

    A 30-day report reads 720 hourly rollups a device, far more than a scrape should: the
    lines are kept for ``RESMON_METRICS_SLO_CACHE_S`` (per web process), so most scrapes
    reuse them and Prometheus sees values that move every few minutes, which is as fast
    as a 30-day figure moves.
    """
    from resourcemonitor.monitoring import slo
    from resourcemonitor.monitoring.models import GroupSlo

    out = Exposition()
    report = slo.device_report(SLO_WINDOW, now, with_burn=True)
    window = labels(window=SLO_WINDOW)[1:-1]
    per_device: dict[str, list[str]] = {
        "resmon_device_slo_target_ratio": [],
        "resmon_device_sli_ratio": [],
        "resmon_device_error_budget_remaining_ratio": [],
        "resmon_device_burn_rate": [],
    }
    for item in sorted(report.items, key=lambda item: item["name"]):
        device = f'device="{escape_label(item["name"])}"'
        per_device["resmon_device_slo_target_ratio"].append(
            f"resmon_device_slo_target_ratio{{{device}}} {number(item['target'] / 100.0)}"
        )
        sli = _ratio(item["sli"])
        if sli is not None:
            per_device["resmon_device_sli_ratio"].append(
                f"resmon_device_sli_ratio{{{device},{window}}} {number(sli)}"
            )
        budget = _ratio(item["budget_remaining_pct"])
        if budget is not None:
            per_device["resmon_device_error_budget_remaining_ratio"].append(
                f"resmon_device_error_budget_remaining_ratio{{{device},{window}}} {number(budget)}"
            )
        burn = item["burn_rates"].get("1h")
        if burn is not None:
            per_device["resmon_device_burn_rate"].append(
                f'resmon_device_burn_rate{{{device},window="1h"}} {number(burn)}'
            )
    helps = {
        "resmon_device_slo_target_ratio": "The device's availability target (0.999 = 99.9 %).",
        "resmon_device_sli_ratio": "Share of the device's checks that succeeded in the window.",
        "resmon_device_error_budget_remaining_ratio": (
            "Share of the window's error budget left (negative when overspent)."
        ),
        "resmon_device_burn_rate": "How fast the error budget burns (1 = exactly on budget).",
    }
    for metric, lines in per_device.items():
        out.family(metric, "gauge", helps[metric])
        out.lines.extend(lines)

    groups = []
    for definition in GroupSlo.objects.select_related("site", "tag"):
        selector = definition.selector()
        if selector:
            groups.append(
                slo.group_report(
                    selector,
                    SLO_WINDOW,
                    now,
                    target=definition.target,
                    latency_threshold_ms=definition.latency_threshold_ms,
                    latency_target=definition.latency_target,
                    name=definition.name,
                )
            )
    out.family("resmon_slo_target_ratio", "gauge", "A group SLO's availability target.")
    for group in groups:
        out.sample("resmon_slo_target_ratio", labels(slo=group["name"]), group["target"] / 100.0)
    out.family(
        "resmon_slo_sli_ratio", "gauge", "Share of a group's checks that succeeded in the window."
    )
    for group in groups:
        if group["sli"] is not None:
            out.sample(
                "resmon_slo_sli_ratio",
                labels(slo=group["name"], window=SLO_WINDOW),
                group["sli"] / 100.0,
            )
    out.family(
        "resmon_slo_error_budget_remaining_ratio",
        "gauge",
        "Share of a group SLO's error budget left in the window (negative when overspent).",
    )
    for group in groups:
        if group["budget_remaining_pct"] is not None:
            out.sample(
                "resmon_slo_error_budget_remaining_ratio",
                labels(slo=group["name"], window=SLO_WINDOW),
                group["budget_remaining_pct"] / 100.0,
            )
    out.family("resmon_slo_burn_rate", "gauge", "How fast a group SLO's error budget burns.")
    for group in groups:
        for burn_window, rate in group["burn_rates"].items():
            if rate is not None:
                out.sample(
                    "resmon_slo_burn_rate", labels(slo=group["name"], window=burn_window), rate
                )
    out.family(
        "resmon_slo_latency_sli_ratio",
        "gauge",
        "Share of a group's checks answered within its latency threshold.",
    )
    for group in groups:
        if group.get("latency_sli") is not None:
            out.sample(
                "resmon_slo_latency_sli_ratio",
                labels(slo=group["name"], window=SLO_WINDOW),
                group["latency_sli"] / 100.0,
            )
    return out.lines


def write_slos(out: Exposition, now: datetime, using: str = "default") -> None:
    ttl = settings.RESMON_METRICS_SLO_CACHE_S
    if ttl <= 0:
        return
    with _slo_lock:
        cached = _slo_cache.get(using)
        if cached is None or cached[0] <= time.monotonic():
            cached = (time.monotonic() + ttl, slo_lines(now))
            _slo_cache[using] = cached
    out.lines.extend(cached[1])


# -- the whole text ----------------------------------------------------------------------


def render(*, now: datetime | None = None, using: str = "default") -> str:
    """The storage half of /metrics as exposition text."""
    started = time.perf_counter()
    now = now or timezone.now()
    out = Exposition()
    vendor = connections[using].vendor
    write_devices(out, device_rows(using), now, vendor)
    write_latency_histogram(
        out, now, per_device=settings.RESMON_METRICS_DEVICE_HISTOGRAMS, using=using
    )
    write_recent_failures(out, now, using)
    write_components(out, now, using)
    write_slos(out, now, using)
    metricstore.write_exposition(out, using)  # issue 7: bounded per-device metrics
    out.family(
        "resmon_metrics_render_seconds",
        "gauge",
        "Time this web process took to read storage for this scrape.",
    )
    out.sample("resmon_metrics_render_seconds", "", time.perf_counter() - started)
    return out.text()
