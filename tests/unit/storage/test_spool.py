"""The durable spool and the writer's use of it: order, durability, adoption, the cap."""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from django.db import OperationalError

from resourcemonitor.monitoring.collector.spool import Spool, decode, encode
from resourcemonitor.monitoring.collector.writer import Writer
from resourcemonitor.monitoring.storage import Batch, EventRow, SampleRow, StateRow, WriteReport

pytestmark = pytest.mark.timeout(30)
NOW = datetime(2026, 11, 27, 12, 0, 0, 123456, tzinfo=UTC)


class FlakyStore:
    """Stands in for storage.write_batch (the module boundary): down while ``down``."""

    def __init__(self) -> None:
        self.down = False
        self.written: list[int] = []

    def __call__(self, batch: Batch, *, using: str) -> WriteReport:
        if self.down:
            raise OperationalError("database is locked")
        self.written.extend(s.t for s in batch.samples)
        return WriteReport(len(batch.samples), 0, 0, len(batch.states), len(batch.events), 0)


def full_batch() -> Batch:
    batch = Batch()
    state = StateRow(7, "down", NOW, NOW, None, None, 3, 0, "timeout", False, NOW)
    batch.add(
        SampleRow(1000, 7, False, None, "timeout"),
        state,
        [EventRow(7, NOW, "up", "down", "went down")],
    )
    batch.add(SampleRow(2000, 8, True, 1234, None), None)
    return batch


def test_a_batch_survives_encoding() -> None:
    batch = full_batch()
    again = decode(encode(batch))
    assert again.samples == batch.samples
    assert again.states == batch.states
    assert again.events == batch.events


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="format"):
        decode(b'{"v": 99}')


def make_writer(store: FlakyStore, root: Path, **kwargs: Any) -> Writer:
    spool = Spool(root, max_bytes=kwargs.pop("max_bytes", 10_000_000))
    return Writer(
        write=store, batch_max=2, batch_seconds=0.05, retry_initial_s=0.01, spool=spool, **kwargs
    )


def put(writer: Writer, *ts: int) -> None:
    for t in ts:
        writer.put(SampleRow(t, 1, True, 10, None), None)


def test_an_outage_spools_to_disk_and_replays_in_order(tmp_path: Path) -> None:
    store = FlakyStore()
    writer = make_writer(store, tmp_path)
    assert writer.spool is not None
    writer.spool.open()
    store.down = True
    put(writer, 1, 2, 3, 4, 5)
    assert not writer.flush(force=True)
    assert len(writer.spool) == 3  # batches of 2, 2, 1: all on disk, none in memory
    assert writer.held_batches == 3 and writer.queue_depth == 0
    assert len(list(writer.spool.dir.glob("*.batch"))) == 3
    info = writer.spool_info()
    assert info["spool_batches"] == 3 and info["spool_bytes"] > 0
    put(writer, 6)  # while the spool is in use, new batches go to disk behind it
    writer._take_batches()
    assert len(writer.spool) == 4
    store.down = False
    assert writer.flush(force=True)
    assert store.written == [1, 2, 3, 4, 5, 6]
    assert len(writer.spool) == 0 and not list(writer.spool.dir.glob("*.batch"))
    writer.spool.close()
    assert not writer.spool.dir.exists()


def test_a_healthy_database_never_touches_the_disk(tmp_path: Path) -> None:
    store = FlakyStore()
    writer = make_writer(store, tmp_path)
    assert writer.spool is not None
    writer.spool.open()
    put(writer, 1, 2, 3)
    assert writer.flush(force=True)
    assert store.written == [1, 2, 3]
    assert not list(writer.spool.dir.glob("*.batch"))


def test_a_stop_during_an_outage_leaves_the_spool_for_the_next_start(tmp_path: Path) -> None:
    store = FlakyStore()
    first = make_writer(store, tmp_path)
    first.start()
    store.down = True
    put(first, 1, 2, 3)
    deadline = time.monotonic() + 5
    while first.errors_total == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    put(first, 4)
    started = time.monotonic()
    first.stop()
    assert time.monotonic() - started < 2.0  # no retrying while the database is down
    assert store.written == []
    leftover = sorted(p.name for p in tmp_path.glob("*/*.batch"))
    assert len(leftover) >= 2

    # A torn write of the killed process: ignored, never half a batch.
    (tmp_path / next(iter(tmp_path.iterdir())).name / "000000000099.tmp").write_bytes(b"{")
    store.down = False
    second = make_writer(store, tmp_path)
    second.start()
    put(second, 5)
    assert second.stop()
    assert store.written == [1, 2, 3, 4, 5]  # the old batches first, each exactly once
    assert second.spool is not None and second.spool.adopted_batches == len(leftover)
    assert list(tmp_path.iterdir()) == []


def test_a_live_writers_spool_is_not_adopted(tmp_path: Path) -> None:
    store = FlakyStore()
    store.down = True
    first = make_writer(store, tmp_path)
    assert first.spool is not None
    first.spool.open()
    put(first, 1, 2)
    first.flush(force=True)
    second = Spool(tmp_path, max_bytes=10_000_000)
    second.open()
    assert second.adopted_batches == 0 and len(first.spool) == 1
    second.close()


def test_the_cap_drops_the_oldest_whole_batches_and_counts_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = FlakyStore()
    size = len(encode(_two(1)))
    writer = make_writer(store, tmp_path, max_bytes=size * 3 + 10)
    assert writer.spool is not None
    writer.spool.open()
    store.down = True
    put(writer, *range(1, 11))  # five batches of two
    writer.flush(force=True)
    assert len(writer.spool) == 3
    assert writer.spool.dropped_batches == 2 and writer.spool.dropped_samples == 4
    assert "over its cap" in caplog.text
    store.down = False
    writer.flush(force=True)
    assert store.written == [5, 6, 7, 8, 9, 10]  # the newest kept, in order


def _two(t: int) -> Batch:
    batch = Batch()
    batch.add(SampleRow(t, 1, True, 10, None), None)
    batch.add(SampleRow(t + 1, 1, True, 10, None), None)
    return batch


def test_a_spool_file_from_before_the_flap_history_still_decodes() -> None:
    state = StateRow(7, "down", NOW, NOW, None, None, 3, 0, "timeout", False, NOW, "0022")
    batch = Batch(states={7: state})
    assert decode(encode(batch)).states[7].flap_history == "0022"
    old = json.loads(encode(batch))
    old["states"][0].pop()  # the eleven fields an older version wrote
    assert decode(json.dumps(old).encode()).states[7] == dataclasses.replace(state, flap_history="")
