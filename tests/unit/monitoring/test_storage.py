"""The bulk write path and its read side, on the real (SQLite) test database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from django.db import connection

from resourcemonitor.inventory.models import Device
from resourcemonitor.monitoring import rollups, storage
from resourcemonitor.monitoring.models import DeviceState, Event, Rollup, Sample
from resourcemonitor.monitoring.storage import Batch, EventRow, SampleRow, StateRow

pytestmark = pytest.mark.django_db

# 2026-01-01 00:00:00 UTC in ms; minute and hour buckets start here.
T0 = 1_767_225_600_000
NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _no_samples():
    # monitoring_sample is unmanaged: Django's flush between tests does not empty it.
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM monitoring_sample")


@pytest.fixture
def device(network) -> Device:
    return network.server


def state(device_id: int, status: str = "up", failures: int = 0) -> StateRow:
    return StateRow(
        device_id=device_id,
        status=status,
        since=NOW,
        last_check_at=NOW,
        last_ok_at=NOW,
        latency_ms=1.5,
        consecutive_failures=failures,
        consecutive_successes=0,
        last_error="",
        flapping=False,
        changed_at=NOW,
    )


def samples(device_id: int, latencies_us: list[int | None], start: int = T0) -> list[SampleRow]:
    return [
        SampleRow(start + i * 1000, device_id, lat is not None, lat, None if lat else "refused")
        for i, lat in enumerate(latencies_us)
    ]


def rollup(device_id: int, resolution: int) -> Rollup:
    return Rollup.objects.get(device_id=device_id, resolution=resolution)


def test_writing_the_same_batch_twice_stores_each_sample_once(device: Device) -> None:
    batch = Batch(samples=samples(device.id, [1000, 2000, None]))
    first = storage.write_batch(batch)
    second = storage.write_batch(batch)
    assert (first.samples_inserted, first.samples_ignored) == (3, 0)
    assert (second.samples_inserted, second.samples_ignored) == (0, 3)
    assert Sample.objects.filter(device=device).count() == 3
    # The replay did not count anything twice in the rollups either.
    assert rollup(device.id, 60).count == 3
    assert rollup(device.id, 3600).count == 3


def test_rollups_add_up_across_batches(device: Device) -> None:
    storage.write_batch(Batch(samples=samples(device.id, [1000, 3000])))
    storage.write_batch(Batch(samples=samples(device.id, [None, 70_000_000], start=T0 + 5000)))
    minute = rollup(device.id, 60)
    assert minute.bucket == T0 // 1000
    assert (minute.count, minute.ok_count, minute.latency_count) == (4, 3, 3)
    assert minute.latency_sum_ms == pytest.approx(1 + 3 + 70_000)
    assert (minute.latency_min_ms, minute.latency_max_ms) == (1.0, 70_000.0)
    # 1 ms → h0 (bounds are inclusive), 3 ms → h2 (2 < x ≤ 5), 70 s → h15 (the rest).
    assert (minute.h0, minute.h2, minute.h15) == (1, 1, 1)
    hour = rollup(device.id, 3600)
    assert (hour.count, hour.ok_count, hour.h15) == (4, 3, 1)


def test_minutes_fold_into_the_same_hour(device: Device) -> None:
    storage.write_batch(
        Batch(samples=samples(device.id, [1000]) + samples(device.id, [5000], start=T0 + 61_000))
    )
    assert Rollup.objects.filter(device=device, resolution=60).count() == 2
    hour = rollup(device.id, 3600)
    assert (hour.count, hour.latency_min_ms, hour.latency_max_ms) == (2, 1.0, 5.0)


def test_a_failure_only_bucket_keeps_null_latency_and_merges_later(device: Device) -> None:
    storage.write_batch(Batch(samples=samples(device.id, [None])))
    assert rollup(device.id, 60).latency_min_ms is None
    storage.write_batch(Batch(samples=samples(device.id, [4000], start=T0 + 1000)))
    minute = rollup(device.id, 60)
    assert (minute.latency_min_ms, minute.latency_max_ms, minute.count) == (4.0, 4.0, 2)


def test_device_states_are_upserted_and_the_last_one_in_a_batch_wins(network) -> None:
    core, server = network.core, network.server
    DeviceState.objects.create(device=core, status="up")
    batch = Batch()
    batch.add(None, state(core.id, "down", failures=3))
    batch.add(None, state(server.id, "up"))
    batch.add(None, state(server.id, "degraded"))
    report = storage.write_batch(batch)
    assert report.states == 2
    assert DeviceState.objects.get(device=core).status == "down"
    assert DeviceState.objects.get(device=core).consecutive_failures == 3
    stored = DeviceState.objects.get(device=server)
    assert stored.status == "degraded"
    assert stored.since == NOW and stored.latency_ms == 1.5


def test_events_are_written(device: Device) -> None:
    batch = Batch(events=[EventRow(device.id, NOW, "up", "down", "connection refused")])
    storage.write_batch(batch)
    event = Event.objects.get(device=device)
    assert (event.from_status, event.to_status, event.message) == (
        "up",
        "down",
        "connection refused",
    )
    assert event.at == NOW


def test_rows_of_a_deleted_device_are_dropped_not_poisoning_the_batch(network) -> None:
    gone = Device.objects.create(name="gone", address="127.0.0.9")
    gone_id = gone.id
    gone.delete()
    batch = Batch(samples=samples(gone_id, [1000]) + samples(network.core.id, [1000]))
    batch.add(None, state(gone_id))
    batch.events.append(EventRow(gone_id, NOW, "up", "down", "x"))
    report = storage.write_batch(batch)
    assert report.dropped_rows == 3
    assert report.samples_inserted == 1
    assert not DeviceState.objects.filter(device_id=gone_id).exists()


def test_samples_for_device_reads_a_range_and_keeps_the_newest_when_limited(network) -> None:
    core, server = network.core, network.server
    storage.write_batch(
        Batch(samples=samples(core.id, [1000, None, 3000, 4000]) + samples(server.id, [9000]))
    )
    rows = storage.samples_for_device(core.id, T0, T0 + 10_000, limit=10)
    assert [row["t"] for row in rows] == [T0, T0 + 1000, T0 + 2000, T0 + 3000]
    assert rows[0] == {"t": T0, "ok": True, "latency_ms": 1.0, "error": None}
    assert rows[1]["error"] == "refused" and rows[1]["ok"] is False
    newest = storage.samples_for_device(core.id, T0, T0 + 10_000, limit=2)
    assert [row["t"] for row in newest] == [T0 + 2000, T0 + 3000]
    assert storage.samples_for_device(core.id, T0 + 1000, T0 + 2000) == [rows[1]]


def test_rollups_for_device_returns_plain_dicts_with_a_histogram(device: Device) -> None:
    storage.write_batch(Batch(samples=samples(device.id, [1000, 3000, None])))
    start = T0 // 1000
    [row] = rollups.rollups_for_device(device.id, 60, start, start + 60)
    assert row["bucket"] == start and row["count"] == 3 and row["ok_count"] == 2
    assert row["latency_avg_ms"] == pytest.approx(2.0)
    assert len(row["histogram"]) == 16 and sum(row["histogram"]) == 2
    assert rollups.rollups_for_device(device.id, 60, start + 60, start + 120) == []
    with pytest.raises(ValueError):
        rollups.rollups_for_device(device.id, 30, start, start + 60)


def test_prune_samples_deletes_only_older_rows(device: Device) -> None:
    storage.write_batch(Batch(samples=samples(device.id, [1000] * 5)))
    deleted = storage.prune_samples(T0 + 3000, chunk_ms=1000)
    assert deleted == 3
    assert sorted(Sample.objects.filter(device=device).values_list("t", flat=True)) == [
        T0 + 3000,
        T0 + 4000,
    ]
    assert storage.prune_samples(T0) == 0


def test_histogram_index_and_percentile() -> None:
    assert rollups.histogram_index(1000) == 0
    assert rollups.histogram_index(1001) == 1
    assert rollups.histogram_index(60_000_000) == 14
    assert rollups.histogram_index(60_000_001) == 15
    histogram = [0] * 16
    histogram[2] = 90  # ≤ 5 ms
    histogram[6] = 10  # ≤ 100 ms
    assert rollups.histogram_percentile(histogram, 0.5) == 5.0
    assert rollups.histogram_percentile(histogram, 0.99) == 100.0
    assert rollups.histogram_percentile([0] * 16, 0.5) is None


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC),
        datetime(2026, 3, 4, 5, 6, 7, tzinfo=timezone(timedelta(hours=2))),
        None,
    ],
)
@pytest.mark.skipif(connection.vendor != "sqlite", reason="the SQLite adapter")
def test_the_fast_datetime_adapter_stores_what_django_stores(value: datetime | None) -> None:
    assert storage._sqlite_datetime(value) == connection.ops.adapt_datetimefield_value(value)


@pytest.mark.django_db(transaction=True)
def test_a_device_deleted_while_its_minute_is_buffered_does_not_poison_the_next_batch(
    network,
) -> None:
    """Its closed minute comes out of the buffer with the next batch; on SQLite the rollup
    foreign key would fail that batch (and every retry of it) if the rows were written."""
    gone = Device.objects.create(name="gone", address="127.0.0.9")
    t0 = 19_000 * 86_400
    clock = [t0 + 30.0]
    buffer = rollups.RollupBuffer(clock=lambda: clock[0])
    storage.write_batch(Batch(samples=samples(gone.id, [100], start=t0 * 1000)), rollups=buffer)
    gone_id = gone.id
    gone.delete()
    clock[0] = t0 + 70.0
    live = network.core.id
    report = storage.write_batch(
        Batch(samples=samples(live, [100], start=t0 * 1000 + 65_000)), rollups=buffer
    )
    assert report.samples_inserted == 1
    assert t0 not in buffer.minutes  # the closed minute is done with, not retried
    storage.flush_rollups(buffer, everything=True)
    assert Rollup.objects.get(device_id=live, resolution=60, bucket=t0 + 60).count == 1
    if connection.vendor == "sqlite":  # PostgreSQL's fast path writes it, unread (0009)
        assert not Rollup.objects.filter(device_id=gone_id).exists()
