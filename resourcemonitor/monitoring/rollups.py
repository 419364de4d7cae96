"""Rollups: samples folded into minute, hour and day rows, and how readers combine them.

A ``Rollup`` row aggregates one device's samples over one bucket: 60 s, 3600 s or 86400 s
(UTC minute, hour, day). Its columns are additive and min/max take the extreme, so rows
are built per (device, bucket) in Python and merged into the stored ones by upsert; a
minute's hour and day rows are always derived from the same minutes, so an hour equals the
sum of its minutes and a day the sum of its hours.

- ``aggregate_rollups`` (``aggregate_minutes`` + ``with_coarser_tiers``): every tier's rows
  for a set of samples. Pure, no database.
- ``RollupBuffer``: the collector's writer keeps the still-open minutes (and days) in
  memory across batches and upserts each (device, minute) once, when its minute closes,
  and each (device, day) once, when its day closes. The current day's row is therefore
  not complete: readers use day rows only for the days before ``open_horizon``'s.
- Readers: ``rollups_for_device``; ``histogram_percentile``; the minutes a writer may still
  hold open come from raw samples (``open_horizon``, ``raw_counts``).

The SQL that writes rollups (``storage.write_batch``, ``storage.flush_rollups``,
``storage.recover_rollups``, ``storage.backfill_day_rollups``) lives in storage.py next to
the one per-database switch it shares with the sample, state and event writes; this module
imports nothing from storage, so storage can import it.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections

from resourcemonitor.monitoring.models import HISTOGRAM_COLUMNS, LATENCY_BUCKETS_MS, Rollup

MINUTE_S, HOUR_S, DAY_S = 60, 3600, 86_400
RESOLUTIONS: tuple[int, ...] = (MINUTE_S, HOUR_S, DAY_S)
# A buffered minute closes this long after its end (checks finishing at the boundary and
# the batch delay still land in it); see RollupBuffer.
ROLLUP_GRACE_S = 5.0
# Readers take minutes that start less than this before the current minute from raw
# samples, not from rollups: a writer may still hold them open in memory. Far more than
# the minute + grace + a writer step a live writer needs to close them.
OPEN_HORIZON_S = 120
_BUCKET_BOUNDS_US: tuple[int, ...] = tuple(int(ms * 1000) for ms in LATENCY_BUCKETS_MS)


# -- rollups, pure ---------------------------------------------------------------------

RollupKey = tuple[int, int, int]  # device_id, resolution, bucket start (epoch seconds)
# A rollup row's values, in the order of every aggregate list here and of the writes.
ROLLUP_VALUE_COLUMNS: tuple[str, ...] = (
    "count",
    "ok_count",
    "latency_count",
    "latency_sum_ms",
    "latency_min_ms",
    "latency_max_ms",
    *HISTOGRAM_COLUMNS,
)
_WIDTH = len(HISTOGRAM_COLUMNS)
# Indexes of the additive columns of an aggregate (count, ok, latency count and sum, h*).
ADDITIVE_INDEXES = (0, 1, 2, 3, *range(6, 6 + _WIDTH))


def histogram_index(latency_us: int) -> int:
    """Which histogram column a latency falls in (upper bounds inclusive)."""
    return bisect.bisect_left(_BUCKET_BOUNDS_US, latency_us)


Minutes = dict[int, dict[int, list[Any]]]  # minute start -> {device_id: aggregate}


def fold_minutes(rows: Iterable[tuple[int, int, Any, int | None]], minutes: Minutes) -> None:
    """Add (t, device_id, ok, latency_us) rows into per-minute, per-device aggregates.

    Each aggregate is ``[count, ok_count, latency_count, latency_sum_ms, latency_min_ms,
    latency_max_ms, h0 … h15]``, the column order of the upsert. The hot loop of ingest:
    rows come in time order, so the minute's dict is looked up once per minute.
    """
    bounds = _BUCKET_BOUNDS_US
    index_of = bisect.bisect_left
    empty = [0] * _WIDTH
    current = -1
    buckets: dict[int, list[Any]] = {}
    for t, device_id, ok, latency_us in rows:
        minute = t // 60_000 * 60
        if minute != current:
            current = minute
            buckets = minutes.setdefault(minute, {})
        agg = buckets.get(device_id)
        if agg is None:
            agg = buckets[device_id] = [0, 0, 0, 0.0, None, None, *empty]
        agg[0] += 1
        if ok:
            agg[1] += 1
        if latency_us is not None:
            ms = latency_us / 1000.0
            agg[2] += 1
            agg[3] += ms
            low = agg[4]
            if low is None:
                agg[4] = agg[5] = ms
            elif ms < low:
                agg[4] = ms
            elif ms > agg[5]:
                agg[5] = ms
            agg[6 + index_of(bounds, latency_us)] += 1


def aggregate_minutes(
    rows: Iterable[tuple[int, int, Any, int | None]],
) -> dict[RollupKey, list[Any]]:
    """Pre-aggregate (t, device_id, ok, latency_us) rows per (device, 60, minute) key."""
    minutes: Minutes = {}
    fold_minutes(rows, minutes)
    return {
        (device_id, 60, minute): agg
        for minute, buckets in minutes.items()
        for device_id, agg in buckets.items()
    }


def merge_aggregate(into: list[Any], other: Sequence[Any]) -> None:
    """Add ``other`` into ``into`` (additive columns add up, min/max take the extreme)."""
    for index in ADDITIVE_INDEXES:
        into[index] += other[index]
    if other[4] is not None and (into[4] is None or other[4] < into[4]):
        into[4] = other[4]
    if other[5] is not None and (into[5] is None or other[5] > into[5]):
        into[5] = other[5]


def add_aggregate(into: dict[Any, list[Any]], key: Any, agg: Sequence[Any]) -> None:
    """Merge ``agg`` into ``into[key]``: a copy of it when the key is new."""
    have = into.get(key)
    if have is None:
        into[key] = list(agg)
    else:
        merge_aggregate(have, agg)


def with_coarser_tiers(minutes: dict[RollupKey, list[Any]]) -> dict[RollupKey, list[Any]]:
    """The minute aggregates plus the hour and day rows they fold into.

    Every tier is written from the same minutes in the same transaction, so an hour row
    always equals the sum of its minute rows, and a day row the sum of its hours.
    """
    result = dict(minutes)
    for (device_id, _, minute), agg in minutes.items():
        for resolution in (3600, 86400):
            add_aggregate(result, (device_id, resolution, minute - minute % resolution), agg)
    return result


def aggregate_rollups(
    rows: Iterable[tuple[int, int, Any, int | None]],
) -> dict[RollupKey, list[Any]]:
    """Every tier's rows (minute, hour, day) for (t, device_id, ok, latency_us) rows."""
    return with_coarser_tiers(aggregate_minutes(rows))


