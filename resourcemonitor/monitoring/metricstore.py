"""Per-device metrics (``DeviceMetric``): write, read, prune, and the bounded /metrics part.

Who writes: HTTP and MQTT ingest (a status report's ``metrics`` and MQTT telemetry, in
``monitoring.ingest``) and the collector's SNMP probe (``uptime_s``, ``if_up``/``if_down``,
``in_bps``/``out_bps``, ``cpu_percent``; batched by the collector runner and written with
one writer call a second). A row is ``(t ms, device_id, name, value)``; a second row with
the same key is ignored, so a retried batch does not count twice.

Retention follows the raw samples (``RESMON_RETENTION_RAW_DAYS``): metrics are raw data
with no rollup tier. ``retention.prune`` calls :func:`prune_metrics`.

On /metrics only the names in ``EXPORTED`` are exported, each device's latest value of the
last ``EXPORT_WINDOW_S`` seconds: at most ``len(EXPORTED)`` series a device, however many
names devices push (a pushed name is free text; exporting it would let any device add
series without bound). Those latest values are kept apart (``DeviceMetricLatest``,
upserted with each write): a scrape reads a few rows a device, where finding them in the
history meant scanning every row of the window (0.75 s at 1,000 SNMP devices checked
every 10 s, measured).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, NamedTuple

from django.db import connections, transaction

from resourcemonitor.monitoring.models import DeviceMetric, DeviceMetricLatest

if TYPE_CHECKING:
    from resourcemonitor.monitoring.metrics import Exposition

# Rows per executemany: a long batch of telemetry goes in slices, not one huge statement.
_WRITE_SLICE = 2000
_PRUNE_CHUNK = 20_000
EXPORT_WINDOW_S = 600
# Reported name → (Prometheus family, type help, scale). Base units, as Prometheus wants.
EXPORTED: dict[str, tuple[str, str, float]] = {
    "cpu_percent": ("resmon_device_cpu_ratio", "CPU load the device reported (0 to 1).", 0.01),
    "memory_percent": (
        "resmon_device_memory_ratio",
        "Memory in use the device reported (0 to 1).",
        0.01,
    ),
    "uptime_s": ("resmon_device_uptime_seconds", "How long the device has been up.", 1.0),
    "in_bps": (
        "resmon_device_receive_bytes_per_second",
        "Bytes per second in, summed over the device's interfaces (SNMP).",
        0.125,
    ),
    "out_bps": (
        "resmon_device_transmit_bytes_per_second",
        "Bytes per second out, summed over the device's interfaces (SNMP).",
        0.125,
    ),
    "if_up": ("resmon_device_interfaces_up", "Interfaces with ifOperStatus up (SNMP).", 1.0),
    "if_down": (
        "resmon_device_interfaces_down",
        "Interfaces with ifOperStatus down (SNMP).",
        1.0,
    ),
}


class MetricRow(NamedTuple):
    t: int  # ms since the epoch, UTC
    device_id: int
    name: str
    value: float


def rows_for(t_ms: int, device_id: int, metrics: dict[str, float]) -> list[MetricRow]:
    """One row per metric of one report or probe result."""
    return [MetricRow(t_ms, device_id, name, float(value)) for name, value in metrics.items()]


def write_metrics(rows: Sequence[MetricRow], using: str = "default") -> int:
    """Insert the rows (duplicates of a stored key are ignored); returns rows offered.

    Runs inside the caller's transaction when there is one (ingest writes metrics with
    the samples they came with), else in its own.
    """
    if not rows:
        return 0
    connection = connections[using]
    sql = (
        f"INSERT INTO {DeviceMetric._meta.db_table} (t, device_id, name, value) "
        "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING"
    )
    latest_table = DeviceMetricLatest._meta.db_table
    latest_sql = (
        f"INSERT INTO {latest_table} (device_id, name, t, value) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (device_id, name) DO UPDATE SET t = excluded.t, value = excluded.value "
        f"WHERE excluded.t > {latest_table}.t"
    )
    newest: dict[tuple[int, str], MetricRow] = {}
    for row in rows:
        if row.name in EXPORTED:
            key = (row.device_id, row.name)
            kept = newest.get(key)
            if kept is None or row.t > kept.t:
                newest[key] = row
    with transaction.atomic(using=using), connection.cursor() as cursor:
        for start in range(0, len(rows), _WRITE_SLICE):
            cursor.executemany(sql, [tuple(row) for row in rows[start : start + _WRITE_SLICE]])
        if newest:
            cursor.executemany(
                latest_sql, [(r.device_id, r.name, r.t, r.value) for r in newest.values()]
            )
    return len(rows)


def prune_metrics(before_ms: int, using: str = "default") -> int:
    """Delete rows older than ``before_ms``, oldest first, in short transactions."""
    connection = connections[using]
    table = DeviceMetric._meta.db_table
    sql = (
        f"DELETE FROM {table} WHERE (t, device_id, name) IN ("
        f"SELECT t, device_id, name FROM {table} WHERE t < %s ORDER BY t LIMIT %s)"
    )
    deleted = 0
    while True:
        with transaction.atomic(using=using), connection.cursor() as cursor:
            cursor.execute(sql, [before_ms, _PRUNE_CHUNK])
            count = max(cursor.rowcount, 0)
        deleted += count
        if count < _PRUNE_CHUNK:
            break
    # Latest values past retention too (a device that stopped reporting): a few rows.
    DeviceMetricLatest.objects.using(using).filter(t__lt=before_ms).delete()
    return deleted


def metrics_for_device(
    device_id: int,
    start_ms: int,
    end_ms: int,
    *,
    names: Iterable[str] = (),
    limit: int,
) -> list[tuple[int, str, float]]:
    """``(t, name, value)`` with ``start_ms <= t < end_ms``, the newest ``limit``, oldest first."""
    qs = DeviceMetric.objects.filter(device_id=device_id, t__gte=start_ms, t__lt=end_ms)
    wanted = list(names)
    if wanted:
        qs = qs.filter(name__in=wanted)
    rows = qs.order_by("-t", "name").values_list("t", "name", "value")[:limit]
    return list(reversed(rows))


def latest_exported(
    now_s: float | None = None, using: str = "default"
) -> dict[str, list[tuple[str, float]]]:
    """For each exported family, ``(device name, value)`` of each device's latest value
    of the last ``EXPORT_WINDOW_S`` seconds; deleted devices are gone with their rows."""
    now_s = time.time() if now_s is None else now_s
    since_ms = int((now_s - EXPORT_WINDOW_S) * 1000)
    rows = (
        DeviceMetricLatest.objects.using(using)
        .filter(t__gte=since_ms, name__in=list(EXPORTED))
        .values_list("device__name", "name", "value")
    )
    families: dict[str, list[tuple[str, float]]] = {}
    for device, name, value in rows:
        family, _, scale = EXPORTED[name]
        families.setdefault(family, []).append((device, value * scale))
    for series in families.values():
        series.sort()
    return families


def write_exposition(out: Exposition, using: str = "default") -> None:
    """Append the exported families to /metrics (``monitoring.metrics.render``)."""
    from resourcemonitor.monitoring.metrics import labels

    families = latest_exported(using=using)
    for family, help_text, _ in EXPORTED.values():
        out.family(family, "gauge", help_text)
        for device, value in families.get(family, ()):
            out.sample(family, labels(device=device), value)
