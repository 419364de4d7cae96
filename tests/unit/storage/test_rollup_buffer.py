"""The writer's open rollup buckets: counted once, whatever fails, and never missing from a read.

Runs on SQLite and, in the PostgreSQL pass, on PostgreSQL.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import OperationalError, connection

from resourcemonitor.inventory.models import Device
from resourcemonitor.monitoring import rollups, slo, storage
from resourcemonitor.monitoring.collector.writer import Writer
from resourcemonitor.monitoring.models import Rollup
from resourcemonitor.monitoring.rollups import RollupBuffer
from resourcemonitor.monitoring.storage import Batch, SampleRow

pytestmark = pytest.mark.django_db(transaction=True)

T0 = 1_767_225_600  # 2026-01-01 00:00:00 UTC, epoch seconds: a minute, hour and day start
TIERS = (60, 3600, 86400)


class Clock:
    def __init__(self, now_s: float) -> None:
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s


@pytest.fixture(autouse=True)
def _no_samples() -> Iterator[None]:
    # monitoring_sample is unmanaged: Django's flush between tests does not empty it.
    yield
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM monitoring_sample")


@pytest.fixture
def device(network) -> Device:
    return network.server


def batch(device_id: int, *seconds: float, ok: bool = True) -> Batch:
    return Batch(
        samples=[
            SampleRow(int(s * 1000), device_id, ok, 2000 if ok else None, None if ok else "x")
            for s in seconds
        ]
    )


def tiers(device_id: int) -> dict[tuple[int, int], tuple[int, int]]:
    """``{(resolution, bucket): (count, ok_count)}`` of a device's rollups."""
    return {
        (r.resolution, r.bucket): (r.count, r.ok_count)
        for r in Rollup.objects.filter(device_id=device_id)
    }