@dataclass(slots=True)
class FlushPlan:
    """What one transaction writes from a ``RollupBuffer``, and how the buffer changes after.

    ``rows``: every tier's rows to upsert now. Once the transaction commits
    (``RollupBuffer._commit``): the ``closed`` minutes and ``closed_days`` are forgotten,
    ``keep`` (rows of open minutes) is folded into the minutes, and ``to_days`` (the hour
    rows just written whose day is still open) into the days.
    """

    closed: list[int]
    closed_days: list[int]
    rows: dict[RollupKey, list[Any]]
    keep: Sequence[tuple[int, int, Any, int | None]] = ()
    to_days: list[tuple[int, int, list[Any]]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.rows or self.closed or self.closed_days or self.keep or self.to_days)


class RollupBuffer:
    """The writer's open minute and day buckets, kept in memory across batches.

    In the collector's batch shape every device appears once per batch, so upserting
    each sample's minute, hour and day rows as it is written costs three upserts per
    sample. Instead the writer folds the samples of a minute that is still open into
    memory and writes each (device, minute) once, with its hour row, when the minute
    closes; the day rows of the day still open are summed in memory too and each
    (device, day) is written once, when the day closes. At a 10 s interval that is two
    upserts per six samples, and one a day.

    A minute is open from its start until ``grace_s`` after its end (checks finishing at
    the boundary, the batch delay) and at most one minute ahead of the clock (a device
    with a fast clock cannot park samples in memory for long); a day is open until its
    last minute closes. A sample whose minute is not open (late: a spool replay, a slow
    check) has its minute and hour rows written in the same transaction as its insert,
    and its day row too when its day is not open either. The buffer changes only after a
    transaction commits (``storage.write_batch`` / ``storage.flush_rollups`` call
    ``_commit``), so a failed write that is retried neither loses nor doubles anything.

    What is in memory is lost with the process (``kill -9``, a crash); the samples are
    not (they were committed), nor are the minute and hour rows of the closed minutes.
    ``storage.recover_rollups`` rebuilds those minutes from the raw samples, and those
    days from the hour rows, at the next start. Readers read minutes newer than
    ``OPEN_HORIZON_S`` from raw samples (``raw_counts``) and use day rows only for the
    days before the one holding that horizon (``slo.core.plan_window``), so nothing a
    writer holds is ever missing from a figure.
    """

    def __init__(
        self, *, grace_s: float = ROLLUP_GRACE_S, clock: Callable[[], float] = time.time
    ) -> None:
        self.grace_s = grace_s
        self.clock = clock
        # minute -> {device_id: aggregate}: closing a minute never walks the others.
        self.minutes: Minutes = {}
        # day -> {device_id: aggregate}: the written hours of the days still open.
        self.days: Minutes = {}

    def __len__(self) -> int:
        """The (device, minute) buckets held (the open days are not counted)."""
        return sum(len(buckets) for buckets in self.minutes.values())

    def open_range_ms(self, now_s: float) -> tuple[int, int]:
        """``[from, to)`` in ms of the samples whose minute is open at ``now_s``."""
        first = int((now_s - 60 - self.grace_s) // 60) * 60 + 60  # closes after now_s
        last = int((now_s + 60) // 60) * 60  # at most a minute ahead
        return first * 1000, (last + 60) * 1000

    def due(self, now_s: float, *, everything: bool = False) -> list[int]:
        """The buffered minutes that have closed (every buffered minute with ``everything``)."""
        first_open = self.open_range_ms(now_s)[0] // 1000
        return sorted(m for m in self.minutes if everything or m < first_open)

    def split(
        self,
        rows: Sequence[tuple[int, int, Any, int | None]],
        now_s: float,
        *,
        everything: bool = False,
    ) -> FlushPlan:
        """What to write now for freshly inserted ``rows`` (and what has closed since).

        Changes nothing: the buffer changes in ``_commit``, after the transaction. The
        minute rows to write are the buffered buckets of the closed minutes merged with
        the fresh rows whose minute is not open (late ones), each with its hour row; the
        day rows are the buffered days that closed plus those hour rows whose day is not
        open.
        """
        closed = self.due(now_s, everything=everything)
        lo, hi = self.open_range_ms(now_s)
        first_open_day = lo // 1000 - (lo // 1000) % DAY_S
        last_open_day = (hi // 1000 - 60) - (hi // 1000 - 60) % DAY_S

        def day_written(day: int) -> bool:
            """Written now: closed, or ahead of every open minute (never parked)."""
            return everything or not first_open_day <= day <= last_open_day

        late: Sequence[tuple[int, int, Any, int | None]]
        keep: Sequence[tuple[int, int, Any, int | None]]
        if everything:
            late, keep = rows, ()
        else:
            late = [row for row in rows if not lo <= row[0] < hi]
            keep = [row for row in rows if lo <= row[0] < hi] if late else rows
        fresh: Minutes = {}
        fold_minutes(late, fresh)
        for minute in closed:
            into = fresh.setdefault(minute, {})
            for device_id, agg in self.minutes[minute].items():
                mine = into.get(device_id)
                if mine is None:
                    into[device_id] = agg  # read only from here on
                else:
                    merge_aggregate(mine, agg)
        out: dict[RollupKey, list[Any]] = {}
        hours: dict[RollupKey, list[Any]] = {}
        for minute, buckets in fresh.items():
            hour = minute - minute % HOUR_S
            for device_id, agg in buckets.items():
                out[(device_id, MINUTE_S, minute)] = agg
                add_aggregate(hours, (device_id, HOUR_S, hour), agg)
        out.update(hours)
        closed_days = sorted(d for d in self.days if day_written(d))
        days: dict[RollupKey, list[Any]] = {}
        for day in closed_days:
            for device_id, agg in self.days[day].items():
                days[(device_id, DAY_S, day)] = list(agg)
        to_days: list[tuple[int, int, list[Any]]] = []
        for (device_id, _, hour), agg in hours.items():
            day = hour - hour % DAY_S
            if day_written(day):
                add_aggregate(days, (device_id, DAY_S, day), agg)
            else:
                to_days.append((day, device_id, agg))
        out.update(days)
        return FlushPlan(closed, closed_days, out, keep, to_days)

    def _commit(self, plan: FlushPlan) -> None:
        """Once the transaction that wrote ``plan`` committed: forget what it closed, fold
        the rows of open minutes and the hours of open days in."""
        self.drop(plan)
        fold_minutes(plan.keep, self.minutes)
        for day, device_id, agg in plan.to_days:
            add_aggregate(self.days.setdefault(day, {}), device_id, agg)

    def drop(self, plan: FlushPlan) -> None:
        """Forget what ``plan`` closed without writing it (it cannot be written; the
        start-up repair rebuilds it from the samples and the hour rows)."""
        for minute in plan.closed:
            self.minutes.pop(minute, None)
        for day in plan.closed_days:
            self.days.pop(day, None)


def histogram_percentile(histogram: Sequence[int], quantile: float) -> float | None:
    """The upper bound (ms) of the bucket holding the quantile; None when empty.

    The last bucket has no upper bound: its answer is the last finite bound.
    """
    total = sum(histogram)
    if total == 0:
        return None
    rank = quantile * total
    running = 0
    for index, count in enumerate(histogram):
        running += count
        if running >= rank and count:
            return float(LATENCY_BUCKETS_MS[min(index, len(LATENCY_BUCKETS_MS) - 1)])
    return float(LATENCY_BUCKETS_MS[-1])


# -- read ------------------------------------------------------------------------------


def open_horizon(now_s: float | None = None) -> int:
    """The first minute readers take from raw samples rather than rollups (epoch seconds).

    Minutes from here on may still be open in a writer's memory (``RollupBuffer``);
    everything before it is in the rollups. From the wall clock, not from a report's
    ``now``: what matters is what the writers hold now.
    """
    now = int(time.time() if now_s is None else now_s)
    return now - now % 60 - OPEN_HORIZON_S


def raw_counts(
    device_ids: Sequence[int] | None,
    start_s: int,
    end_s: int,
    *,
    histogram: bool = False,
    using: str = DEFAULT_DB_ALIAS,
) -> dict[int, list[int]]:
    """``{device_id: [checks, ok, h0 … h15]}`` over ``[start_s, end_s)`` from raw samples.

    The rollup readers' source for the last few minutes (``open_horizon``): a short range
    of the time-first key, summed in SQL. The histogram (only when asked) buckets
    latencies exactly as the writer does (upper bounds inclusive).
    """
    if end_s <= start_s:
        return {}
    fields = ["COUNT(*)", "SUM(CASE WHEN ok THEN 1 ELSE 0 END)"]
    if histogram:
        lower = None
        for upper in (*_BUCKET_BOUNDS_US, None):
            test = " AND ".join(
                part
                for part in (
                    None if lower is None else f"latency_us > {lower}",
                    None if upper is None else f"latency_us <= {upper}",
                    "latency_us IS NOT NULL",
                )
                if part
            )
            fields.append(f"SUM(CASE WHEN {test} THEN 1 ELSE 0 END)")
            lower = upper
    base = f"SELECT device_id, {', '.join(fields)} FROM monitoring_sample WHERE t >= %s AND t < %s"
    chunks: list[list[int] | None] = [None]
    if device_ids is not None:
        ids = sorted(set(device_ids))
        chunks = [ids[i : i + 2000] for i in range(0, len(ids), 2000)]
    result: dict[int, list[int]] = {}
    with connections[using].cursor() as cursor:
        for chunk in chunks:
            sql, params = base, [start_s * 1000, end_s * 1000]
            if chunk is not None:
                if not chunk:
                    continue
                sql += f" AND device_id IN ({', '.join(['%s'] * len(chunk))})"
                params.extend(chunk)
            cursor.execute(sql + " GROUP BY device_id", params)
            for row in cursor.fetchall():
                result[int(row[0])] = [int(v or 0) for v in row[1:]]
    return result


def rollups_for_device(
    device_id: int,
    resolution: int,
    start_s: int,
    end_s: int,
    *,
    using: str = DEFAULT_DB_ALIAS,
) -> list[dict[str, Any]]:
    """Rollups of one device with ``start_s <= bucket < end_s``, oldest first.

    Each item has ``bucket`` (epoch seconds), ``count``, ``ok_count``, ``latency_count``,
    ``latency_sum_ms``, ``latency_min_ms``, ``latency_max_ms``, ``latency_avg_ms`` and
    ``histogram`` (16 counts over ``LATENCY_BUCKETS_MS``; see ``histogram_percentile``).
    """
    if resolution not in RESOLUTIONS:
        raise ValueError(f"resolution must be one of {RESOLUTIONS}, not {resolution}")
    rows = (
        Rollup.objects.using(using)
        .filter(device_id=device_id, resolution=resolution, bucket__gte=start_s, bucket__lt=end_s)
        .order_by("bucket")
        .values("bucket", *ROLLUP_VALUE_COLUMNS)
    )
    result = []
    for row in rows:
        histogram = [row.pop(column) for column in HISTOGRAM_COLUMNS]
        count = row["latency_count"]
        row["latency_avg_ms"] = row["latency_sum_ms"] / count if count else None
        row["histogram"] = histogram
        result.append(row)
    return result
