"""History charts from the right tier: raw samples, 1-minute or 1-hour rollups, by step."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import connection

from resourcemonitor.monitoring.models import HISTOGRAM_COLUMNS
from resourcemonitor.monitoring.rollups import histogram_index, histogram_percentile, open_horizon
from resourcemonitor.monitoring.slo.core import HOUR, MINUTE, DeviceInfo, floor_to, window_bounds
from resourcemonitor.monitoring.storage import samples_for_device

MAX_POINTS = 1000
AUTO_STEPS: tuple[int, ...] = (
    10,
    30,
    60,
    120,
    300,
    600,
    900,
    1800,
    3600,
    7200,
    10800,
    21600,
    43200,
    86400,
)
# Raw samples are read for steps under a minute only (the key is time-first, so a raw
# read scans every device's rows in the range: keep it short).
_RAW_SAMPLE_LIMIT = 200_000


def auto_step(start_s: int, end_s: int) -> int:
    """The finest step from ``AUTO_STEPS`` that keeps the series within ``MAX_POINTS``."""
    for step in AUTO_STEPS:
        if math.ceil((end_s - start_s) / step) <= MAX_POINTS:
            return step
    return AUTO_STEPS[-1]


def history_source(step: int, start_s: int | None = None, now_s: int | None = None) -> int:
    """The tier a step reads: 0 (raw samples), 60 or 3600 (rollups).

    With ``start_s``, a range reaching past a tier's retention reads the next tier.
    """
    source = 0 if step < MINUTE else HOUR if step % HOUR == 0 else MINUTE
    if start_s is not None:
        now_s = int(datetime.now(tz=UTC).timestamp()) if now_s is None else now_s
        if source == 0 and start_s < now_s - settings.RESMON_RETENTION_RAW_DAYS * 86400:
            source = MINUTE
        if source == MINUTE and start_s < now_s - settings.RESMON_RETENTION_MINUTE_DAYS * 86400:
            source = HOUR
    return source


def device_history(device_id: int, start_s: int, end_s: int, step: int) -> dict[str, Any]:
    """One device's series over ``[start_s, end_s)`` in ``step``-second points.

    Points are aligned to multiples of ``step`` since the epoch; only points with checks
    are listed. Each has checks, ok, availability (%), latency avg/max/p95 (ms).
    """
    source = history_source(step, start_s)
    origin = floor_to(start_s, step)
    points: dict[int, dict[str, Any]] = {}
    if source == 0:
        rows = samples_for_device(device_id, start_s * 1000, end_s * 1000, _RAW_SAMPLE_LIMIT)
        for row in rows:
            index = (row["t"] // 1000 - origin) // step
            latency = row["latency_ms"]
            point = points.setdefault(
                index,
                {
                    "checks": 0,
                    "ok": 0,
                    "lat_n": 0,
                    "lat_sum": 0.0,
                    "lat_max": None,
                    "latencies": [],
                },
            )
            point["checks"] += 1
            point["ok"] += 1 if row["ok"] else 0
            if latency is not None:
                point["lat_n"] += 1
                point["lat_sum"] += latency
                point["lat_max"] = (
                    latency if point["lat_max"] is None else max(point["lat_max"], latency)
                )
                point["latencies"].append(latency)
        items = []
        for index in sorted(points):
            point = points[index]
            latencies = sorted(point["latencies"])
            p95 = latencies[max(0, math.ceil(0.95 * len(latencies)) - 1)] if latencies else None
            items.append(
                _point(
                    origin + index * step,
                    point["checks"],
                    point["ok"],
                    point["lat_n"],
                    point["lat_sum"],
                    point["lat_max"],
                    p95,
                )
            )
    else:
        # The tier up to the open horizon; the minutes after it (a writer may still hold
        # them in memory) from raw samples, so the newest point is never short.
        horizon = max(start_s, min(end_s, open_horizon()))
        merged: dict[int, list[Any]] = {}
        ranges: list[tuple[int, int, int]] = [(source, floor_to(start_s, source), horizon)]
        if source == HOUR and horizon % HOUR:
            # The hour holding the horizon from its minutes, up to the horizon.
            hour = floor_to(horizon, HOUR)
            ranges = [(HOUR, floor_to(start_s, HOUR), hour), (MINUTE, max(hour, start_s), horizon)]
        for resolution, lo, hi in ranges:
            _merge_points(merged, _rollup_points(device_id, resolution, lo, hi, origin, step))
        _merge_points(merged, _raw_points(device_id, horizon, end_s, origin, step))
        items = [
            _point(
                origin + index * step,
                row[0],
                row[1],
                row[2],
                row[3],
                row[4],
                histogram_percentile(row[5:], 0.95),
            )
            for index, row in sorted(merged.items())
        ]
    return {
        "source": {0: "raw", MINUTE: "1m", HOUR: "1h"}[source],
        "step_s": step,
        "start_s": start_s,
        "end_s": end_s,
        "items": items,
    }


PointSums = dict[int, list[Any]]  # point index -> [checks, ok, lat_n, lat_sum, lat_max, h…]


def _rollup_points(
    device_id: int, resolution: int, start_s: int, end_s: int, origin: int, step: int
) -> PointSums:
    if end_s <= start_s:
        return {}
    histogram = ", ".join(f"SUM({c})" for c in HISTOGRAM_COLUMNS)
    sql = (
        "SELECT (bucket - %s) / %s AS i, SUM(count), SUM(ok_count), SUM(latency_count), "
        f"SUM(latency_sum_ms), MAX(latency_max_ms), {histogram} FROM monitoring_rollup "
        "WHERE device_id = %s AND resolution = %s AND bucket >= %s AND bucket < %s "
        "GROUP BY i"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [origin, step, device_id, resolution, start_s, end_s])
        rows = cursor.fetchall()
    return {
        int(row[0]): [
            int(row[1]),
            int(row[2]),
            int(row[3]),
            float(row[4] or 0.0),
            row[5],
            *(int(v) for v in row[6:]),
        ]
        for row in rows
    }


def _raw_points(device_id: int, start_s: int, end_s: int, origin: int, step: int) -> PointSums:
    """The same sums as ``_rollup_points``, from raw samples (a few minutes at most)."""
    if end_s <= start_s:
        return {}
    points: PointSums = {}
    for row in samples_for_device(device_id, start_s * 1000, end_s * 1000, _RAW_SAMPLE_LIMIT):
        index = (row["t"] // 1000 - origin) // step
        point = points.get(index)
        if point is None:
            point = points[index] = [0, 0, 0, 0.0, None, *([0] * len(HISTOGRAM_COLUMNS))]
        point[0] += 1
        point[1] += 1 if row["ok"] else 0
        latency = row["latency_ms"]
        if latency is not None:
            point[2] += 1
            point[3] += latency
            point[4] = latency if point[4] is None else max(point[4], latency)
            point[5 + histogram_index(round(latency * 1000))] += 1
    return points


def _merge_points(into: PointSums, other: PointSums) -> None:
    for index, row in other.items():
        point = into.get(index)
        if point is None:
            into[index] = row
            continue
        for position in (0, 1, 2, 3, *range(5, len(row))):
            point[position] += row[position]
        if row[4] is not None and (point[4] is None or row[4] > point[4]):
            point[4] = row[4]


def _point(
    t: int,
    checks: int,
    ok: int,
    lat_n: int,
    lat_sum: float,
    lat_max: float | None,
    p95: float | None,
) -> dict[str, Any]:
    return {
        "t": t,
        "checks": checks,
        "ok": ok,
        "availability": 100.0 * ok / checks if checks else None,
        "latency_avg_ms": lat_sum / lat_n if lat_n else None,
        "latency_max_ms": lat_max,
        "latency_p95_ms": p95,
    }


def burndown(
    device: DeviceInfo, window: str, now: datetime, *, points: int = 60
) -> list[dict[str, Any]]:
    """Budget remaining (%) through the window, from hourly rollups: the burn-down chart.

    The budget is measured against the whole window's checks so far at each point, so
    the line starts at 100 % and falls with every failed check.
    """
    start_s, end_s = window_bounds(window, now)
    hourly = _series(device.id, HOUR, floor_to(start_s, HOUR), end_s)
    total = sum(checks for _, checks, _ in hourly)
    allowed = (1 - device.target / 100) * total
    bad = 0
    step = max(1, len(hourly) // points)
    series = []
    for index, (bucket, checks, ok) in enumerate(hourly):
        bad += checks - ok
        if index % step == 0 or index == len(hourly) - 1:
            remaining = 100.0 * (1 - bad / allowed) if allowed else None
            series.append({"t": max(bucket, start_s), "remaining_pct": remaining})
    return series


def _series(
    device_id: int, resolution: int, start_s: int, end_s: int
) -> list[tuple[int, int, int]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT bucket, count, ok_count FROM monitoring_rollup WHERE device_id = %s "
            "AND resolution = %s AND bucket >= %s AND bucket < %s ORDER BY bucket",
            [device_id, resolution, start_s, end_s],
        )
        return [(int(b), int(c), int(o)) for b, c, o in cursor.fetchall()]
