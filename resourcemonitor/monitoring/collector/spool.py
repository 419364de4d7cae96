"""The durable spool: batches the database would not take, on local disk until it does.

One file per batch, ``<seq>.batch`` (zero-padded, so names sort in write order) in a
directory of the spool that belongs to one live writer (``<RESMON_DATA_DIR>/spool/<id>/``,
held with ``flock`` on its ``LOCK`` file). A file is written to ``.tmp``, fsynced, renamed
and the directory fsynced: a crash leaves either the whole batch or a ``.tmp`` that is
ignored, never half a batch. A new writer adopts the directories whose lock nobody holds
(a collector killed with ``kill -9``) and replays them before its own batches, in order.

The content is JSON (not pickle: the spool is data, never code). Replays are idempotent
because samples are keyed on ``(t, device_id)`` and rollups are built only from the rows
the database really inserted (see ``storage.write_batch``).

Size cap: when the spool grows past ``max_bytes``, the oldest whole files are deleted,
counted in ``dropped_batches``/``dropped_samples`` and logged as errors — the newest data
is what an operator needs after an outage, and a cap keeps a dead database from filling
the disk the collector also needs.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
import uuid
from collections import deque
from datetime import datetime
from pathlib import Path
from typing import Any

from resourcemonitor.monitoring.storage import Batch, EventRow, SampleRow, StateRow

log = logging.getLogger(__name__)

SUFFIX = ".batch"
LOCK = "LOCK"
_FORMAT = 1


def _dt(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _undt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def encode(batch: Batch) -> bytes:
    """A batch as one JSON document (datetimes as ISO 8601 with their offset)."""
    doc = {
        "v": _FORMAT,
        "samples": [[s.t, s.device_id, s.ok, s.latency_us, s.error] for s in batch.samples],
        "states": [
            [
                s.device_id,
                s.status,
                _dt(s.since),
                _dt(s.last_check_at),
                _dt(s.last_ok_at),
                s.latency_ms,
                s.consecutive_failures,
                s.consecutive_successes,
                s.last_error,
                s.flapping,
                _dt(s.changed_at),
                s.flap_history,
            ]
            for s in batch.states.values()
        ],
        "events": [
            [e.device_id, _dt(e.at), e.from_status, e.to_status, e.message] for e in batch.events
        ],
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def decode(data: bytes) -> Batch:
    doc = json.loads(data)
    if doc.get("v") != _FORMAT:
        raise ValueError(f"unknown spool format {doc.get('v')!r}")
    batch = Batch()
    batch.samples = [SampleRow(*row) for row in doc["samples"]]
    for row in doc["states"]:
        since, check, ok_at, changed = _undt(row[2]), _undt(row[3]), _undt(row[4]), _undt(row[10])
        assert since is not None and changed is not None
        history = row[11] if len(row) > 11 else ""  # absent in spools of older versions
        state = StateRow(
            row[0],
            row[1],
            since,
            check,
            ok_at,
            row[5],
            row[6],
            row[7],
            row[8],
            row[9],
            changed,
            history,
        )
        batch.states[state.device_id] = state
    batch.events = [EventRow(r[0], _undt(r[1]), r[2], r[3], r[4]) for r in doc["events"]]  # type: ignore[arg-type]
    return batch


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """Batches on disk, oldest first. Used by the writer thread only (not thread-safe)."""

    def __init__(self, root: Path, *, max_bytes: int) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.dir = self.root / f"{int(time.time())}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._files: deque[tuple[Path, int, float, int]] = deque()  # path, bytes, mtime, samples
        self._seq = 0
        self._lock_fd: int | None = None
        self.bytes = 0
        self.dropped_batches = 0
        self.dropped_samples = 0
        self.adopted_batches = 0

    # -- lifecycle ------------------------------------------------------------------------

    def open(self) -> None:
        """Create and lock our directory, then adopt what dead writers left behind."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.dir / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._adopt()

    def close(self) -> None:
        """Release our directory; remove it when empty (a non-empty one is adopted later)."""
        if self._lock_fd is None:
            return
        if not self._files:
            for leftover in self.dir.glob("*.tmp"):
                leftover.unlink(missing_ok=True)
            (self.dir / LOCK).unlink(missing_ok=True)
            try:
                self.dir.rmdir()
            except OSError:
                log.debug("spool directory %s not removed", self.dir, exc_info=True)
        os.close(self._lock_fd)
        self._lock_fd = None

    def _adopt(self) -> None:
        for other in sorted(p for p in self.root.iterdir() if p.is_dir() and p != self.dir):
            lock_path = other / LOCK
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live writer's spool
                files = sorted(other.glob(f"*{SUFFIX}"))
                for path in files:
                    # Moved into our directory, renumbered after what we have: order kept.
                    self._seq += 1
                    target = self.dir / f"{self._seq:012d}{SUFFIX}"
                    os.replace(path, target)
                    self._track(target)
                self.adopted_batches += len(files)
                for leftover in other.glob("*.tmp"):
                    leftover.unlink(missing_ok=True)
                lock_path.unlink(missing_ok=True)
                other.rmdir()
            except OSError:
                log.warning("could not adopt spool directory %s", other, exc_info=True)
            finally:
                os.close(fd)
        if self.adopted_batches:
            _fsync_dir(self.dir)
            log.warning(
                "spool: %d batch(es) left by a stopped collector will be written first",
                self.adopted_batches,
            )
        self._enforce_cap()

    def _track(self, path: Path) -> None:
        stat = path.stat()
        samples = -1  # unknown until read (adopted files); counted as such when dropped
        self._files.append((path, stat.st_size, stat.st_mtime, samples))
        self.bytes += stat.st_size

    # -- the writer's operations -------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._files)

    def oldest_age_s(self, now: float | None = None) -> float:
        if not self._files:
            return 0.0
        return max(0.0, (now or time.time()) - self._files[0][2])

    def append(self, batch: Batch) -> Path:
        """Write one batch durably; returns its file."""
        data = encode(batch)
        self._seq += 1
        path = self.dir / f"{self._seq:012d}{SUFFIX}"
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        _fsync_dir(self.dir)
        self._files.append((path, len(data), time.time(), len(batch.samples)))
        self.bytes += len(data)
        self._enforce_cap()
        return path

    def peek(self) -> tuple[Path, Batch] | None:
        """The oldest batch on disk (an unreadable file is dropped, loudly)."""
        while self._files:
            path = self._files[0][0]
            try:
                return path, decode(path.read_bytes())
            except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
                log.error("spool: dropping unreadable batch file %s: %s", path, exc)
                self._drop_oldest()
        return None

    def remove(self, path: Path) -> None:
        """The batch in ``path`` is written: forget it."""
        if self._files and self._files[0][0] == path:
            _, size, _, _ = self._files.popleft()
            self.bytes -= size
        path.unlink(missing_ok=True)

    def _drop_oldest(self) -> None:
        path, size, _, samples = self._files.popleft()
        self.bytes -= size
        self.dropped_batches += 1
        self.dropped_samples += max(samples, 0)
        path.unlink(missing_ok=True)

    def _enforce_cap(self) -> None:
        dropped = 0
        while self.bytes > self.max_bytes and len(self._files) > 1:
            self._drop_oldest()
            dropped += 1
        if dropped:
            log.error(
                "spool over its cap of %d bytes: dropped the %d oldest batch(es) "
                "(%d dropped since start)",
                self.max_bytes,
                dropped,
                self.dropped_batches,
            )

    def info(self) -> dict[str, Any]:
        """What the heartbeat shows: ``spool_batches``, ``spool_bytes``, ``spool_oldest_s``."""
        return {
            "spool_batches": len(self._files),
            "spool_bytes": self.bytes,
            "spool_oldest_s": round(self.oldest_age_s(), 1),
            "spool_dropped_batches": self.dropped_batches,
        }
