"""Property: for any stream of samples, availability from the rollups equals the raw count."""

from __future__ import annotations

from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resourcemonitor.monitoring import slo
from resourcemonitor.monitoring.storage import Batch, SampleRow, write_batch

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
