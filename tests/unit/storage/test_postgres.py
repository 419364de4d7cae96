"""PostgreSQL's path: COPY ingest, daily partitions created on demand, dropped by retention.

Runs in ``make test``'s PostgreSQL pass (``DATABASE_URL=postgres://...``); skipped on SQLite.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import connection, transaction

from resourcemonitor.inventory.models import Device
from resourcemonitor.monitoring import retention, storage
from resourcemonitor.monitoring.models import Rollup, Sample
from resourcemonitor.monitoring.storage import DAY_MS, Batch, SampleRow

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL only"),
]


@pytest.fixture
def device(db) -> Device:
    return Device.objects.create(name="d1", address="127.0.0.1")


@pytest.fixture(autouse=True)
def _clean():
    yield
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM monitoring_sample")
    for name, day in storage.sample_partitions():
        if day < 20_000:  # the test's own far-past days only
            with connection.cursor() as cursor:
                cursor.execute(f"DROP TABLE {name}")
            storage._known_partitions.get(str(connection.settings_dict["NAME"]), set()).discard(day)


def test_samples_is_partitioned_by_day() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT partstrat FROM pg_partitioned_table "
            "WHERE partrelid = 'monitoring_sample'::regclass"
        )
        assert cursor.fetchone() == ("r",)


def test_copy_ingest_is_idempotent_and_creates_the_days_it_needs(device: Device) -> None:
    days = (19_000, 19_001)
    batch = Batch()
    for day in days:
        for i in range(300):
            batch.add(SampleRow(day * DAY_MS + i * 1000, device.id, i % 3 != 0, 2000, None), None)
    first = storage.write_batch(batch)
    again = storage.write_batch(batch)
    assert (first.samples_inserted, first.samples_ignored) == (600, 0)
    assert (again.samples_inserted, again.samples_ignored) == (0, 600)
    assert Sample.objects.filter(device=device).count() == 600
    names = {name for name, _ in storage.sample_partitions()}
    assert {storage.partition_name(d) for d in days} <= names
    # Rollups counted once despite the second write.
    minute = Rollup.objects.get(device=device, resolution=60, bucket=days[0] * 86_400)
    assert minute.count == 60 and minute.ok_count == 40
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {storage.partition_name(days[1])}")
        assert cursor.fetchone() == (300,)


def test_a_stray_row_waits_in_the_default_partition_until_its_day_exists(
    device: Device,
) -> None:
    day = 19_100
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO monitoring_sample VALUES (%s, %s, true, 5, NULL)",
            [day * DAY_MS + 1, device.id],
        )
        cursor.execute("SELECT count(*) FROM monitoring_sample_default")
        assert cursor.fetchone() == (1,)
    batch = Batch()
    batch.add(SampleRow(day * DAY_MS + 1, device.id, True, 5, None), None)
    batch.add(SampleRow(day * DAY_MS + 2, device.id, True, 5, None), None)
    report = storage.write_batch(batch)
    assert (report.samples_inserted, report.samples_ignored) == (1, 1)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM monitoring_sample_default")
        assert cursor.fetchone() == (0,)
        cursor.execute(f"SELECT count(*) FROM {storage.partition_name(day)}")
        assert cursor.fetchone() == (2,)


def test_retention_drops_whole_days_and_keeps_the_rest(device: Device, settings) -> None:
    settings.RESMON_RETENTION_RAW_DAYS = 2
    batch = Batch()
    for day in (19_000, 19_001, 19_002):
        batch.add(SampleRow(day * DAY_MS + 5, device.id, True, 1000, None), None)
        batch.add(SampleRow(day * DAY_MS + DAY_MS // 2, device.id, True, 1000, None), None)
    storage.write_batch(batch)
    # Now is 19_003 12:00: the cutoff is 19_001 12:00 (whole 19_000 goes, half of 19_001).
    now = datetime.fromtimestamp((19_003 * DAY_MS + DAY_MS // 2) / 1000, UTC)
    report = retention.prune(now=now)
    assert report.raw == 3
    left = sorted(Sample.objects.values_list("t", flat=True))
    assert left == [
        19_001 * DAY_MS + DAY_MS // 2,
        19_002 * DAY_MS + 5,
        19_002 * DAY_MS + DAY_MS // 2,
    ]
    days = {day for _, day in storage.sample_partitions()}
    assert 19_000 not in days and 19_001 in days
    today = int(datetime.now(UTC).timestamp() * 1000) // DAY_MS
    assert {today, today + 1, today + 2} <= days  # created ahead


def test_new_samples_are_copied_straight_in_and_odd_errors_survive_copy_text(
    device: Device, monkeypatch
) -> None:
    def careful(*args, **kwargs):
        raise AssertionError("a batch of new samples took the careful path")

    monkeypatch.setattr(storage, "_insert_samples", careful)
    errors = ["tab\there", "new\nline", "back\\slash", "cr\rx", "\\N", None]
    batch = Batch()
    for i, error in enumerate(errors):
        batch.add(SampleRow(19_000 * DAY_MS + i, device.id, error is None, None, error), None)
    report = storage.write_batch(batch)
    assert (report.samples_inserted, report.samples_ignored) == (len(errors), 0)
    stored = list(
        Sample.objects.filter(device=device).order_by("t").values_list("error", flat=True)
    )
    assert stored == errors


def test_a_batch_with_one_stored_sample_falls_back_and_writes_the_rest_once(
    device: Device,
) -> None:
    t0 = 19_000 * DAY_MS
    storage.write_batch(Batch(samples=[SampleRow(t0 + 5, device.id, True, 100, None)]))
    batch = Batch(samples=[SampleRow(t0 + n, device.id, True, 100, None) for n in range(10)])
    report = storage.write_batch(batch)
    assert (report.samples_inserted, report.samples_ignored) == (9, 1)
    assert Sample.objects.filter(device=device).count() == 10
    minute = Rollup.objects.get(device=device, resolution=60, bucket=t0 // 1000)
    assert minute.count == 10


def test_closed_minutes_are_copied_in_and_a_second_writer_falls_back_to_upserts(
    device: Device, monkeypatch
) -> None:
    from resourcemonitor.monitoring.rollups import RollupBuffer

    upserted: list[set[int]] = []
    real = storage._upsert_rollups

    def spy(cursor, backend, rows, data=None):
        upserted.append({key[1] for key in rows})
        real(cursor, backend, rows, data)

    monkeypatch.setattr(storage, "_upsert_rollups", spy)
    t0 = 19_000 * 86_400  # a day start, epoch seconds
    clock = [t0 + 30.0]
    one, two = RollupBuffer(clock=lambda: clock[0]), RollupBuffer(clock=lambda: clock[0])
    storage.write_batch(
        Batch(samples=[SampleRow(t0 * 1000 + 1, device.id, True, 100, None)]), rollups=one
    )
    storage.write_batch(
        Batch(samples=[SampleRow(t0 * 1000 + 2, device.id, True, 100, None)]), rollups=two
    )
    clock[0] = t0 + 70.0
    upserted.clear()
    storage.flush_rollups(one)
    assert 60 not in set().union(*upserted), "a new minute row is COPYed, not upserted"
    storage.flush_rollups(two)  # the same minute again: the COPY conflicts, upserts add
    assert 60 in upserted[-1]
    minute = Rollup.objects.get(device=device, resolution=60, bucket=t0)
    hour = Rollup.objects.get(device=device, resolution=3600, bucket=t0)
    assert (minute.count, hour.count) == (2, 2)


def test_a_deleted_devices_state_fails_the_commit_and_the_buffer_is_left_as_it_was(
    device: Device,
) -> None:
    """At the top level the fast attempt is the whole transaction: the deferred foreign
    key of a deleted device's state fails its COMMIT, nothing of it stays (samples, the
    buffer's plan), and the careful path writes the batch once without that device."""
    from resourcemonitor.monitoring.rollups import RollupBuffer
    from resourcemonitor.monitoring.storage import StateRow

    gone = Device.objects.create(name="gone", address="127.0.0.2")
    gone_id = gone.id
    gone.delete()
    t0 = 19_000 * 86_400
    buffer = RollupBuffer(clock=lambda: t0 + 30.0)
    now = datetime.now(UTC)
    batch = Batch()
    for device_id, t in ((device.id, 1), (gone_id, 2)):
        batch.add(
            SampleRow(t0 * 1000 + t, device_id, True, 1500, None),
            StateRow(device_id, "up", now, now, now, 1.5, 0, 1, "", False, now),
        )
    report = storage.write_batch(batch, rollups=buffer)
    assert (report.samples_inserted, report.dropped_rows) == (1, 2)
    assert list(Sample.objects.values_list("device_id", flat=True)) == [device.id]
    assert {m: list(b) for m, b in buffer.minutes.items()} == {t0: [device.id]}
    assert buffer.minutes[t0][device.id][0] == 1  # counted once, not once per attempt
    storage.flush_rollups(buffer, everything=True)
    assert Rollup.objects.get(device=device, resolution=60, bucket=t0).count == 1


