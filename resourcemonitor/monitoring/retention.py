"""Retention per tier: raw samples for days, 1-minute rollups for weeks, 1-hour and 1-day
rollups for months.

Tiers are pruned independently. SLO figures read raw samples only for the last few
minutes (those a writer may still hold open; the writer folds every sample into every
rollup tier), so pruning raw history changes no SLO figure; the 1-minute tier is kept at
least 32 days (settings enforce it), longer than any SLO window, so its pruning changes
none either. The collector is to call :func:`prune`
periodically (every ``PRUNE_EVERY``); ``resmon prune`` runs it by hand.

The 1-day tier keeps the 1-hour tier's retention, in whole days: a day row goes once all
of its hours have gone, so no day is ever answered by a partial day row. Each run first
builds the day tier from the hours where it is missing (``storage.backfill_day_rollups``:
once, on a database from before the day tier; a two-row index lookup after that).

On PostgreSQL raw samples are partitioned by day: whole days past the cutoff are dropped
as partitions (instant, no dead rows to vacuum), the part of the cutoff day is deleted in
chunks as on SQLite, and the partitions of today and the next two days are created ahead
so the writer never waits on DDL at midnight.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

PRUNE_EVERY = timedelta(hours=1)
# Rows deleted per transaction: short transactions keep the collector's writer unblocked.
_CHUNK = 20_000


@dataclass(frozen=True, slots=True)
class PruneReport:
    raw: int
    minute: int
    hour: int
    day: int = 0
    metrics: int = 0  # DeviceMetric rows: kept as long as raw samples (issue 7)


def day_cutoff(hour_s: int) -> int:
    """Day rows older than this go: the days whose every hour is before ``hour_s``."""
    return hour_s - hour_s % 86400


def cutoffs(now: datetime) -> tuple[int, int, int]:
    """``(raw_ms, minute_bucket_s, hour_bucket_s)``: rows older than these go."""
    now_s = int(now.timestamp())
    raw_ms = (now_s - settings.RESMON_RETENTION_RAW_DAYS * 86400) * 1000
    minute_s = now_s - settings.RESMON_RETENTION_MINUTE_DAYS * 86400
    hour_s = now_s - settings.RESMON_RETENTION_HOUR_DAYS * 86400
    # Whole buckets only: a bucket goes when all of it is past the cutoff.
    return raw_ms, minute_s - minute_s % 60 - 60, hour_s - hour_s % 3600 - 3600


def _delete_in_chunks(sql: str, params: list[int]) -> int:
    """Run a chunked DELETE (its last parameter is the chunk size) until it runs dry."""
    deleted = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [*params, _CHUNK])
            count = max(cursor.rowcount, 0)
        deleted += count
        if count < _CHUNK:
            return deleted


def _prune_samples(before_ms: int) -> int:
    from resourcemonitor.monitoring import storage

    dropped = 0
    if connection.vendor == "postgresql":
        dropped = storage.drop_sample_partitions_before(before_ms)
        today = int(timezone.now().timestamp() * 1000) // storage.DAY_MS
        storage.ensure_partitions(range(today, today + 3))
    return dropped + _delete_old_samples(before_ms)


def _delete_old_samples(before_ms: int) -> int:
    # Oldest first along the time-first key. (storage.prune_samples walks fixed
    # 10-minute slices from the oldest row, which takes minutes across a long gap.)
    return _delete_in_chunks(
        "DELETE FROM monitoring_sample WHERE (t, device_id) IN ("
        "SELECT t, device_id FROM monitoring_sample WHERE t < %s ORDER BY t LIMIT %s)",
        [before_ms],
    )


def _prune_rollups(resolution: int, before_s: int) -> int:
    # Through the (resolution, bucket) index, oldest first.
    return _delete_in_chunks(
        "DELETE FROM monitoring_rollup WHERE (device_id, resolution, bucket) IN ("
        "SELECT device_id, resolution, bucket FROM monitoring_rollup "
        "WHERE resolution = %s AND bucket < %s ORDER BY bucket LIMIT %s)",
        [resolution, before_s],
    )


def prune(*, now: datetime) -> PruneReport:
    """Delete what each tier's retention no longer covers; returns rows deleted per tier."""
    from resourcemonitor.monitoring import storage
    from resourcemonitor.monitoring.metricstore import prune_metrics

    storage.backfill_day_rollups()
    raw_ms, minute_s, hour_s = cutoffs(now)
    return PruneReport(
        raw=_prune_samples(raw_ms),
        minute=_prune_rollups(60, minute_s),
        hour=_prune_rollups(3600, hour_s),
        day=_prune_rollups(86400, day_cutoff(hour_s)),
        metrics=prune_metrics(raw_ms),
    )
