"""The collector: one asyncio loop that schedules checks, runs probes, polls feeds and
hands every result to the writer thread.

Its loop is made of small single-step methods that tests call directly (like
healthchecks' ``sendalerts``): ``refresh_inventory()``, ``launch_due(now)``,
``launch_check(...)``, ``record_result(...)``, ``poll_feed(...)``, ``beat()``. The
asyncio side holds the authoritative in-memory state of its devices (status, streaks,
flap history) and applies the pure state machine; the writer only persists.

It never touches the ORM: every database operation goes through ``self.writer.run(fn)``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import socket
import time
from collections import deque
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone

from resourcemonitor import __version__
from resourcemonitor.monitoring.collector.feeds import (
    FeedApplied,
    FeedError,
    apply_feed,
    fetch_and_parse,
    record_feed_failure,
)
from resourcemonitor.monitoring.collector.inventory import (
    DeviceConfig,
    FeedConfig,
    InventorySnapshot,
    Rendezvous,
    Shard,
    load_inventory,
)
from resourcemonitor.monitoring.collector.scheduler import LagWindow, Scheduler
from resourcemonitor.monitoring.collector.state import DOWNISH, Topology, TrackedState
from resourcemonitor.monitoring.collector.writer import Writer, WriterStopped, default_spool
from resourcemonitor.monitoring.metricstore import MetricRow, rows_for, write_metrics
from resourcemonitor.monitoring.models import Heartbeat
from resourcemonitor.monitoring.probes import PROBES, Probe, ProbeResult, errors
from resourcemonitor.monitoring.storage import EventRow, SampleRow, StateRow

log = logging.getLogger("resourcemonitor.collector")

HEARTBEAT_S = 5.0
# Probe metrics (SNMP) are written at most this long after they were measured.
METRICS_FLUSH_S = 1.0
# On stop, checks in flight get this long to finish before they are cancelled
# (a cancelled check writes nothing: no result is better than a made-up one).
STOP_GRACE_S = 2.0
NOT_IN_FEED = "not in the feed's last answer"
# The scheduler wakes at most once per tick and starts everything due within it. Most
# of a check's CPU is not Python but the wake-ups around it (epoll, the loop's own work,
# cold caches after the other processes ran): 1,000 checks/s started 2 ms apart cost
# ~256 us of the loop's thread each, started in 20 ms batches ~200 us (HTTP, 10,000
# devices, bench/collector.py), and a batch of connects completes in one epoll wake-up.
# 50 ms bought nothing more. A check may start up to one tick early or late; lag is
# counted from 0.
SCHEDULER_TICK_S = 0.02
# Hard timeouts are enforced by one sweep timer, not a timer per check: a check is
# cancelled at most this long after its timeout (see _Deadlines).
TIMEOUT_RESOLUTION_S = 0.02


@dataclass(slots=True)
class Tracked:
    """A device the collector owns: its settings and its live state."""

    config: DeviceConfig
    state: TrackedState
    in_flight: bool = False


class _Check:
    """One check in flight: what the done callback needs, and whether it timed out."""

    __slots__ = ("collector", "due", "finished", "probe", "task", "timed_out", "tracked", "wall")

    def __init__(self, collector: Collector, tracked: Tracked, probe: Probe, due: float) -> None:
        self.collector = collector
        self.tracked = tracked
        self.probe = probe
        self.due = due
        self.wall = 0.0
        self.task: asyncio.Task[ProbeResult] | None = None
        self.timed_out = False
        self.finished = False

    def done(self, task: asyncio.Task[ProbeResult]) -> None:
        self.collector._check_done(self, task)


class _Deadlines:
    """The hard timeout of every check in flight, on one timer.

    ``asyncio.timeout`` per check (plus a Semaphore and a wrapping coroutine) was a
    large share of the collector's per-check CPU: each arms and cancels an event-loop
    timer. Checks start in time order, so for one timeout value their deadlines are in
    order too: one FIFO per distinct timeout, and one timer armed at the earliest head,
    at most every ``TIMEOUT_RESOLUTION_S``. A finished check stays in its FIFO until its
    deadline passes (it is then skipped): O(1) per check, no search.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queues: dict[float, deque[tuple[float, _Check]]] = {}
        self.handle: asyncio.TimerHandle | None = None
        self.armed_at = 0.0

    def add(self, check: _Check, deadline: float, timeout_s: float) -> None:
        queue = self.queues.get(timeout_s)
        if queue is None:
            queue = self.queues[timeout_s] = deque()
        queue.append((deadline, check))
        if self.handle is None or deadline < self.armed_at - TIMEOUT_RESOLUTION_S:
            self._arm(deadline)

    def _arm(self, when: float) -> None:
        if self.handle is not None:
            self.handle.cancel()
        self.armed_at = when
        self.handle = self.loop.call_at(when, self.sweep)

    def sweep(self) -> None:
        self.handle = None
        now = self.loop.time()
        earliest: float | None = None
        for timeout_s, queue in list(self.queues.items()):
            while queue and queue[0][0] <= now:
                _, check = queue.popleft()
                if not check.finished and check.task is not None:
                    check.timed_out = True
                    check.task.cancel()
            if not queue:
                del self.queues[timeout_s]
            elif earliest is None or queue[0][0] < earliest:
                earliest = queue[0][0]
        if earliest is not None:
            self._arm(max(earliest, now + TIMEOUT_RESOLUTION_S))

    def clear(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        self.queues.clear()


def default_instance(shard: Shard | Rendezvous) -> str:
    suffix = f"[{shard}]" if shard.count > 1 else ""
    return f"collector{suffix}@{socket.gethostname()}:{os.getpid()}"


class Collector:
    """Schedules and runs the checks of one shard of the inventory."""

    def __init__(
        self,
        *,
        shard: Shard | Rendezvous | None = None,
        concurrency: int | None = None,
        inventory_refresh_s: float | None = None,
        heartbeat_s: float = HEARTBEAT_S,
        batch_max: int | None = None,
        batch_seconds: float | None = None,
        writer: Writer | None = None,
        instance: str | None = None,
    ) -> None:
        self.shard: Shard | Rendezvous = shard or Shard()
        self.concurrency = concurrency or settings.RESMON_COLLECTOR_CONCURRENCY
        self.inventory_refresh_s = inventory_refresh_s or settings.RESMON_INVENTORY_REFRESH_S
        self.heartbeat_s = heartbeat_s
        self.writer = writer or Writer(
            batch_max=batch_max or settings.RESMON_BATCH_MAX,
            batch_seconds=batch_seconds or settings.RESMON_BATCH_SECONDS,
            spool=default_spool(),  # reliability (issue 6): durable spool, writer.py
        )
        self.instance = instance or default_instance(self.shard)

        self.devices: dict[int, Tracked] = {}
        self.feeds: dict[int, FeedConfig] = {}
        self.topology = Topology()
        self.external_statuses: dict[int, str] = {}
        self.scheduler = Scheduler(salt=b"device")
        self.feed_scheduler = Scheduler(salt=b"feed")
        self.lag = LagWindow()
        self.probes: dict[str, Probe] = {}

        self.checks_total = 0
        self.errors_total = 0
        # Slots skipped because the device's previous check was still running.
        self.overruns_total = 0
        self.inventory_loaded = False

        self._tasks: set[asyncio.Task[Any]] = set()
        # Checks started and not finished; checks due but waiting for a free slot.
        self._running = 0
        self._waiting: deque[_Check] = deque()
        self._deadlines: _Deadlines | None = None
        self._feeds_in_flight: set[int] = set()
        self._feed_errors: dict[int, str] = {}
        self._feed_session: aiohttp.ClientSession | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self._started = False
        self._warned_methods: set[str] = set()
        self._last_beat = (0.0, 0)
        # Issue 7: probe metrics (SNMP), written with one writer call per METRICS_FLUSH_S.
        self._metric_rows: list[MetricRow] = []

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Open probes and sessions, start the writer thread. Idempotent."""
        if self._started:
            return
        self._started = True
        self._loop = asyncio.get_running_loop()
        self._deadlines = _Deadlines(self._loop)
        self.writer.start()
        for method, probe_class in PROBES.items():
            probe = probe_class(concurrency=self.concurrency)
            await probe.start()
            self.probes[method] = probe
        self._feed_session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=32),
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=None),
            headers={"User-Agent": f"resourcemonitor/{__version__} (feed poller)"},
        )
        self._last_beat = (asyncio.get_running_loop().time(), 0)

    async def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """Stop scheduling, let checks in flight finish (briefly), flush, close."""
        self.request_stop()
        # Checks still waiting for a slot never start (no result rather than a late one).
        while self._waiting:
            self._waiting.popleft().tracked.in_flight = False
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace_s)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        if self._deadlines is not None:
            self._deadlines.clear()
        self.flush_metrics()
        if self._started and self.inventory_loaded:
            # The last numbers (e.g. for a --once run), marked stopped: the other collectors
            # take this one's devices over at their next heartbeat, not after it goes stale.
            await self.beat(stopped=True)
        for probe in self.probes.values():
            await probe.close()
        self.probes.clear()
        if self._feed_session is not None:
            await self._feed_session.close()
            self._feed_session = None
        # Blocking join, off the loop: the writer flushes what is queued, then ends.
        if self._started:
            await asyncio.to_thread(self.writer.stop)
        self._started = False

    def request_stop(self) -> None:
        """No new checks; ``run`` returns soon after. Safe to call from any thread."""
        loop = self._loop
        if loop is not None and not loop.is_closed() and _running_loop() is not loop:
            loop.call_soon_threadsafe(self.request_stop)
            return
        self._stopping = True
        self._wake()

    @property
    def stopping(self) -> bool:
        return self._stopping

    async def run(self, *, duration: float | None = None) -> None:
        """Run until ``request_stop()`` (or for ``duration`` seconds), then stop cleanly."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + duration if duration is not None else None
        await self.start()
        background: list[asyncio.Task[None]] = []
        try:
            await self._load_until_ready(deadline)
            if self.inventory_loaded:
                # The long-lived objects (Django, the inventory: several per device) are
                # set aside from the cyclic GC: its full collections walked them all again,
                # a few % of the collector's CPU at 10,000 devices (py-spy, --native).
                gc.collect()
                gc.freeze()
                log.info(
                    "collector %s: %d devices, %d feeds, shard %s, concurrency %d",
                    self.instance,
                    len(self.devices),
                    len(self.feeds),
                    self.shard,
                    self.concurrency,
                )
                await self.beat()
                background = [
                    asyncio.create_task(
                        self._every(self.inventory_refresh_s, self.refresh_inventory)
                    ),
                    asyncio.create_task(self._every(self.heartbeat_s, self.beat)),
                    # Push devices (issue 7): silence makes them down; see check_silent_push.
                    asyncio.create_task(
                        self._every(settings.RESMON_PUSH_SILENCE_CHECK_S, self.check_silent_push)
                    ),
                ]
                if settings.RESMON_PRUNE_EVERY_S > 0:  # retention: see prune_history
                    background.append(
                        asyncio.create_task(
                            self._every(settings.RESMON_PRUNE_EVERY_S, self.prune_history)
                        )
                    )
                if isinstance(self.shard, Rendezvous):  # scale-out (issue 5): see check_members
                    background.append(
                        asyncio.create_task(self._every(self.heartbeat_s / 2, self.check_members))
                    )
                await self._schedule_loop(deadline)
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await self.stop()

    async def run_once(self) -> int:
        """Check every device and poll every feed once, write, stop. Returns checks done."""
        await self.start()
        try:
            if not await self.refresh_inventory():
                raise RuntimeError("could not load the inventory (is the database migrated?)")
            now = asyncio.get_running_loop().time()
            for tracked in list(self.devices.values()):
                if tracked.config.id in self.scheduler:
                    self.launch_check(tracked, now)
            for feed in list(self.feeds.values()):
                self.launch_feed(feed)
            await self.wait_idle()
        finally:
            await self.stop()
        return self.checks_total

    async def _load_until_ready(self, deadline: float | None) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping and not await self.refresh_inventory():
            if deadline is not None and loop.time() >= deadline:
                return
            await self._sleep_until(loop.time() + self.inventory_refresh_s)

    async def _every(self, period_s: float, step: Any) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time() + period_s
        while not self._stopping:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            next_at += period_s
            if not self._stopping:
                await step()

    async def _schedule_loop(self, deadline: float | None) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping:
            now = loop.time()
            if deadline is not None and now >= deadline:
                break
            if self.writer.crashed:
                raise RuntimeError("the writer thread crashed (see the log above)")
            self.launch_due(now + SCHEDULER_TICK_S)
            candidates = [now + 1.0]
            for due in (self.scheduler.next_due(), self.feed_scheduler.next_due(), deadline):
                if due is not None:
                    candidates.append(due)
            await self._sleep_until(max(min(candidates), now + SCHEDULER_TICK_S))

    async def _sleep_until(self, when: float) -> None:
        """Sleep until ``when`` (loop time) or until ``_wake()``; cheaper than wait_for."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiter = waiter
        handle = loop.call_at(when, _resolve, waiter)
        try:
            await waiter
        finally:
            handle.cancel()
            self._waiter = None

    def _wake(self) -> None:
        if self._waiter is not None:
            _resolve(self._waiter)

    # -- inventory --------------------------------------------------------------------------

    async def refresh_inventory(self) -> bool:
        """Reload the inventory (on the writer thread) and apply the differences."""
        known = frozenset(self.devices)
        try:
            snapshot = await self.writer.run(load_inventory, shard=self.shard, known_ids=known)
        except (DatabaseError, WriterStopped) as exc:
            self.errors_total += 1
            log.warning("could not load the inventory: %s", exc)
            return False
        self.apply_inventory(snapshot, known_ids=known)
        self.inventory_loaded = True
        return True

    def apply_inventory(self, snapshot: InventorySnapshot, *, known_ids: frozenset[int]) -> None:
        """Add, remove and reconfigure devices and feeds without a restart.

        Only devices known when the snapshot was requested can be removed: one added
        meanwhile (by a feed) is simply not in that snapshot yet.
        """
        loop = asyncio.get_running_loop()
        now_mono, now_wall = loop.time(), time.time()
        now = timezone.now()
        self.topology.update(snapshot.parents, snapshot.names)
        self.external_statuses = snapshot.external_statuses
        for device_id in known_ids - snapshot.devices.keys():
            self.devices.pop(device_id, None)
            self.scheduler.remove(device_id)
        for device_id, config in snapshot.devices.items():
            tracked = self.devices.get(device_id)
            if tracked is None:
                stored = snapshot.states.get(device_id)
                state = TrackedState.from_stored(stored) if stored else TrackedState.new(now)
                self.devices[device_id] = tracked = Tracked(config, state)
                self._schedule(tracked, now_mono, now_wall)
            elif tracked.config != config:
                previous, tracked.config = tracked.config, config
                if (previous.interval_s, previous.method) != (config.interval_s, config.method):
                    self._schedule(tracked, now_mono, now_wall)
        for feed_id in self.feeds.keys() - snapshot.feeds.keys():
            self.feed_scheduler.remove(feed_id)
        new_feeds = [f for i, f in snapshot.feeds.items() if i not in self.feeds]
        for feed_id, feed in snapshot.feeds.items():
            previous_feed = self.feeds.get(feed_id)
            if previous_feed is None or previous_feed.interval_s != feed.interval_s:
                self.feed_scheduler.add(
                    feed_id, feed.interval_s, now_mono=now_mono, now_wall=now_wall
                )
        self.feeds = dict(snapshot.feeds)
        if self._started and not self._stopping:
            # A feed just added (or found at start) is polled now, not up to an interval
            # later: its devices should show up while the user is still looking.
            for feed in new_feeds:
                self.launch_feed(feed)
        self._wake()

    def _schedule(self, tracked: Tracked, now_mono: float, now_wall: float) -> None:
        config = tracked.config
        if config.is_feed:
            self.scheduler.remove(config.id)  # feed devices arrive with their feed
        elif config.method not in PROBES:
            self.scheduler.remove(config.id)
            if config.method not in self._warned_methods:
                self._warned_methods.add(config.method)
                log.warning(
                    "no probe for check method %r; those devices are not checked", config.method
                )
        else:
            self.scheduler.add(config.id, config.interval_s, now_mono=now_mono, now_wall=now_wall)

    def status_of(self, device_id: int) -> str | None:
        tracked = self.devices.get(device_id)
        return tracked.state.status if tracked else self.external_statuses.get(device_id)

    # -- checks -----------------------------------------------------------------------------

    def launch_due(self, now: float) -> int:
        """Start every check (and feed poll) that is due; returns how many started."""
        started = 0
        for device_id, due in self.scheduler.pop_due(now):
            tracked = self.devices.get(device_id)
            if tracked is not None and self.launch_check(tracked, due):
                started += 1
        for feed_id, _ in self.feed_scheduler.pop_due(now):
            feed = self.feeds.get(feed_id)
            if feed is not None and self.launch_feed(feed):
                started += 1
        return started

    def launch_check(self, tracked: Tracked, due: float) -> bool:
        """Start one check unless the previous one of this device is still running.

        Beyond ``concurrency`` checks in flight it waits (first come, first served) for a
        free slot; its hard timeout starts when it starts, so a check that waited is
        late, never failed for being late.
        """
        if tracked.in_flight:
            self.overruns_total += 1
            return False
        probe = self.probes.get(tracked.config.method)
        if probe is None:
            return False
        tracked.in_flight = True
        check = _Check(self, tracked, probe, due)
        if self._running < self.concurrency:
            self._start_check(check)
        else:
            self._waiting.append(check)
        return True

    def _start_check(self, check: _Check) -> None:
        """One Task running the probe's coroutine; the result is taken in ``_check_done``.

        No wrapping coroutine, Semaphore or ``asyncio.timeout``: a counter bounds the
        concurrency and ``_Deadlines`` the time (the per-check plumbing they replace cost
        nearly as much CPU as uvloop's connect itself: docs/scaling.md).
        """
        loop = self._loop or asyncio.get_running_loop()
        if self._deadlines is None:
            self._deadlines = _Deadlines(loop)
        config = check.tracked.config
        started = loop.time()
        check.wall = time.time()
        self.lag.add(started, started - check.due if started > check.due else 0.0)
        self._running += 1
        task = loop.create_task(check.probe.check(config))
        check.task = task
        self._tasks.add(task)
        task.add_done_callback(check.done)
        self._deadlines.add(check, started + config.timeout_s, config.timeout_s)

    def _check_done(self, check: _Check, task: asyncio.Task[ProbeResult]) -> None:
        check.finished = True
        self._running -= 1
        self._tasks.discard(task)
        tracked = check.tracked
        config = tracked.config
        try:
            if task.cancelled():
                if not check.timed_out:
                    return  # cancelled by stop(): a cancelled check writes nothing
                result = ProbeResult.failure(errors.TIMEOUT, timeout=config.timeout_s)
            else:
                exc = task.exception()
                if exc is None:
                    result = task.result()
                elif isinstance(exc, TimeoutError):
                    result = ProbeResult.failure(errors.TIMEOUT, timeout=config.timeout_s)
                else:  # a probe bug must not stop the collector
                    self.errors_total += 1
                    log.warning("probe %s crashed on device %d: %r", config.method, config.id, exc)
                    result = ProbeResult.failure(errors.ERROR, detail=errors.exception_detail(exc))
            self.checks_total += 1
            if self.devices.get(config.id) is tracked:
                self.record_result(tracked, result, check.wall)
        finally:
            tracked.in_flight = False
            waiting = self._waiting
            while waiting and self._running < self.concurrency and not self._stopping:
                self._start_check(waiting.popleft())

    async def wait_idle(self) -> None:
        """Until no check is in flight or waiting for a slot (and no feed poll runs)."""
        # Once stopping, waiting checks never start: do not wait for them.
        while self._tasks or (self._waiting and not self._stopping):
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _track_task(self, coroutine: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def record_result(self, tracked: Tracked, result: ProbeResult, wall: float) -> None:
        """Apply the state machine, then queue the sample, the state and any events."""
        config = tracked.config
        now = datetime.fromtimestamp(wall, UTC)
        blocked_by = None
        if not result.ok:
            blocked_by = self.topology.blocked_by(config.id, self.status_of)
        change = tracked.state.apply(result, config, now=now, blocked_by=blocked_by)
        latency_us = None
        if result.ok and result.latency_ms is not None:
            latency_us = round(result.latency_ms * 1000.0)
        sample = SampleRow(int(wall * 1000), config.id, result.ok, latency_us, result.error)
        events: tuple[EventRow, ...] = ()
        if change is not None:
            events = (
                EventRow(
                    config.id, change.at, change.from_status, change.to_status, change.message
                ),
            )
        # Issue 7: notes a probe attaches (an SNMP reboot) become events without a status
        # change (from_status == to_status).
        status = tracked.state.status
        for note in getattr(result, "notes", ()):
            events = (*events, EventRow(config.id, now, status, status, note[:300]))
        self.writer.put(sample, StateRow.of(config.id, tracked.state), events)
        metrics = getattr(result, "metrics", None)
        if metrics:
            self.queue_metrics(rows_for(int(wall * 1000), config.id, metrics))
        if change is not None and change.to_status in DOWNISH:
            self._cascade_unreachable(config.id, now)

    def queue_metrics(self, rows: list[MetricRow]) -> None:
        """Batch metric rows; the first of a batch schedules its write a moment later.

        Apart from the writer's batches (a separate call, not part of ``write_batch``), so
        the hot path for samples stays as it is. Best effort: a write that fails (storage
        away) is logged and dropped, not spooled.
        """
        self._metric_rows.extend(rows)
        if len(self._metric_rows) == len(rows) and self._loop is not None:
            self._loop.call_later(METRICS_FLUSH_S, self.flush_metrics)

    def flush_metrics(self) -> None:
        if not self._metric_rows:
            return
        rows, self._metric_rows = self._metric_rows, []
        future = self.writer.call(write_metrics, rows)

        def done(finished: Any) -> None:
            error = finished.exception()
            if error is not None:
                log.warning("could not store %d metric rows: %s", len(rows), error)

        future.add_done_callback(done)

    def _cascade_unreachable(self, device_id: int, now: datetime) -> None:
        """Descendants already down are unreachable now that an ancestor is down."""
        parent_name = self.topology.name(device_id)
        for child_id in self.topology.descendants(device_id):
            child = self.devices.get(child_id)
            if child is None:
                continue
            change = child.state.mark_unreachable(parent_name, now)
            if change is not None:
                event = EventRow(
                    child_id, now, change.from_status, change.to_status, change.message
                )
                self.writer.put(None, StateRow.of(child_id, child.state), (event,))

    # -- feeds ------------------------------------------------------------------------------

    def launch_feed(self, feed: FeedConfig) -> bool:
        if feed.id in self._feeds_in_flight:
            return False
        self._feeds_in_flight.add(feed.id)
        self._track_task(self.poll_feed(feed))
        return True

    async def poll_feed(self, feed: FeedConfig) -> None:
        """Fetch, parse and apply one feed; a bad feed makes its devices unknown."""
        assert self._feed_session is not None
        polled_at = timezone.now()
        try:
            try:
                parsed = await fetch_and_parse(
                    self._feed_session, feed.url, timeout_s=feed.timeout_s
                )
            except FeedError as exc:
                await self.feed_failed(feed, str(exc), polled_at)
                return
            applied = await self.writer.run(apply_feed, feed.id, parsed, polled_at=polled_at)
            if self._feed_errors.pop(feed.id, None) is not None:
                log.info("feed %s: working again", feed.url)
            self.apply_feed_result(applied, time.time())
        except WriterStopped:
            pass
        except DatabaseError as exc:
            self.errors_total += 1
            log.warning("could not store feed %s: %s", feed.url, exc)
        finally:
            self._feeds_in_flight.discard(feed.id)

    def apply_feed_result(self, applied: FeedApplied, wall: float) -> None:
        """Each listed device is one result; devices no longer listed become unknown."""
        now = datetime.fromtimestamp(wall, UTC)
        for config, status in applied.devices:
            tracked = self.devices.get(config.id)
            if tracked is None:
                tracked = self.devices[config.id] = Tracked(config, TrackedState.new(now))
                self.topology.names[config.id] = config.name
            else:
                tracked.config = config
            # The feed reports no latency: None rather than a made-up 0 ms.
            result = ProbeResult(True) if status else ProbeResult.failure(errors.FEED_DOWN)
            self.checks_total += 1
            self.record_result(tracked, result, wall)
        for device_id in applied.missing:
            self._mark_unknown(device_id, NOT_IN_FEED, now)

    async def feed_failed(self, feed: FeedConfig, error: str, polled_at: datetime) -> None:
        self.errors_total += 1
        # Once per new reason, not on every poll of a feed that stays broken.
        if self._feed_errors.get(feed.id) != error:
            self._feed_errors[feed.id] = error
            log.warning("feed %s: %s", feed.url, error)
        device_ids = await self.writer.run(record_feed_failure, feed.id, error, polled_at=polled_at)
        text = errors.describe(errors.FEED_ERROR, detail=error)
        now = timezone.now()
        for device_id in device_ids:
            self._mark_unknown(device_id, text, now)

    def _mark_unknown(self, device_id: int, text: str, now: datetime) -> None:
        tracked = self.devices.get(device_id)
        if tracked is None:
            return
        change = tracked.state.mark_unknown(text, now)
        events: tuple[EventRow, ...] = ()
        if change is not None:
            events = (
                EventRow(device_id, now, change.from_status, change.to_status, change.message),
            )
        self.writer.put(None, StateRow.of(device_id, tracked.state), events)

    # -- heartbeat --------------------------------------------------------------------------

    def heartbeat_info(self) -> dict[str, Any]:
        """What the system page and /metrics show about this collector."""
        now = asyncio.get_running_loop().time()
        last_at, last_checks = self._last_beat
        elapsed = max(now - last_at, 1e-6)
        self._last_beat = (now, self.checks_total)
        p50, p99 = self.lag.percentiles(now)
        return {
            "checks_per_s": round((self.checks_total - last_checks) / elapsed, 1),
            "lag_p50_ms": round(p50, 1),
            "lag_p99_ms": round(p99, 1),
            "devices": len(self.devices),
            "scheduled": len(self.scheduler),
            "feeds": len(self.feeds),
            "in_flight": len(self._tasks) + len(self._waiting),
            "queue_depth": self.writer.queue_depth,
            "write_ms": round(self.writer.last_write_ms, 1),
            "errors_total": self.errors_total + self.writer.errors_total,
            "checks_total": self.checks_total,
            "skipped_total": self.scheduler.skipped_total + self.overruns_total,
            "held_batches": self.writer.held_batches,
            "shard": str(self.shard),
            "concurrency": self.concurrency,
            # reliability (issue 6): spool_batches, spool_bytes, spool_oldest_s
            **self.writer.spool_info(),
        }

    # -- push devices (issue 7: the logic lives in monitoring.ingest) -----------------------

    async def check_silent_push(self) -> None:
        """Push devices silent for longer than interval x fail threshold go down.

        Only shard 1 runs the pass (one is enough; it is idempotent anyway). Push devices
        are not in ``self.devices``: their state is written by the ingest path only.
        """
        if self.shard.index != 1:
            return
        # Imported here: monitoring.ingest imports collector.state (an import cycle).
        from resourcemonitor.monitoring.ingest import mark_silent_push_devices

        try:
            names = await self.writer.run(mark_silent_push_devices)
        except (DatabaseError, WriterStopped) as exc:
            self.errors_total += 1
            log.warning("could not check push devices for silence: %s", exc)
            return
        if names:
            log.info("push devices silent, now down: %s", ", ".join(names[:20]))

    async def prune_history(self) -> None:
        """Delete history past each tier's retention (``monitoring.retention``).

        Only shard 1 runs it, through the writer thread like every other database call;
        the deletes come in short transactions, so results keep flowing meanwhile.
        """
        if self.shard.index != 1:
            return
        from resourcemonitor.monitoring import retention

        try:
            report = await self.writer.run(retention.prune, now=timezone.now())
        except (DatabaseError, WriterStopped) as exc:
            self.errors_total += 1
            log.warning("could not prune history: %s", exc)
            return
        log.info("pruned history past retention: %s", report)

    async def check_members(self) -> None:
        """Scale-out (issue 5): when the live collectors changed, take or give up devices.

        Every half heartbeat period, so a dead collector's devices move within two
        periods (dead after RESMON_COLLECTOR_DEAD_BEATS periods of silence, + half).
        """
        shard = self.shard
        if not isinstance(shard, Rendezvous):
            return
        try:
            changed = await self.writer.run(shard.refresh_members)
        except (DatabaseError, WriterStopped):
            return
        if changed:
            log.info("collectors now %s: taking my share", ", ".join(shard.members))
            await self.refresh_inventory()

    async def beat(self, *, stopped: bool = False) -> None:
        info = self.heartbeat_info()
        if stopped:
            info[Heartbeat.STOPPED] = True
        try:
            await self.writer.run(
                Heartbeat.beat, component="collector", instance=self.instance, info=info
            )
        except (DatabaseError, WriterStopped) as exc:
            self.errors_total += 1
            log.warning("could not write the heartbeat: %s", exc)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
