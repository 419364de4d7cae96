"""The scheduler: phases spread over the interval, restarts keep them, lag is measured,
and a device is never checked twice at once."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest

from resourcemonitor.monitoring.collector import Collector
from resourcemonitor.monitoring.collector.inventory import DeviceConfig, Shard
from resourcemonitor.monitoring.collector.runner import Tracked
from resourcemonitor.monitoring.collector.scheduler import (
    LagWindow,
    Scheduler,
    first_due,
    phase_fraction,
)
from resourcemonitor.monitoring.collector.state import TrackedState
from resourcemonitor.monitoring.collector.writer import Writer
from resourcemonitor.monitoring.probes import Probe, ProbeResult
from resourcemonitor.monitoring.status import Status

pytestmark = pytest.mark.timeout(30)

WALL = 1_800_000_000.0  # any wall-clock time
MONO = 1000.0


def test_phases_spread_evenly_over_the_interval() -> None:
    interval = 10.0
    bins = [0] * 10
    for device_id in range(1, 2001):
        due = first_due(
            interval_s=interval, phase=phase_fraction(device_id), now_mono=MONO, now_wall=WALL
        )
        assert MONO <= due < MONO + interval
        bins[int(due - MONO)] += 1
    # 200 per second on average; a herd would put most of them in one bin.
    assert min(bins) > 140 and max(bins) < 260, bins


def test_a_restart_keeps_each_devices_phase() -> None:
    interval = 10.0
    for device_id in (1, 42, 9999):
        phase = phase_fraction(device_id)
        first = first_due(interval_s=interval, phase=phase, now_mono=0.0, now_wall=WALL)
        # "Restart" 37.3 s later, on a monotonic clock that starts elsewhere.
        later = first_due(interval_s=interval, phase=phase, now_mono=500.0, now_wall=WALL + 37.3)
        wall_first = WALL + first
        wall_later = WALL + 37.3 + (later - 500.0)
        assert (wall_later - wall_first) % interval == pytest.approx(0.0, abs=1e-6) or (
            (wall_later - wall_first) % interval == pytest.approx(interval, abs=1e-6)
        )


def test_pop_due_reschedules_each_key_one_interval_later() -> None:
    scheduler = Scheduler()
    first = scheduler.add(7, 2.0, now_mono=MONO, now_wall=WALL)
    assert scheduler.pop_due(first - 0.001) == []
    assert scheduler.pop_due(first) == [(7, first)]
    assert scheduler.next_due() == pytest.approx(first + 2.0)


def test_missed_slots_are_skipped_not_made_up() -> None:
    scheduler = Scheduler()
    first = scheduler.add(7, 1.0, now_mono=MONO, now_wall=WALL)
    # The loop was stalled for 5.5 intervals: one check now, the next at the next slot.
    assert scheduler.pop_due(first + 5.5) == [(7, first)]
    assert scheduler.next_due() == pytest.approx(first + 6.0)
    assert scheduler.skipped_total == 5


def test_remove_and_reschedule_drop_the_old_entries() -> None:
    scheduler = Scheduler()
    scheduler.add(1, 1.0, now_mono=MONO, now_wall=WALL)
    scheduler.add(2, 1.0, now_mono=MONO, now_wall=WALL)
    scheduler.remove(1)
    scheduler.add(2, 5.0, now_mono=MONO, now_wall=WALL)  # a new interval
    assert len(scheduler) == 1
    popped = scheduler.pop_due(MONO + 10.0)
    assert [key for key, _ in popped] == [2]
    assert scheduler.interval(2) == 5.0


def test_lag_window_percentiles_and_expiry() -> None:
    window = LagWindow(window_s=60.0)
    for index in range(100):
        window.add(10.0, index / 1000.0)  # 0..99 ms
    p50, p99 = window.percentiles(10.0)
    assert p50 == pytest.approx(50.0, abs=1.0)
    assert p99 == pytest.approx(98.0, abs=1.0)
    assert window.percentiles(100.0) == [0.0, 0.0], "older than the window"


# -- the collector's side of scheduling, with a stub writer and a stub probe -----------


class RecordingWriter(Writer):
    """Keeps what would be written; no thread, no database."""

    def __init__(self) -> None:
        super().__init__(batch_max=100, batch_seconds=1.0)
        self.records: list[Any] = []

    def start(self) -> None:
        pass

    def stop(self, timeout: float | None = None) -> bool:
        return True

    def put(self, sample: Any, state: Any, events: Any = ()) -> None:
        self.records.append((sample, state, tuple(events)))


class GateProbe(Probe):
    """Answers OK after ``delay`` seconds; counts how many checks run at once."""

    method = "tcp"

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay
        self.running: dict[int, int] = {}
        self.max_running: dict[int, int] = {}

    async def check(self, target: Any) -> ProbeResult:
        key = target.id
        self.running[key] = self.running.get(key, 0) + 1
        self.max_running[key] = max(self.max_running.get(key, 0), self.running[key])
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.running[key] -= 1
        return ProbeResult.success(self.delay * 1000)


def config(device_id: int, **changes: Any) -> DeviceConfig:
    base = DeviceConfig(
        id=device_id,
        name=f"d{device_id}",
        address="127.0.0.1",
        method="tcp",
        port=9,
        path="",
        tls=False,
        expect_status=200,
        body_match="",
        interval_s=0.1,
        timeout_s=0.5,
        fail_threshold=1,
        recover_threshold=1,
        latency_threshold_ms=None,
        parent_id=None,
        feed_id=None,
    )
    return replace(base, **changes)


def make_collector(probe: Probe, concurrency: int, configs: list[DeviceConfig]) -> Collector:
    collector = Collector(shard=Shard(), concurrency=concurrency, writer=RecordingWriter())
    collector.probes = {"tcp": probe}
    loop = asyncio.get_running_loop()
    for item in configs:
        collector.devices[item.id] = Tracked(item, TrackedState.new(_now()))
        collector.scheduler.add(item.id, item.interval_s, now_mono=loop.time(), now_wall=WALL)
    return collector


def _now() -> Any:
    from django.utils import timezone

    return timezone.now()


async def _drive(collector: Collector, seconds: float) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        collector.launch_due(loop.time())
        await asyncio.sleep(0.01)
    await collector.wait_idle()


async def test_a_slow_device_is_never_checked_twice_at_once() -> None:
    # Each check takes 0.25 s at a 0.1 s interval: most slots find it still running.
    probe = GateProbe(delay=0.25)
    collector = make_collector(probe, concurrency=10, configs=[config(1)])
    await _drive(collector, 1.0)
    assert probe.max_running[1] == 1
    assert collector.overruns_total >= 2
    assert 2 <= collector.checks_total <= 5


async def test_lag_is_measured_and_waiting_for_a_slot_never_times_out() -> None:
    # One slot, eight devices due together, 0.1 s per check: the last one starts ~0.7 s
    # late. Its 0.3 s timeout starts with the probe, so it still succeeds.
    probe = GateProbe(delay=0.1)
    devices = [config(i, interval_s=5.0, timeout_s=0.3) for i in range(1, 9)]
    collector = make_collector(probe, concurrency=1, configs=devices)
    loop = asyncio.get_running_loop()
    due = loop.time()
    for tracked in collector.devices.values():
        assert collector.launch_check(tracked, due)
    await collector.wait_idle()
    statuses = {t.state.status for t in collector.devices.values()}
    assert statuses == {Status.UP}
    p50, p99 = collector.lag.percentiles(loop.time())
    # Lower bounds are physics (the slot was busy); upper bounds only catch nonsense.
    assert 250 <= p50 <= 2000, p50
    assert 600 <= p99 <= 4000, p99
    assert len(collector.writer.records) == 8  # type: ignore[attr-defined]


async def test_the_hard_timeout_wins_over_a_hanging_probe() -> None:
    probe = GateProbe(delay=30.0)
    collector = make_collector(probe, concurrency=1, configs=[config(1, timeout_s=0.2)])
    loop = asyncio.get_running_loop()
    started = loop.time()
    collector.launch_check(collector.devices[1], started)
    await collector.wait_idle()
    assert loop.time() - started < 2.0
    state = collector.devices[1].state
    assert state.status == Status.DOWN
    assert state.last_error == "timeout after 0.2 s"


class TotalGateProbe(GateProbe):
    """GateProbe that also counts checks in flight across all devices."""

    def __init__(self, delay: float) -> None:
        super().__init__(delay)
        self.now = 0
        self.peak = 0

    async def check(self, target: Any) -> ProbeResult:
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            return await super().check(target)
        finally:
            self.now -= 1


async def test_concurrency_is_bounded_and_waiting_checks_run_in_order() -> None:
    probe = TotalGateProbe(delay=0.05)
    devices = [config(i, interval_s=5.0, timeout_s=1.0) for i in range(1, 21)]
    collector = make_collector(probe, concurrency=3, configs=devices)
    due = asyncio.get_running_loop().time()
    for tracked in collector.devices.values():
        assert collector.launch_check(tracked, due)
    assert collector.heartbeat_info()["in_flight"] == 20  # 3 running, 17 waiting
    await collector.wait_idle()
    assert probe.peak == 3
    assert collector.checks_total == 20
    samples = [sample for sample, _, _ in collector.writer.records]  # type: ignore[attr-defined]
    assert [s.device_id for s in samples] == list(range(1, 21)), "first come, first served"
    assert all(s.ok for s in samples)


class BrokenProbe(Probe):
    method = "tcp"

    async def check(self, target: Any) -> ProbeResult:
        if target.id == 1:
            raise RuntimeError("a bug")
        raise TimeoutError  # a probe's own clock ran out: a timeout, like the collector's


async def test_a_probe_bug_is_an_error_result_and_its_own_timeout_a_timeout() -> None:
    collector = make_collector(BrokenProbe(), concurrency=5, configs=[config(1), config(2)])
    due = asyncio.get_running_loop().time()
    for tracked in collector.devices.values():
        collector.launch_check(tracked, due)
    await collector.wait_idle()
    errors = {s.device_id: s.error for s, _, _ in collector.writer.records}  # type: ignore[attr-defined]
    assert errors == {1: "error", 2: "timeout"}
    assert collector.devices[1].state.last_error == "RuntimeError: a bug"
    assert collector.errors_total == 1
    assert not any(t.in_flight for t in collector.devices.values())


async def test_stop_writes_nothing_for_checks_cut_short_or_never_started() -> None:
    probe = GateProbe(delay=30.0)
    devices = [config(i, interval_s=5.0, timeout_s=20.0) for i in range(1, 6)]
    collector = make_collector(probe, concurrency=2, configs=devices)
    due = asyncio.get_running_loop().time()
    for tracked in collector.devices.values():
        collector.launch_check(tracked, due)
    await asyncio.sleep(0.05)
    await collector.stop(grace_s=0.1)
    assert collector.writer.records == []  # type: ignore[attr-defined]
    assert collector.checks_total == 0
    assert not any(t.in_flight for t in collector.devices.values())
    assert collector.heartbeat_info()["in_flight"] == 0