def test_rollup_rows_travel_as_copy_binary_with_nulls_and_fall_back_to_text(
    device: Device,
) -> None:
    from decimal import Decimal

    from resourcemonitor.monitoring.rollups import ROLLUP_VALUE_COLUMNS

    histogram = list(range(16))
    rows: dict[tuple[int, int, int], list[Any]] = {
        (device.id, 60, 60): [3, 2, 2, 1.25, 0.001, 1e9, *histogram],
        (device.id, 60, 120): [4, 0, 0, 0.0, None, None, *([0] * 16)],
        (device.id, 3600, 0): [2**31 - 1, 1, 1, 0.5, 0.5, 0.5, *histogram],
    }
    assert storage._rollup_copy_binary(rows) is not None
    odd: dict[tuple[int, int, int], list[Any]] = {
        (device.id, 86400, 0): [Decimal(7), 7, 0, 0.0, None, None, *([0] * 16)]
    }
    assert storage._rollup_copy_binary(odd) is None  # a numeric sum: sent as text
    with transaction.atomic(), connection.cursor() as cursor:
        storage._upsert_rollups(cursor.cursor, storage._backend(connection), {**rows, **odd})
    stored = {
        (r.device_id, r.resolution, r.bucket): [getattr(r, c) for c in ROLLUP_VALUE_COLUMNS]
        for r in Rollup.objects.filter(device=device)
    }
    assert stored == {**rows, (device.id, 86400, 0): [7, 7, 0, 0.0, None, None, *([0] * 16)]}


