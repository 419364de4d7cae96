"""The writer thread's steps: batching by size and time, calls, retry and drop."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from django.db import IntegrityError, OperationalError

from resourcemonitor.monitoring.collector.writer import Writer, WriterStopped
from resourcemonitor.monitoring.storage import Batch, SampleRow, WriteReport

pytestmark = pytest.mark.timeout(30)


class FakeStore:
    """Stands in for storage.write_batch; fails on demand (the module boundary)."""

    def __init__(self, failures: list[Exception] | None = None) -> None:
        self.failures = list(failures or [])
        self.batches: list[list[int]] = []
        self.attempts = 0

    def __call__(self, batch: Batch, *, using: str) -> WriteReport:
        self.attempts += 1
        if self.failures:
            raise self.failures.pop(0)
        self.batches.append([s.t for s in batch.samples])
        return WriteReport(len(batch.samples), 0, 0, len(batch.states), len(batch.events), 0)


def sample(t: int) -> SampleRow:
    return SampleRow(t, 1, True, 1000, None)


def make(store: FakeStore, **kwargs: Any) -> Writer:
    options = {"batch_max": 3, "batch_seconds": 0.2, "retry_initial_s": 0.05, **kwargs}
    return Writer(write=store, **options)


def test_results_wait_for_batch_seconds_then_go_in_one_batch() -> None:
    store = FakeStore()
    writer = make(store, batch_max=100)
    writer.put(sample(1), None)
    writer.put(sample(2), None)
    writer.step(wait_s=0)
    assert store.batches == [], "not due yet"
    assert writer.queue_depth == 2
    writer.step(wait_s=1.0)  # sleeps until the deadline, 0.2 s after the first result
    assert store.batches == [[1, 2]]
    assert writer.queue_depth == 0 and writer.batches_total == 1


def test_a_full_batch_is_written_at_once_in_batches_of_batch_max() -> None:
    store = FakeStore()
    writer = make(store)
    for t in range(7):
        writer.put(sample(t), None)
    started = time.monotonic()
    writer.step(wait_s=5.0)
    assert time.monotonic() - started < 1.0, "a full batch does not wait for wait_s"
    assert store.batches == [[0, 1, 2], [3, 4, 5], [6]]


def test_a_locked_database_holds_the_batch_and_retries_with_backoff() -> None:
    locked = OperationalError("database is locked")
    store = FakeStore(failures=[locked, locked])
    writer = make(store, batch_max=2)
    writer.put(sample(1), None)
    writer.put(sample(2), None)
    writer.step(wait_s=0)
    assert store.batches == [] and writer.held_batches == 1
    # New results keep queueing while the database is away.
    writer.put(sample(3), None)
    writer.put(sample(4), None)
    deadline = time.monotonic() + 5
    while writer.held_batches and time.monotonic() < deadline:
        writer.step(wait_s=0.05)
    assert store.batches == [[1, 2], [3, 4]], "written in order once the lock is gone"
    assert writer.errors_total == 2
    assert store.attempts == 4


def test_backoff_doubles_and_is_capped() -> None:
    locked = OperationalError("database is locked")
    store = FakeStore(failures=[locked] * 5)
    writer = make(store, batch_max=1, retry_initial_s=0.01, retry_max_s=0.04)
    writer.put(sample(1), None)
    writer.step(wait_s=0)
    delays = [writer._retry_delay]
    for _ in range(4):
        writer.flush(force=True)
        delays.append(writer._retry_delay)
    assert delays == [0.02, 0.04, 0.04, 0.04, 0.04]


def test_a_batch_that_can_never_be_written_is_dropped_not_retried_forever() -> None:
    store = FakeStore(failures=[IntegrityError("FOREIGN KEY constraint failed")])
    writer = make(store, batch_max=1)
    writer.put(sample(1), None)
    writer.put(sample(2), None)
    writer.step(wait_s=0)
    assert store.batches == [[2]]
    assert writer.dropped_total == 1 and writer.held_batches == 0


def test_a_call_sees_everything_queued_before_it() -> None:
    store = FakeStore()
    writer = make(store, batch_max=100, batch_seconds=60)
    writer.put(sample(1), None)
    future = writer.call(lambda: len(store.batches))
    failing = writer.call(lambda: 1 / 0)
    writer.step(wait_s=0)
    assert future.result(timeout=1) == 1, "the pending batch was flushed first"
    with pytest.raises(ZeroDivisionError):
        failing.result(timeout=1)


def test_the_thread_flushes_on_stop_and_refuses_later_calls() -> None:
    store = FakeStore()
    writer = make(store, batch_max=100, batch_seconds=60)
    writer.start()
    for t in range(5):
        writer.put(sample(t), None)
    assert writer.call(threading.get_ident).result(timeout=5) != threading.get_ident()
    writer.put(sample(5), None)
    assert writer.stop(timeout=5) is True
    assert [t for batch in store.batches for t in batch] == [0, 1, 2, 3, 4, 5]
    with pytest.raises(WriterStopped):
        writer.call(int).result(timeout=1)


def test_stop_gives_up_after_the_grace_period_when_the_database_stays_away() -> None:
    store = FakeStore(failures=[OperationalError("unable to open database file")] * 1000)
    writer = make(store, shutdown_grace_s=0.3)
    writer.start()
    writer.put(sample(1), None)
    started = time.monotonic()
    assert writer.stop(timeout=5) is False
    assert time.monotonic() - started < 3


def test_a_crash_in_the_thread_is_visible_and_fails_waiting_calls() -> None:
    store = FakeStore(failures=[ValueError("a bug, not a database error")])
    writer = make(store, batch_max=1)
    writer.start()
    writer.put(sample(1), None)
    deadline = time.monotonic() + 5
    while not writer.crashed and time.monotonic() < deadline:
        time.sleep(0.01)
    assert writer.crashed
    with pytest.raises(WriterStopped):
        writer.call(int).result(timeout=1)
    writer.stop(timeout=5)
