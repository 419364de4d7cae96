"""When each device is due: a heap of due times, phases spread over the interval.

Each device's phase within its interval comes from a stable hash of its id, anchored to
the wall clock (Unix time): 10,000 devices at 10 s are ~1,000 checks every second rather
than 10,000 at once, and a restarted collector checks each device at the same offset as
before (so one restart does not bunch or skip checks). Due times are kept on the event
loop's monotonic clock; the wall clock only places the first one.

Missed slots are skipped, not made up: when the collector is behind, a device is checked
at its next slot rather than several times in a row.
"""

from __future__ import annotations

import hashlib
import heapq
import math
from collections import deque


def phase_fraction(key: int, salt: bytes = b"device") -> float:
    """A stable fraction in [0, 1) for an id: the same on every host and every restart."""
    digest = hashlib.blake2b(salt + str(key).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def first_due(*, interval_s: float, phase: float, now_mono: float, now_wall: float) -> float:
    """The next monotonic time whose wall-clock time is ≡ phase·interval (mod interval)."""
    offset = phase * interval_s
    slot = math.ceil((now_wall - offset) / interval_s)
    wall_due = slot * interval_s + offset
    return now_mono + (wall_due - now_wall)


# Heap entries are plain tuples (due, sequence, key, generation): cheap to compare.
_Entry = tuple[float, int, int, int]


class Scheduler:
    """A heap of due times per integer key (a device or feed id), with lazy removal.

    Removing or rescheduling a key bumps its generation; heap entries of an older
    generation are dropped when they surface.
    """

    def __init__(self, salt: bytes = b"device") -> None:
        self.salt = salt
        self._heap: list[_Entry] = []
        self._generation: dict[int, int] = {}
        self._interval: dict[int, float] = {}
        self._sequence = 0
        self.skipped_total = 0

    def __len__(self) -> int:
        return len(self._interval)

    def __contains__(self, key: object) -> bool:
        return key in self._interval

    def interval(self, key: int) -> float:
        return self._interval[key]

    def add(self, key: int, interval_s: float, *, now_mono: float, now_wall: float) -> float:
        """Schedule ``key`` (or reschedule it with a new interval); returns its first due."""
        phase = phase_fraction(key, self.salt)
        due = first_due(interval_s=interval_s, phase=phase, now_mono=now_mono, now_wall=now_wall)
        generation = self._generation.get(key, 0) + 1
        self._generation[key] = generation
        self._interval[key] = interval_s
        self._push(due, key, generation)
        return due

    def remove(self, key: int) -> None:
        # The heap entry stays; its generation no longer matches, so it is dropped on pop.
        if key in self._interval:
            del self._interval[key]
            self._generation[key] = self._generation.get(key, 0) + 1

    def next_due(self) -> float | None:
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> list[tuple[int, float]]:
        """Every (key, due) with due ≤ now; each key's next slot is pushed right away."""
        due_now: list[tuple[int, float]] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            due, _, key, generation = heapq.heappop(heap)
            if self._generation.get(key) != generation:
                continue
            due_now.append((key, due))
            interval = self._interval[key]
            following = due + interval
            if following <= now:
                # Behind by a whole interval or more: skip the missed slots, keep the phase.
                missed = math.floor((now - due) / interval)
                self.skipped_total += missed
                following = due + (missed + 1) * interval
            self._push(following, key, generation)
        return due_now

    def _push(self, due: float, key: int, generation: int) -> None:
        self._sequence += 1
        heapq.heappush(self._heap, (due, self._sequence, key, generation))

    def _drop_stale(self) -> None:
        heap = self._heap
        while heap and self._generation.get(heap[0][2]) != heap[0][3]:
            heapq.heappop(heap)
        # Lazy removal can leave many dead entries after a big inventory change.
        if len(heap) > 2 * len(self._interval) + 1024:
            self._heap = [e for e in heap if self._generation.get(e[2]) == e[3]]
            heapq.heapify(self._heap)


class LagWindow:
    """Schedule lag (start minus due) over a recent time window, for p50 and p99."""

    def __init__(self, window_s: float = 60.0, max_samples: int = 100_000) -> None:
        self.window_s = window_s
        self._samples: deque[tuple[float, float]] = deque(maxlen=max_samples)

    def add(self, now: float, lag_s: float) -> None:
        self._samples.append((now, lag_s))

    def __len__(self) -> int:
        return len(self._samples)

    def percentiles(self, now: float, quantiles: tuple[float, ...] = (0.5, 0.99)) -> list[float]:
        """Lag in milliseconds at each quantile (nearest rank); zeros when empty."""
        cutoff = now - self.window_s
        samples = self._samples
        while samples and samples[0][0] < cutoff:
            samples.popleft()
        if not samples:
            return [0.0 for _ in quantiles]
        lags = sorted(lag for _, lag in samples)
        last = len(lags) - 1
        return [max(0.0, lags[min(last, round(q * last))]) * 1000.0 for q in quantiles]