def test_rollups_are_partitioned_by_resolution_and_hour_rows_update_in_place(
    device: Device,
) -> None:
    """Hour and day rows have pages of their own with room to spare, and no index holds a
    column an update changes: the writer's 60 updates an hour of each hour row are HOT."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid), c.reloptions "
            "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'monitoring_rollup'::regclass ORDER BY c.relname"
        )
        partitions = cursor.fetchall()
    assert partitions == [
        ("monitoring_rollup_day", "FOR VALUES IN (86400)", ["fillfactor=50"]),
        ("monitoring_rollup_hour", "FOR VALUES IN (3600)", ["fillfactor=50"]),
        ("monitoring_rollup_minute", "FOR VALUES IN (60)", None),
        ("monitoring_rollup_other", "DEFAULT", None),
    ]
    hour = {(device.id, 3600, 0): [1, 1, 1, 1.5, 1.5, 1.5, *([0] * 3), 1, *([0] * 12)]}
    with transaction.atomic(), connection.cursor() as cursor:
        backend = storage._backend(connection)
        for _ in range(6):  # one insert, five updates
            storage._upsert_rollups(cursor.cursor, backend, hour)
        cursor.execute(
            "SELECT pg_stat_get_xact_tuples_hot_updated('monitoring_rollup_hour'::regclass)"
        )
        assert cursor.fetchone() == (5,)
    assert Rollup.objects.get(device=device, resolution=3600, bucket=0).count == 6


def test_states_go_in_as_copy_text_with_odd_values_and_update_in_place(device: Device) -> None:
    """Every column of a state survives the COPY text (escapes, NULLs, microseconds),
    and rewriting a state whose ``changed_at`` stays is a HOT update (fillfactor 50)."""
    from resourcemonitor.monitoring.models import DeviceState
    from resourcemonitor.monitoring.storage import StateRow

    at = datetime(2026, 12, 6, 18, 56, 44, 123456, tzinfo=UTC)
    # Datetimes travel as microseconds from 2000-01-01: before it, and far after, exactly.
    before = datetime(1999, 12, 31, 23, 59, 59, 1, tzinfo=UTC)
    later = datetime(2100, 1, 1, 0, 0, 0, 999999, tzinfo=UTC)
    odd = StateRow(
        device.id,
        "down",
        before,
        at,
        None,
        None,
        3,
        0,
        "tab\there\nnew\\line\r",
        True,
        later,
        "0120",
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reloptions FROM pg_class WHERE oid = 'monitoring_devicestate'::regclass"
        )
        assert cursor.fetchone() == (["fillfactor=50"],)
    with transaction.atomic():
        storage.write_batch(Batch(states={device.id: odd}))
        again = StateRow(device.id, "down", at, at, at, 12.25, 4, 0, "x", False, later, "01201")
        storage.write_batch(Batch(states={device.id: again}))
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_stat_get_xact_tuples_hot_updated('monitoring_devicestate'::regclass)"
            )
            assert cursor.fetchone() == (1,)
    stored = DeviceState.objects.get(device=device)
    assert (stored.status, stored.last_ok_at, stored.latency_ms, stored.flapping) == (
        "down",
        at,
        12.25,
        False,
    )
    storage.write_batch(Batch(states={device.id: odd}))
    stored = DeviceState.objects.get(device=device)
    assert (stored.since, stored.last_check_at, stored.changed_at) == (before, at, later)
    assert (stored.last_ok_at, stored.latency_ms) == (None, None)
    assert (stored.last_error, stored.flapping, stored.flap_history) == (
        "tab\there\nnew\\line\r",
        True,
        "0120",
    )
