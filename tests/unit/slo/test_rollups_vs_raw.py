"""Property: for any stream of samples, availability from the rollups equals the raw count,
and every rollup tier equals the raw samples, however the writer's buffer was fed."""

from __future__ import annotations

from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resourcemonitor.monitoring import slo
from resourcemonitor.monitoring.rollups import RollupBuffer, aggregate_rollups
from resourcemonitor.monitoring.storage import (
    Batch,
    SampleRow,
    flush_rollups,
    recover_rollups,
    write_batch,
)

BASE_S = 1_767_225_600  # 2026-01-01 00:00 UTC
SPAN_S = 4 * 86400  # long enough for hour tiers and both kinds of edge correction

samples = st.lists(
    st.tuples(st.integers(0, SPAN_S * 1000 - 1), st.booleans()),
    max_size=150,
    unique_by=lambda row: row[0],
)
minute = st.integers(0, SPAN_S // 60)


def _reset() -> None:
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM monitoring_sample")
        cursor.execute("DELETE FROM monitoring_rollup")


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    rows=samples,
    a=minute,
    b=minute,
    others=st.lists(minute, max_size=4),
    gap=st.tuples(minute, st.integers(0, 600)),
)
def test_window_counts_from_rollups_equal_raw(network, rows, a, b, others, gap):
    _reset()
    device = network.core.pk
    batch = Batch()
    # Written in a few batches, as the collector would: rollups merge across batches.
    for index, (offset_ms, ok) in enumerate(rows):
        batch.add(SampleRow(BASE_S * 1000 + offset_ms, device, ok, 1000, None), None)
        if index % 40 == 39:
            write_batch(batch)
            batch = Batch()
    write_batch(batch)
    start_s, end_s = BASE_S + 60 * min(a, b), BASE_S + 60 * max(a, b) + 60
    excluded_from = BASE_S + 60 * gap[0]
    excluded_to = excluded_from + 60 * gap[1]
    counts = slo.window_counts(
        [device], start_s, end_s, excluded={device: [(excluded_from, excluded_to)]}
    ).get(device, slo.Counts())

    def counted(t_ms: int, start: int = start_s) -> bool:
        t_s = t_ms // 1000
        minute_start = t_s - t_s % 60
        in_maintenance = excluded_from <= minute_start < excluded_to
        return start <= t_s < end_s and not in_maintenance

    raw = [ok for offset_ms, ok in rows if counted(BASE_S * 1000 + offset_ms)]
    assert counts.checks == len(raw)
    assert counts.ok == sum(raw)

    # Several windows sharing their end (a report and its burn windows), in one go.
    starts = [BASE_S + 60 * m for m in others if BASE_S + 60 * m < end_s]
    many = slo.multi_window_counts(
        [device],
        [(start, end_s) for start in starts],
        excluded={device: [(excluded_from, excluded_to)]},
    )
    for start, got in zip(starts, many, strict=True):
        expected = [ok for offset_ms, ok in rows if counted(BASE_S * 1000 + offset_ms, start)]
        found = got.get(device, slo.Counts())
        assert (found.checks, found.ok) == (len(expected), sum(expected))


class StreamClock:
    def __init__(self, now_s: float) -> None:
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s


def _tiers() -> dict[tuple[int, int, int], tuple[int, int, int, list[int]]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT device_id, resolution, bucket, count, ok_count, latency_count, "
            + ", ".join(f"h{i}" for i in range(16))
            + " FROM monitoring_rollup"
        )
        return {tuple(row[:3]): (row[3], row[4], row[5], list(row[6:])) for row in cursor}


def _from_raw() -> dict[tuple[int, int, int], tuple[int, int, int, list[int]]]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT t, device_id, ok, latency_us FROM monitoring_sample")
        rows = cursor.fetchall()
    return {
        key: (agg[0], agg[1], agg[2], list(agg[6:])) for key, agg in aggregate_rollups(rows).items()
    }


# (offset ms, ok, latency µs or None, which writer); written in arrival order.
arrivals = st.lists(
    st.tuples(
        st.integers(0, 3 * 3600 * 1000),
        st.booleans(),
        st.one_of(st.none(), st.integers(1, 3_000_000)),
        st.integers(0, 1),
    ),
    max_size=120,
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    rows=arrivals,
    batch_size=st.integers(1, 25),
    replay=st.booleans(),
    crash=st.booleans(),
    lateness_s=st.integers(0, 400),
)
def test_buffered_rollups_equal_raw_whatever_the_order(
    network, rows, batch_size, replay, crash, lateness_s
):
    """Two writers with open buckets in memory, samples arriving out of order (late ones
    for minutes already closed), batches replayed, one writer killed and its buckets
    rebuilt: every tier ends equal to the raw samples."""
    _reset()
    devices = [network.core.pk, network.server.pk]
    clocks = [StreamClock(BASE_S), StreamClock(BASE_S)]
    buffers = [RollupBuffer(clock=clocks[0]), RollupBuffer(clock=clocks[1])]
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        for writer in (0, 1):
            mine = [row for row in chunk if row[3] == writer]
            if not mine:
                continue
            batch = Batch()
            for offset_ms, ok, latency_us, _ in mine:
                t = BASE_S * 1000 + offset_ms
                batch.add(SampleRow(t, devices[offset_ms % 2], ok, latency_us, None), None)
            # The writer's clock runs a little ahead of what it receives (late samples).
            clock = clocks[writer]
            clock.now_s = max(clock.now_s, max(s.t for s in batch.samples) / 1000)
            clock.now_s += lateness_s * (start % 3 == 0)
            write_batch(batch, rollups=buffers[writer])
            if replay:
                write_batch(batch, rollups=buffers[writer])
    if crash:
        # Writer 0 is killed: its open buckets are gone, its samples stay. The repair runs
        # only over minutes and days the live writer has closed (in the product: older
        # than the open horizon), here all of them.
        flush_rollups(buffers[1], everything=True)
        buffers[0] = RollupBuffer()
        recover_rollups(BASE_S - 3600, BASE_S + 2 * 86400)
    for buffer in buffers:
        flush_rollups(buffer, everything=True)
    assert _tiers() == _from_raw()
