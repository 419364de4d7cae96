"""The writer thread: the one seam between the asyncio side and the database.

SQLite has one writer, and Django's ORM is synchronous, so every database operation of
the collector runs here, on one thread with its own connection: writing batches of
results, and "calls" (loading the inventory, applying a feed, beating the heartbeat)
that the asyncio side awaits through ``run()``. The event loop never touches the ORM.

Results arrive on a thread-safe queue and are written in batches: when ``batch_max``
results are pending, or ``batch_seconds`` after the first pending one, whichever comes
first — one transaction per batch (``storage.write_batch``). A call first flushes what is
pending, so what it reads includes every result queued before it.

When the database is locked or unreachable, the batch is kept ("held") and retried with
exponential back-off while new results keep queueing and probing goes on. Held batches
are written in order, so the newest state of a device always lands last.

With a ``Spool`` (the collector always has one), a failed write moves every held batch
to fsynced files on local disk (``collector/spool.py``), and while the spool is not empty
new batches go there too: memory stays flat through a long outage and a crash or restart
loses nothing that was held. The spool is drained first, oldest first, when the database
answers again. Without a failure a batch is written straight from memory (no disk I/O on
the hot path), so ``kill -9`` loses at most the results not yet written: the checks in
flight and up to ``batch_seconds`` of queued results (docs/operations.md).

Rollups: with the real write path the writer keeps the open (device, minute) buckets in
a ``rollups.RollupBuffer`` across batches and upserts each once when its minute closes
(a batch closes it, or ``step`` does when no batch comes), with its hour row, and each
(device, day) once when the day closes; ``stop`` writes whatever is still open. The
buckets a killed writer held are rebuilt by ``storage.recover_rollups`` when the writer
starts again: once for the last hour (and the days that ended) at start, once more, four
minutes later, for the minutes that were still open at start (by then no live writer can
hold them), and once for the day that was open at start, after it has closed.
docs/slo.md, "Where the numbers come from".
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, InterfaceError, OperationalError, connections
from django.db.backends.signals import connection_created
from django.dispatch import receiver

from resourcemonitor.monitoring import rollups, storage
from resourcemonitor.monitoring.collector.spool import Spool
from resourcemonitor.monitoring.storage import Batch, EventRow, SampleRow, StateRow, WriteReport

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRY_INITIAL_S = 0.5
# Capped low on purpose: a retry costs one failed connect (or one busy-timeout wait on a
# locked SQLite) while storage is away, and the cap is how late the spool starts to drain
# once storage is back: seconds, not half a minute, so the dashboard catches up quickly.
RETRY_MAX_S = 5.0
# After stop(), how long to keep retrying held batches before giving up on them.
SHUTDOWN_GRACE_S = 5.0


@dataclass(slots=True)
class _Call:
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    future: concurrent.futures.Future[Any] = field(default_factory=concurrent.futures.Future)


Record = tuple[SampleRow | None, StateRow | None, Sequence[EventRow]]


class WriterStopped(RuntimeError):
    pass


THREAD_NAME = "resmon-writer"


@receiver(connection_created, dispatch_uid="resmon-writer-busy-timeout")
def _short_busy_timeout(sender: Any, connection: Any, **kwargs: Any) -> None:
    """SQLite: the writer thread waits RESMON_WRITER_BUSY_TIMEOUT_S for a lock, then spools.

    The web's 20 s busy timeout would block this thread (and the heartbeat and inventory
    calls queued behind it) for 20 s per attempt while another process holds the lock.
    """
    if connection.vendor == "sqlite" and threading.current_thread().name == THREAD_NAME:
        timeout_ms = int(settings.RESMON_WRITER_BUSY_TIMEOUT_S * 1000)
        connection.connection.execute(f"PRAGMA busy_timeout = {timeout_ms}")


class Writer:
    """Batches results and runs database calls on one thread."""

    def __init__(
        self,
        *,
        batch_max: int,
        batch_seconds: float,
        using: str = DEFAULT_DB_ALIAS,
        write: Callable[..., WriteReport] = storage.write_batch,
        retry_initial_s: float = RETRY_INITIAL_S,
        retry_max_s: float = RETRY_MAX_S,
        shutdown_grace_s: float = SHUTDOWN_GRACE_S,
        spool: Spool | None = None,
        buffer_rollups: bool | None = None,
    ) -> None:
        self.batch_max = batch_max
        self.batch_seconds = batch_seconds
        self.using = using
        self._write = write
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.shutdown_grace_s = shutdown_grace_s
        self.spool = spool
        # Only the real write path knows the buffer (test doubles of ``write`` do not).
        if buffer_rollups is None:
            buffer_rollups = write is storage.write_batch
        self.rollups = rollups.RollupBuffer() if buffer_rollups else None
        # (due at, first minute, end minute) of the start-up rollup repairs still to run.
        self._recoveries: list[tuple[float, int, int]] = []

        # Plain deques: append and popleft are atomic under the GIL, so the event loop
        # queues a result without a lock and without waking this thread every time (a
        # wake-up per result costs a GIL hand-over per check). The thread is woken by
        # the first result of a batch, a full batch, a call, or stop().
        self._records: deque[Record] = deque()
        self._calls: deque[_Call] = deque()
        self._wakeup = threading.Event()
        self._deadline: float | None = None
        self._held: deque[Batch] = deque()
        self._retry_delay = retry_initial_s
        self._next_retry_at = 0.0
        self._stopping = threading.Event()
        self._stopped = False
        self._crashed = False
        self._thread: threading.Thread | None = None

        # Read by the heartbeat from the event loop; plain ints and floats are safe to
        # read across threads in CPython.
        self.last_write_ms = 0.0
        self.batches_total = 0
        self.samples_total = 0
        self.errors_total = 0
        self.dropped_total = 0

    # -- the asyncio side (thread-safe) ---------------------------------------------------

    def put(
        self,
        sample: SampleRow | None,
        state: StateRow | None,
        events: Sequence[EventRow] = (),
    ) -> None:
        """Queue one result (any part may be empty). Never blocks, never touches the DB."""
        records = self._records
        records.append((sample, state, events))
        size = len(records)
        if size == 1 or size == self.batch_max:
            self._wakeup.set()

    def call(
        self, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[T]:
        """Run ``fn`` on the writer thread, after writing every result queued before it."""
        item = _Call(fn, args, kwargs)
        if self._stopped:
            item.future.set_exception(WriterStopped("the writer has stopped"))
        else:
            self._calls.append(item)
            self._wakeup.set()
        return item.future

    async def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``await writer.run(fn, ...)``: the event loop's way into the database."""
        return await asyncio.wrap_future(self.call(fn, *args, **kwargs))

    @property
    def queue_depth(self) -> int:
        """Results not yet written: queued and held in memory (the spool is counted apart)."""
        held = sum(len(batch.samples) for batch in list(self._held))
        return len(self._records) + held

    @property
    def held_batches(self) -> int:
        return len(self._held) + (len(self.spool) if self.spool is not None else 0)

    def spool_info(self) -> dict[str, Any]:
        """``spool_batches``, ``spool_bytes``, ``spool_oldest_s`` for the heartbeat."""
        if self.spool is None:
            return {"spool_batches": 0, "spool_bytes": 0, "spool_oldest_s": 0.0}
        return self.spool.info()

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        if self.spool is not None:
            self.spool.open()  # adopts what a killed collector left: written first
        self.schedule_recovery()
        self._thread = threading.Thread(target=self._main, name=THREAD_NAME, daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> bool:
        """Write what is queued, then end the thread. True when nothing was left behind."""
        self._stopping.set()
        self._wakeup.set()
        if self._thread is not None:
            self._thread.join(timeout if timeout is not None else self.shutdown_grace_s + 30)
            return not self._thread.is_alive() and not self._held
        self._shutdown()
        if self.spool is not None:
            self.spool.close()
        return not self._held

    def schedule_recovery(self, now_s: float | None = None) -> None:
        """Plan the repair of the rollups a previous, killed writer held in memory.

        Now: the last ``RECOVERY_LOOKBACK_S`` up to the open horizon. Later: the minutes
        that were still open at start (a crash just before this start left them open),
        once every live writer must have closed them; and the day that was open at start,
        once it has closed (its hours before this start were in the killed writer's
        memory, summed into the day).
        """
        if self.rollups is None:
            return
        now = time.time() if now_s is None else now_s
        horizon = rollups.open_horizon(now)
        minute = int(now) - int(now) % 60
        day_end = minute - minute % rollups.DAY_S + rollups.DAY_S
        self._recoveries = [
            (now, horizon - storage.RECOVERY_LOOKBACK_S, horizon),
            (minute + 2 * rollups.OPEN_HORIZON_S + 10, horizon, minute + 120),
            # No minutes (an empty range): the day only.
            (day_end + 2 * rollups.OPEN_HORIZON_S + 10, day_end, day_end),
        ]

    def _run_recoveries(self, now_s: float) -> None:
        if self.rollups is None or not self._recoveries or self._outage():
            return
        due_at, first, end = self._recoveries[0]
        # Never repair a minute or a day this writer still holds: it would then be
        # counted twice (recover_rollups repairs the days that end by ``end``).
        held = any(minute < end for minute in self.rollups.minutes) or any(
            day + rollups.DAY_S <= end for day in self.rollups.days
        )
        if due_at > now_s or held:
            return
        try:
            repaired = storage.recover_rollups(first, end, using=self.using)
        except DatabaseError as exc:
            log.warning("rollup repair failed (%s); retrying later", exc)
            self._reset_connection()
            self._recoveries[0] = (now_s + self.retry_max_s, first, end)
            return
        self._recoveries.pop(0)
        if repaired:
            log.warning("rebuilt %d rollup bucket(s) a stopped writer had not written", repaired)

    def close_rollups(self, *, everything: bool = False) -> bool:
        """Upsert the buffered minutes that have closed; True when that succeeded."""
        if self.rollups is None or not (self.rollups.minutes or self.rollups.days):
            return True
        try:
            storage.flush_rollups(self.rollups, everything=everything, using=self.using)
        except (OperationalError, InterfaceError) as exc:
            # Kept in memory: tried again at the next step or batch.
            self.errors_total += 1
            log.warning("database unavailable (%s); open rollups kept in memory", exc)
            self._reset_connection()
            return False
        except DatabaseError:
            # Not transient: retrying would fail forever. The samples are stored; the
            # start-up repair of the next run rebuilds these rollups from them.
            self.errors_total += 1
            plan = self.rollups.split((), self.rollups.clock(), everything=everything)
            log.exception(
                "dropping %d rollup minute(s) and %d day(s) that cannot be written",
                len(plan.closed),
                len(plan.closed_days),
            )
            self.rollups.drop(plan)
            self._reset_connection()
            return False
        return True

    @property
    def crashed(self) -> bool:
        """The thread died of a bug; the collector exits non-zero so it gets restarted."""
        return self._crashed

    def _main(self) -> None:
        try:
            while not self._stopping.is_set():
                self.step(wait_s=0.5)
            self._shutdown()
        except Exception:
            log.exception("writer thread crashed")
            self._crashed = True
            self._stopped = True
            while self._calls:
                self._calls.popleft().future.set_exception(WriterStopped("the writer crashed"))
        finally:
            if self.spool is not None:
                self.spool.close()
            connections.close_all()

    def _shutdown(self) -> None:
        self._stopped = True
        self._run_calls()
        if self.spool is not None:
            # Durable first, then quick: during an outage nothing is retried (a locked
            # SQLite could block each attempt for its busy timeout); whatever is not
            # written is spooled and written by the next start.
            if self._outage():
                self._take_batches()
            else:
                self.flush(force=True)
                self.close_rollups(everything=True)
            self._spool_held()
            if len(self.spool):
                log.warning(
                    "writer stopping with %d batch(es) in the spool; the next start writes them",
                    len(self.spool),
                )
            while self._calls:
                self._calls.popleft().future.set_exception(WriterStopped("the writer has stopped"))
            return
        self.flush(force=True)
        deadline = time.monotonic() + self.shutdown_grace_s
        while self._held and time.monotonic() < deadline:
            time.sleep(min(self._retry_delay, max(0.0, deadline - time.monotonic())))
            self.flush(force=True)
        if self._held:
            lost = sum(len(batch.samples) for batch in self._held)
            log.error("writer stopping with %d results not written (database unavailable)", lost)
        else:
            self.close_rollups(everything=True)
        # Calls that arrived too late must not leave an awaiting coroutine hanging.
        while self._calls:
            self._calls.popleft().future.set_exception(WriterStopped("the writer has stopped"))

    # -- one step at a time (tests call these directly) -----------------------------------

    def step(self, wait_s: float) -> None:
        """Sleep until something is due (at most ``wait_s``), then do it.

        Due: calls (run at once, after flushing), a full batch, the batch deadline
        (``batch_seconds`` after the first queued result), or a retry of held batches.
        """
        now = time.monotonic()
        if self._records and self._deadline is None:
            self._deadline = now + self.batch_seconds
        timeout = wait_s
        if self._deadline is not None:
            timeout = min(timeout, self._deadline - now)
        if self.held_batches:
            timeout = min(timeout, self._next_retry_at - now)
        if timeout > 0 and not self._calls and len(self._records) < self.batch_max:
            self._wakeup.wait(timeout)
        self._wakeup.clear()

        self._run_calls()
        now = time.monotonic()
        if self._records and self._deadline is None:
            self._deadline = now + self.batch_seconds
        batch_due = self._deadline is not None and now >= self._deadline
        batch_full = len(self._records) >= self.batch_max
        retry_due = self.held_batches > 0 and now >= self._next_retry_at
        if batch_due or batch_full or retry_due:
            self.flush()
        if self.rollups is not None and not self._outage():
            wall = time.time()
            if self.rollups.due(wall):
                self.close_rollups()
            self._run_recoveries(wall)

    def _run_calls(self) -> None:
        while self._calls:
            call = self._calls.popleft()
            self.flush()
            self._run_call(call)

    def _take_batches(self) -> None:
        """Move every queued result into batches of at most ``batch_max`` results."""
        records = self._records
        while records:
            batch = Batch()
            for _ in range(min(len(records), self.batch_max)):
                sample, state, events = records.popleft()
                batch.add(sample, state, events)
            self._hold(batch)
        self._deadline = None

    def flush(self, *, force: bool = False) -> bool:
        """Write everything queued (after any held batches). True when nothing is held."""
        self._take_batches()
        if not force and self.held_batches and time.monotonic() < self._next_retry_at:
            return False
        if not self._drain_spool():
            return False
        while self._held:
            batch = self._held[0]
            if not self._write_one(batch):
                return False
            self._next_held()
        return True

    def _write_one(self, batch: Batch) -> bool:
        started = time.perf_counter()
        try:
            if self.rollups is not None:
                report = self._write(batch, using=self.using, rollups=self.rollups)
            else:
                report = self._write(batch, using=self.using)
        except (OperationalError, InterfaceError) as exc:
            # Locked, busy, unreachable: worth retrying, with growing patience.
            self.errors_total += 1
            self._next_retry_at = time.monotonic() + self._retry_delay
            log.warning(
                "database unavailable (%s); %d batch(es) held, retrying in %.1f s",
                exc,
                len(self._held),
                self._retry_delay,
            )
            self._retry_delay = min(self._retry_delay * 2, self.retry_max_s)
            self._reset_connection()
            self._spool_held()
            return False
        except DatabaseError:
            # Not transient (a constraint, a bad value): retrying would block every later
            # batch forever. Drop this one, loudly.
            self.errors_total += 1
            self.dropped_total += len(batch)
            log.exception("dropping a batch of %d rows that cannot be written", len(batch))
            self._reset_connection()
            return True
        self.last_write_ms = (time.perf_counter() - started) * 1000.0
        self.batches_total += 1
        self.samples_total += report.samples_inserted
        if self._retry_delay != self.retry_initial_s:
            log.info("database available again")
        self._retry_delay = self.retry_initial_s
        self._next_retry_at = 0.0
        return True

    def _run_call(self, call: _Call) -> None:
        if not call.future.set_running_or_notify_cancel():
            return
        try:
            result = call.fn(*call.args, **call.kwargs)
        except Exception as exc:
            if isinstance(exc, DatabaseError):
                self._reset_connection()
            call.future.set_exception(exc)
        else:
            call.future.set_result(result)

    def _reset_connection(self) -> None:
        """After a database error: drop the connection if it is broken, never raise.

        Checking usability may itself need the database (a ping on PostgreSQL); when
        that fails too, close outright and let the next attempt reconnect.
        """
        connection = connections[self.using]
        try:
            connection.close_if_unusable_or_obsolete()
        except Exception:
            try:
                connection.close()
            except Exception:
                log.debug("closing the broken database connection failed", exc_info=True)

    # -- the spool -------------------------------------------------------------------------
    # Invariant: batches in memory are newer than every batch in the spool (a batch goes
    # to memory only while the spool is empty), so "spool first, then memory" is order.

    def _outage(self) -> bool:
        return self._retry_delay != self.retry_initial_s or (
            self.spool is not None and len(self.spool) > 0
        )

    def _hold(self, batch: Batch) -> None:
        """Keep a batch until it is written: in memory, or on disk while the spool is in use."""
        if self.spool is not None and len(self.spool):
            self._spool_append(batch)
        else:
            self._held.append(batch)

    def _next_held(self) -> None:
        """The oldest batch in memory is written: forget it."""
        self._held.popleft()

    def _spool_append(self, batch: Batch) -> None:
        assert self.spool is not None
        try:
            self.spool.append(batch)
        except OSError:
            # A full or broken disk: keep it in memory rather than lose it.
            log.exception("could not spool a batch of %d rows; kept in memory", len(batch))
            self._held.append(batch)

    def _spool_held(self) -> None:
        """Move the batches held in memory to the spool, oldest first."""
        if self.spool is None:
            return
        while self._held:
            batch = self._held[0]
            try:
                self.spool.append(batch)
            except OSError:
                log.exception("could not spool held batches; they stay in memory")
                return
            self._held.popleft()

    def _drain_spool(self) -> bool:
        """Write the spooled batches, oldest first. True when the spool is empty."""
        spool = self.spool
        if spool is None:
            return True
        while len(spool):
            item = spool.peek()
            if item is None:
                return True
            path, batch = item
            if not self._write_one(batch):
                return False
            spool.remove(path)
        return True


def default_spool() -> Spool | None:
    """The collector's spool under ``RESMON_DATA_DIR/spool`` (None when disabled)."""
    max_mb = settings.RESMON_SPOOL_MAX_MB
    if max_mb <= 0:
        return None
    return Spool(Path(settings.DATA_DIR) / "spool", max_bytes=max_mb * 1024 * 1024)