def from_raw(device_id: int) -> dict[tuple[int, int], tuple[int, int]]:
    """What every tier must hold: the raw samples, aggregated in Python."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT t, device_id, ok, latency_us FROM monitoring_sample WHERE device_id = %s",
            [device_id],
        )
        rows = cursor.fetchall()
    return {
        (resolution, bucket): (agg[0], agg[1])
        for (_, resolution, bucket), agg in rollups.aggregate_rollups(rows).items()
    }


def test_an_open_minute_stays_in_memory_until_it_closes(device: Device) -> None:
    clock = Clock(T0 + 20)
    buffer = RollupBuffer(clock=clock)
    storage.write_batch(batch(device.pk, T0 + 1, T0 + 11), rollups=buffer)
    storage.write_batch(batch(device.pk, T0 + 21, ok=False), rollups=buffer)
    assert tiers(device.pk) == {}, "nothing upserted while the minute is open"
    assert len(buffer) == 1
    clock.now_s = T0 + 60 + buffer.grace_s - 0.5
    assert storage.flush_rollups(buffer) == 0, "still inside the grace period"
    clock.now_s = T0 + 60 + buffer.grace_s
    # A batch of the next minute closes the first one: its minute and hour rows.
    storage.write_batch(batch(device.pk, T0 + 61), rollups=buffer)
    assert tiers(device.pk) == {(60, T0): (3, 2), (3600, T0): (3, 2)}
    assert buffer.days[T0][device.pk][:2] == [3, 2], "summed into the open day in memory"
    # The day closes with its last minute: one day row, every check.
    clock.now_s = T0 + 86400 + buffer.grace_s - 0.5
    storage.flush_rollups(buffer)
    assert (86400, T0) not in tiers(device.pk)
    clock.now_s = T0 + 86400 + buffer.grace_s
    storage.flush_rollups(buffer)
    assert tiers(device.pk) == {
        (60, T0): (3, 2),
        (60, T0 + 60): (1, 1),
        (3600, T0): (4, 3),
        (86400, T0): (4, 3),
    }
    assert len(buffer) == 0 and not buffer.days


def test_a_replayed_batch_is_counted_once(device: Device) -> None:
    buffer = RollupBuffer(clock=Clock(T0 + 30))
    replayed = batch(device.pk, T0 + 1, T0 + 2, T0 + 3)
    first = storage.write_batch(replayed, rollups=buffer)
    again = storage.write_batch(replayed, rollups=buffer)
    assert (first.samples_inserted, again.samples_inserted) == (3, 0)
    storage.flush_rollups(buffer, everything=True)
    assert tiers(device.pk)[(60, T0)] == (3, 3)


def test_a_late_sample_for_a_closed_minute_is_counted_at_once_and_once(device: Device) -> None:
    clock = Clock(T0 + 30)
    buffer = RollupBuffer(clock=clock)
    storage.write_batch(batch(device.pk, T0 + 1), rollups=buffer)
    clock.now_s = T0 + 200
    storage.flush_rollups(buffer)
    assert tiers(device.pk)[(60, T0)] == (1, 1)
    # A spool replay or a slow check: its minute closed long ago, so it is upserted in
    # its own transaction, not parked in memory.
    storage.write_batch(batch(device.pk, T0 + 40, ok=False), rollups=buffer)
    assert len(buffer) == 0
    assert tiers(device.pk) == {(60, T0): (2, 1), (3600, T0): (2, 1)}
    assert buffer.days[T0][device.pk][:2] == [2, 1], "its day is still open"
    # Late for a closed day too: every tier at once.
    clock.now_s = T0 + 86400 + 200
    storage.flush_rollups(buffer)
    storage.write_batch(batch(device.pk, T0 + 50), rollups=buffer)
    assert not buffer.days and len(buffer) == 0
    assert tiers(device.pk) == from_raw(device.pk)
    assert tiers(device.pk)[(86400, T0)] == (3, 2)


def test_a_sample_far_ahead_of_the_clock_is_not_parked_in_memory(device: Device) -> None:
    buffer = RollupBuffer(clock=Clock(T0 + 30))
    storage.write_batch(batch(device.pk, T0 + 3 * 3600), rollups=buffer)
    assert len(buffer) == 0
    assert tiers(device.pk) == {(60, T0 + 3 * 3600): (1, 1), (3600, T0 + 3 * 3600): (1, 1)}
    # A sample a day ahead: its day is not open either, so every tier at once.
    storage.write_batch(batch(device.pk, T0 + 86400 + 7), rollups=buffer)
    assert list(buffer.days) == [T0]
    assert tiers(device.pk)[(86400, T0 + 86400)] == (1, 1)


def test_a_failed_write_leaves_the_buffer_as_it_was(
    device: Device, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(T0 + 30)
    buffer = RollupBuffer(clock=clock)
    storage.write_batch(batch(device.pk, T0 + 1, T0 + 11), rollups=buffer)
    clock.now_s = T0 + 90  # minute 0 closes with the next batch
    real = storage._upsert_rollups

    def locked(*args: Any) -> None:
        raise OperationalError("database is locked")

    monkeypatch.setattr(storage, "_upsert_rollups", locked)
    with pytest.raises(OperationalError):
        storage.write_batch(batch(device.pk, T0 + 61, T0 + 71), rollups=buffer)
    assert list(buffer.minutes) == [T0], "minute 0 still held, minute 1 not folded in"
    assert buffer.minutes[T0][device.pk][0] == 2
    monkeypatch.setattr(storage, "_upsert_rollups", real)
    # The writer retries the same batch: every sample counted once.
    storage.write_batch(batch(device.pk, T0 + 61, T0 + 71), rollups=buffer)
    storage.flush_rollups(buffer, everything=True)
    assert tiers(device.pk) == from_raw(device.pk)
    assert tiers(device.pk)[(3600, T0)] == (4, 4)


def test_two_writers_on_one_device_add_up(device: Device) -> None:
    # Several collectors share PostgreSQL; a device moving between them has samples of the
    # same minute in both buffers. Each folds only the rows it inserted; upserts add.
    one, two = RollupBuffer(clock=Clock(T0 + 30)), RollupBuffer(clock=Clock(T0 + 30))
    storage.write_batch(batch(device.pk, T0 + 1, T0 + 11), rollups=one)
    storage.write_batch(batch(device.pk, T0 + 11, T0 + 21), rollups=two)  # one duplicate
    storage.flush_rollups(two, everything=True)
    storage.flush_rollups(one, everything=True)
    assert tiers(device.pk)[(60, T0)] == (3, 3)
    assert tiers(device.pk) == from_raw(device.pk)


def test_recovery_rebuilds_what_a_killed_writer_held(device: Device, network) -> None:
    other = network.core
    clock = Clock(T0 + 3600 + 30)
    buffer = RollupBuffer(clock=clock)
    storage.write_batch(batch(device.pk, T0 + 5), rollups=buffer)  # late: upserted at once
    storage.write_batch(batch(device.pk, T0 + 3600 + 1, T0 + 3600 + 11), rollups=buffer)
    storage.write_batch(batch(other.pk, T0 + 3600 + 2), rollups=buffer)
    # Part of the minute reached the rollups (a late sample), part was in memory.
    storage.write_batch(batch(device.pk, T0 + 3600 + 21), rollups=RollupBuffer(clock=Clock(0)))
    del buffer  # kill -9
    assert tiers(device.pk) != from_raw(device.pk)
    repaired = storage.recover_rollups(T0 - 3600, T0 + 7200)
    assert repaired == 2
    assert tiers(other.pk) == from_raw(other.pk)
    # The late sample's day part was in the killed writer's open day: repaired once the
    # day has ended (a range that holds no minute: the days only).
    assert tiers(device.pk)[(86400, T0)] == (3, 3)
    assert storage.recover_rollups(T0 + 86400, T0 + 86400) == 1
    assert tiers(device.pk) == from_raw(device.pk)
    assert tiers(device.pk)[(86400, T0)] == (4, 4)
    # Idempotent: nothing left to repair.
    assert storage.recover_rollups(T0 - 3600, T0 + 86400) == 0
    assert tiers(device.pk) == from_raw(device.pk)


def test_readers_see_the_minute_a_writer_still_holds(device: Device) -> None:
    now = time.time()
    minute = int(now) - int(now) % 60
    sample_s = minute - 30  # in the last whole minute before now: every window has it
    buffer = RollupBuffer(clock=Clock(sample_s + 1))
    storage.write_batch(batch(device.pk, sample_s, sample_s + 10, ok=True), rollups=buffer)
    storage.write_batch(batch(device.pk, sample_s + 20, ok=False), rollups=buffer)
    assert len(buffer) == 1 and tiers(device.pk) == {}, "held in memory, not in the rollups"

    end = minute
    for start in (end - 300, end - 3 * 3600, end - 3 * 86400):
        counts = slo.window_counts([device.pk], start, end)[device.pk]
        assert (counts.checks, counts.ok) == (3, 2)
    for step in (60, 3600):
        history = slo.device_history(device.pk, end - 7200, end + 60, step)
        [point] = [p for p in history["items"] if p["checks"]]
        assert (point["checks"], point["ok"]) == (3, 2)
        assert point["latency_max_ms"] == 2.0
    # Once flushed the figures do not move.
    storage.flush_rollups(buffer, everything=True)
    assert slo.window_counts([device.pk], end - 300, end)[device.pk].checks == 3


def test_the_writer_thread_closes_open_minutes_when_it_stops(device: Device) -> None:
    writer = Writer(batch_max=100, batch_seconds=0.05)
    assert writer.rollups is not None, "the real write path buffers rollups"
    now_ms = int(time.time() * 1000)
    writer.start()
    try:
        for offset in (0, 1000, 2000):
            writer.put(SampleRow(now_ms - offset, device.pk, True, 1500, None), None)
        deadline = time.monotonic() + 5
        while writer.samples_total < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert writer.samples_total == 3
    finally:
        assert writer.stop()
    assert tiers(device.pk) == from_raw(device.pk)
    assert sum(count for (res, _), (count, _) in tiers(device.pk).items() if res == 60) == 3


def test_the_writer_repairs_the_minutes_a_killed_writer_held(device: Device) -> None:
    now = time.time()
    minute = int(now) - int(now) % 60
    killed = RollupBuffer(clock=Clock(minute - 600 + 5))
    storage.write_batch(batch(device.pk, minute - 600 + 1), rollups=killed)
    assert tiers(device.pk) == {}
    writer = Writer(batch_max=100, batch_seconds=0.05)
    writer.schedule_recovery(now)
    writer.step(wait_s=0)
    assert tiers(device.pk) == from_raw(device.pk)
    # The second pass, for the minutes still open at start, waits until they closed; the
    # third, for the day open at start, until it closed.
    [(due_at, first, end), (day_due_at, day_first, day_end)] = writer._recoveries
    assert due_at > now + 180 and (first, end) == (rollups.open_horizon(now), minute + 120)
    day = minute - minute % 86400
    assert day_first == day_end == day + 86400
    assert day_due_at > day + 86400 + rollups.OPEN_HORIZON_S


def test_recovery_rebuilds_the_day_a_killed_writer_held(device: Device, network) -> None:
    other = network.core
    clock = Clock(T0 + 30)
    killed = RollupBuffer(clock=clock)
    storage.write_batch(batch(device.pk, T0 + 1, T0 + 11), rollups=killed)
    storage.write_batch(batch(other.pk, T0 + 2), rollups=killed)
    clock.now_s = T0 + 600
    storage.flush_rollups(killed)  # minute and hour rows written, the day held in memory
    assert killed.days and (86400, T0) not in tiers(device.pk)
    # The restarted writer holds the rest of the day and writes it when the day closes.
    survivor = RollupBuffer(clock=Clock(T0 + 620))
    storage.write_batch(batch(device.pk, T0 + 610), rollups=survivor)
    survivor.clock = Clock(T0 + 86400 + 10)
    storage.flush_rollups(survivor)
    del killed  # kill -9
    assert tiers(device.pk)[(86400, T0)] == (1, 1)
    # A day that has not ended by ``end`` is left alone.
    assert storage.recover_rollups(T0 + 3600, T0 + 80000) == 0
    assert storage.recover_rollups(T0 + 3600, T0 + 86400) == 2
    assert tiers(device.pk) == from_raw(device.pk)
    assert tiers(other.pk) == from_raw(other.pk)
    assert tiers(device.pk)[(86400, T0)] == (3, 3)
    # Idempotent.
    assert storage.recover_rollups(T0 + 3600, T0 + 86400) == 0
    assert tiers(device.pk) == from_raw(device.pk)


def test_the_day_tier_is_backfilled_and_used_only_where_complete(device: Device) -> None:
    # Five days of checks, every 30 minutes, written before the day tier existed.
    rows = batch(device.pk, *(T0 + 1800 * i + 7 for i in range(5 * 48)))
    rows.samples[10] = SampleRow(rows.samples[10].t, device.pk, False, None, "x")
    storage.write_batch(rows)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM monitoring_rollup WHERE resolution = 86400")
    windows = [(T0 + 3600, T0 + 4 * 86400 + 120), (T0, T0 + 5 * 86400)]

    def figures() -> list[tuple[int, int]]:
        found = slo.multi_window_counts([device.pk], windows)
        return [(counts[device.pk].checks, counts[device.pk].ok) for counts in found]

    def expected() -> list[tuple[int, int]]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT t, ok FROM monitoring_sample WHERE device_id = %s", [device.pk])
            samples = cursor.fetchall()
        return [
            (
                sum(1 for t, _ in samples if lo * 1000 <= t < hi * 1000),
                sum(1 for t, ok in samples if ok and lo * 1000 <= t < hi * 1000),
            )
            for lo, hi in windows
        ]

    assert figures() == expected() == [(191, 190), (240, 239)]
    # The upgrade: the writer starts the day tier mid-day; the older days have none yet.
    storage.write_batch(batch(device.pk, T0 + 4 * 86400 + 3600 * 20 + 30))
    assert slo.core.day_tier_from() == T0 + 5 * 86400, "the partial first day is not trusted"
    assert figures() == expected() == [(191, 190), (241, 240)]
    assert storage.backfill_day_rollups() == 5
    assert storage.backfill_day_rollups() == 0, "once"
    assert tiers(device.pk) == from_raw(device.pk)
    assert slo.core.day_tier_from() == T0 + 86400
    assert figures() == expected()
    plan = slo.core.plan_window(T0, T0 + 5 * 86400, horizon_s=2**40, day_from=T0 + 86400)
    days = {segment for segment, _ in plan if segment[0] == 86400}
    assert days == {(86400, T0 + 86400, T0 + 5 * 86400)}


def test_raw_counts_bucket_latencies_as_the_writer_does(device: Device) -> None:
    latencies_us = [None, 1, 1000, 1001, 2000, 5000, 99_999, 10**9]
    rows = Batch(
        samples=[
            SampleRow((T0 + i) * 1000, device.pk, lat is not None, lat, None)
            for i, lat in enumerate(latencies_us)
        ]
    )
    storage.write_batch(rows)
    [(checks, ok, *histogram)] = rollups.raw_counts(
        [device.pk], T0, T0 + 60, histogram=True
    ).values()
    [minute] = Rollup.objects.filter(device_id=device.pk, resolution=60)
    assert (checks, ok) == (minute.count, minute.ok_count) == (8, 7)
    assert histogram == [getattr(minute, f"h{i}") for i in range(16)]
    assert sum(histogram) == 7


def test_readers_do_not_use_the_day_row_a_writer_still_holds(device: Device) -> None:
    now = time.time()
    minute = int(now) - int(now) % 60
    day = minute - minute % 86400
    # Four days ago, written whole (every tier): the day tier exists, and windows longer
    # than two days are summed from day rows.
    storage.write_batch(batch(device.pk, day - 4 * 86400 + 100, day - 4 * 86400 + 200))
    # Today, well before the open horizon (or yesterday, just after midnight): minute and
    # hour rows written, the day row held by the writer.
    sample_s = max(day - 3600, minute - 3 * 3600) + 7
    buffer = RollupBuffer(clock=Clock(sample_s + 1))
    storage.write_batch(batch(device.pk, sample_s, sample_s + 10, ok=False), rollups=buffer)
    buffer.clock = Clock(sample_s + 120)
    storage.flush_rollups(buffer)
    assert buffer.days and (3600, sample_s - sample_s % 3600) in tiers(device.pk)
    for start in (day - 5 * 86400, day - 4 * 86400 + 60, sample_s - sample_s % 60):
        counts = slo.window_counts([device.pk], start, minute)[device.pk]
        expected = 2 + 2 * (start < day - 4 * 86400 + 100)
        assert (counts.checks, counts.ok) == (expected, expected - 2), start
