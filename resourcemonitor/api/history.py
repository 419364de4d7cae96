"""Reads of raw samples and rollups, kept in one place.

``resourcemonitor.monitoring.storage`` will own these reads (with one fast path per
backend); these two functions share its names and signatures so the swap is an import.
"""

from __future__ import annotations

from typing import NamedTuple

from resourcemonitor.monitoring.models import Rollup, Sample


class SampleRow(NamedTuple):
    t: int  # ms since the epoch
    ok: bool
    latency_us: int | None
    error: str | None


class RollupRow(NamedTuple):
    bucket: int  # epoch seconds, bucket start
    checks: int
    ok_count: int
    latency_count: int
    latency_sum_ms: float
    latency_max_ms: float | None


def samples_for_device(device_id: int, start_ms: int, end_ms: int, limit: int) -> list[SampleRow]:
    """Samples with ``start_ms <= t < end_ms``, the newest ``limit`` of them, oldest first."""
    rows = (
        Sample.objects.filter(device_id=device_id, t__gte=start_ms, t__lt=end_ms)
        .order_by("-t")
        .values_list("t", "ok", "latency_us", "error")[:limit]
    )
    return [SampleRow(t, bool(ok), latency, error) for t, ok, latency, error in reversed(rows)]


def rollups_for_device(
    device_id: int, resolution: int, start_s: int, end_s: int
) -> list[RollupRow]:
    """Rollup buckets with ``start_s <= bucket < end_s``, oldest first."""
    rows = (
        Rollup.objects.filter(
            device_id=device_id, resolution=resolution, bucket__gte=start_s, bucket__lt=end_s
        )
        .order_by("bucket")
        .values_list(
            "bucket", "count", "ok_count", "latency_count", "latency_sum_ms", "latency_max_ms"
        )
    )
    return [RollupRow(*row) for row in rows]
