"""Storage outages, crashes and shutdown, counted sample by sample (issue 6, item 5).

Each scenario runs real ``resmon collect`` processes against 40 devices checked every
second, injects one fault, then counts each device's samples per schedule slot (see
harness.py). Outages last 6 s rather than the issue's 30 s to keep the suite short: with
a 1 s interval that is 6 missed writes per device and several spooled batches, the same
code path as 30 s. Every scenario prints a ``FAULT ...`` line with its counts.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.faults.harness import STOP_BOUND_S, Harness, TcpProxy, count_samples

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
DEVICES = 40
# The outage the issue names: storage away for 30 s while the collector keeps probing.
OUTAGE_S = 30.0
# The SIGTERM/kill -9 test holds its lock across two restarts; it needs less.
RESTART_LOCK_S = 10.0
LOCKER = """
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
c.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
c.execute("COMMIT")
"""


@pytest.fixture
def sqlite_harness(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path, "sqlite", DEVICES)
    yield harness
    harness.close()


@pytest.fixture
def pg_harness(tmp_path: Path) -> Iterator[Harness]:
    try:
        import psycopg

        psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", connect_timeout=3).close()
    except Exception as exc:
        pytest.skip(f"no PostgreSQL at 127.0.0.1:5432: {exc}")
    harness = Harness(tmp_path, "postgres", DEVICES)
    yield harness
    harness.close()


def lock_sqlite(harness: Harness, seconds: float) -> subprocess.Popen[str]:
    locker = subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(harness.db.path), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"
    return locker


def spool_files(harness: Harness) -> list[Path]:
    return sorted((harness.tmp / "spool").glob("*/*.batch"))


def wait_for_empty_spool(h: Harness, timeout: float = 30.0) -> None:
    """Until the collector has replayed its spool (bounded: fails after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while spool_files(h) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not spool_files(h), f"the spool did not drain within {timeout} s:\n{h.log()}"


def report(fault: str, counts) -> None:  # type: ignore[no-untyped-def]
    print(counts.line(fault))


def test_sqlite_locked_mid_run_loses_and_doubles_nothing(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    collector = h.collect()
    h.wait_samples(DEVICES * 2)
    start = time.time()
    time.sleep(2)
    locker = lock_sqlite(h, OUTAGE_S)
    time.sleep(OUTAGE_S / 2)
    assert spool_files(h), f"nothing spooled while the database was locked:\n{h.log()}"
    locker.wait(OUTAGE_S + 10)
    wait_for_empty_spool(h)  # the replay, at most one retry period after the lock goes
    time.sleep(2)  # and a few normal seconds
    end = time.time()
    assert h.terminate(collector) < STOP_BOUND_S
    assert collector.returncode == 0, h.log()
    counts = count_samples(h.db.samples(), h.db.device_ids(), window=(start, end))
    report(f"sqlite locked {OUTAGE_S:.0f} s", counts)
    assert counts.doubled == 0
    assert counts.lost == 0, h.log()
    assert counts.expected >= DEVICES * 10
    assert not spool_files(h)
    assert "database unavailable" in h.log()


def test_postgres_gone_mid_run_loses_and_doubles_nothing(pg_harness: Harness) -> None:
    h = pg_harness
    proxy = TcpProxy()
    try:
        url = f"postgres://postgres@127.0.0.1:{proxy.port}/{h.db.name}"
        collector = h.collect(env={"DATABASE_URL": url})
        h.wait_samples(DEVICES * 2)
        start = time.time()
        time.sleep(2)
        proxy.set_cut(True)
        time.sleep(OUTAGE_S)
        assert spool_files(h), f"nothing spooled while PostgreSQL was away:\n{h.log()}"
        proxy.set_cut(False)
        wait_for_empty_spool(h)
        time.sleep(2)
        end = time.time()
        took = h.terminate(collector)
        assert took < STOP_BOUND_S, f"SIGTERM took {took:.1f} s:\n{h.log()}"
        assert collector.returncode == 0, h.log()
    finally:
        proxy.close()
    counts = count_samples(h.db.samples(), h.db.device_ids(), window=(start, end))
    report(f"postgresql unreachable {OUTAGE_S:.0f} s", counts)
    assert counts.doubled == 0
    assert counts.lost == 0, h.log()
    assert counts.expected >= DEVICES * 10
    assert not spool_files(h)


def test_kill_9_loses_at_most_the_unwritten_results_and_restart_resumes(
    sqlite_harness: Harness,
) -> None:
    h = sqlite_harness
    first = h.collect()
    h.wait_samples(DEVICES * 2)
    start = time.time()
    time.sleep(3)
    first.kill()  # SIGKILL, mid-batch: nothing of the process runs after this
    killed = time.time()
    first.wait(5)
    second = h.collect()
    h.wait_samples(len(h.db.samples()) + DEVICES)
    resumed = min(t for t, _ in h.db.samples() if t > killed * 1000) / 1000
    time.sleep(4)
    end = time.time()
    assert h.terminate(second) < STOP_BOUND_S
    counts = count_samples(
        h.db.samples(), h.db.device_ids(), window=(start, end), down=[(killed, resumed)]
    )
    report("kill -9 then restart", counts)
    assert counts.doubled == 0
    # The bound (docs/operations.md): the checks in flight and the results queued for the
    # current batch (RESMON_BATCH_SECONDS = 0.2 s here): at most one slot per device at 1 s.
    assert counts.per_device_lost_max <= 1, counts


def test_sigterm_and_kill_9_during_an_outage_keep_the_spool_for_the_next_start(
    sqlite_harness: Harness,
) -> None:
    h = sqlite_harness
    first = h.collect()
    h.wait_samples(DEVICES * 2)
    start = time.time()
    time.sleep(2)
    locker = lock_sqlite(h, RESTART_LOCK_S)
    time.sleep(3)
    stopped = time.time()
    took = h.terminate(first)  # SIGTERM while the database is locked
    assert took < STOP_BOUND_S, f"SIGTERM took {took:.1f} s"
    assert first.returncode == 0, h.log()
    kept = spool_files(h)
    assert kept, "the unwritten batches should be in the spool"

    second = h.collect()  # adopts the spool; the database is still locked
    time.sleep(3)
    second.kill()  # and a kill -9 on top: the spool stays on disk
    killed = time.time()
    second.wait(5)
    assert spool_files(h)
    locker.wait(RESTART_LOCK_S + 10)

    third = h.collect()
    deadline = time.monotonic() + 20
    while spool_files(h) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not spool_files(h), h.log()
    time.sleep(3)
    end = time.time()
    assert h.terminate(third) < STOP_BOUND_S
    ts = sorted(t for t, _ in h.db.samples())
    second_start = min(t for t in ts if t > stopped * 1000 + 500) / 1000
    third_start = min(t for t in ts if t > killed * 1000) / 1000
    counts = count_samples(
        h.db.samples(),
        h.db.device_ids(),
        window=(start, end),
        down=[(stopped, second_start), (killed, third_start)],
    )
    report("SIGTERM + kill -9 during a 10 s lock", counts)
    assert counts.doubled == 0
    # SIGTERM loses nothing (spooled); the kill -9 at most the batch being formed.
    assert counts.per_device_lost_max <= 1, counts
    assert "will be written first" in h.log()
