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
are written in order, so the newest state of a device always lands last. The durable
disk spool will slot in at ``_hold`` / ``_next_held``; for now they keep batches in memory.
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
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, DatabaseError, InterfaceError, OperationalError, connections

from resourcemonitor.monitoring import storage
from resourcemonitor.monitoring.storage import Batch, EventRow, SampleRow, StateRow, WriteReport

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRY_INITIAL_S = 0.5
RETRY_MAX_S = 30.0
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
    ) -> None:
        self.batch_max = batch_max
        self.batch_seconds = batch_seconds
        self.using = using
        self._write = write
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.shutdown_grace_s = shutdown_grace_s

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
        """Results not yet written: queued and held."""
        held = sum(len(batch.samples) for batch in self._held)
        return len(self._records) + held

    @property
    def held_batches(self) -> int:
        return len(self._held)

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name="resmon-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> bool:
        """Write what is queued, then end the thread. True when nothing was left behind."""
        self._stopping.set()
        self._wakeup.set()
        if self._thread is not None:
            self._thread.join(timeout if timeout is not None else self.shutdown_grace_s + 30)
            return not self._thread.is_alive() and not self._held
        self._shutdown()
        return not self._held

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
            connections.close_all()

    def _shutdown(self) -> None:
        self._stopped = True
        self._run_calls()
        self.flush(force=True)
        deadline = time.monotonic() + self.shutdown_grace_s
        while self._held and time.monotonic() < deadline:
            time.sleep(min(self._retry_delay, max(0.0, deadline - time.monotonic())))
            self.flush(force=True)
        if self._held:
            lost = sum(len(batch.samples) for batch in self._held)
            log.error("writer stopping with %d results not written (database unavailable)", lost)
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
        if self._held:
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
        retry_due = bool(self._held) and now >= self._next_retry_at
        if batch_due or batch_full or retry_due:
            self.flush()

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
        if not force and self._held and time.monotonic() < self._next_retry_at:
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

    # -- the spool seam ---------------------------------------------------------------------

    def _hold(self, batch: Batch) -> None:
        """Keep a batch until it is written. (The disk spool will persist it here.)"""
        self._held.append(batch)

    def _next_held(self) -> None:
        """The oldest held batch is written: forget it. (The spool will delete it here.)"""
        self._held.popleft()
