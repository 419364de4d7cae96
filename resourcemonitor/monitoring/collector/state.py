"""The device state machine: check results in, a status and its changes out. No I/O.

The rules, in one place:

- A **failure** adds to ``consecutive_failures``. At ``fail_threshold`` the device is
  ``down`` — or ``unreachable`` when its parent or any ancestor is down or unreachable
  (its own state cannot be known through a dead path). Below the threshold the status
  does not move: one lost probe is not an outage.
- A **success** adds to ``consecutive_successes``. A ``down`` or ``unreachable`` device is
  ``up`` again after ``recover_threshold`` successes. An ``unknown`` device (never
  checked, or its feed failed) has no outage to recover from, so its first success makes
  it ``up``. An answer slower than ``latency_threshold_ms`` (when set) makes an answering
  device ``degraded``, and the next fast answer makes it ``up`` again.
- **Parents.** When a device goes down (or unreachable), its descendants that are already
  ``down`` become ``unreachable`` at once (``Topology.descendants``; done by the runner).
  When the parent recovers nothing is rewritten: an ``unreachable`` child keeps that
  status until its own next result, which decides — a failure then makes it ``down``
  (it is still over its threshold and the path is clear now), a success counts towards
  recovery as usual. So a child is called ``down`` only if it keeps failing after its
  parent is back.
- **Flapping**, the Nagios way: the last 21 results (ok / slow / failed), each change
  between neighbours weighted from 0.75 (oldest) to 1.25 (newest), as a percentage of
  the 20 possible changes. Flapping starts above 20 % and stops below 5 %; in between the
  flag keeps its value (hysteresis). It is a flag beside the status, not a status.
- Every status change is a ``StatusChange`` (→ an ``Event``) and moves ``since`` and
  ``changed_at``; a change of the flapping flag or of the error text moves only
  ``changed_at`` (the dashboard's "what changed since" cursor).

The flap history is stored with the state (``DeviceState.flap_history``, a digit per
check), so a collector restart resumes it, and push devices, whose reports are applied
one request or MQTT message at a time, are weighed over their last 21 reports too.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from typing import Any, Protocol

from resourcemonitor.monitoring.probes.base import ProbeResult
from resourcemonitor.monitoring.status import Status

FLAP_HISTORY = 21
FLAP_WEIGHT_OLDEST = 0.75
FLAP_WEIGHT_NEWEST = 1.25
FLAP_START_PERCENT = 20.0
FLAP_STOP_PERCENT = 5.0
MAX_TEXT = 300
# A parent chain deeper than this is a data error (a cycle the admin let through).
MAX_DEPTH = 64

DOWNISH = frozenset({Status.DOWN, Status.UNREACHABLE})
RECOVERED = "recovered"


class Outcome(IntEnum):
    """What one check said, for flap detection: a change between these is a flap."""

    OK = 0
    SLOW = 1
    FAILED = 2


_OUTCOME_DIGITS = frozenset(str(int(o)) for o in Outcome)


class Thresholds(Protocol):
    @property
    def fail_threshold(self) -> int: ...
    @property
    def recover_threshold(self) -> int: ...
    @property
    def latency_threshold_ms(self) -> float | None: ...


@dataclass(frozen=True, slots=True)
class StatusChange:
    """One status change: becomes an ``Event`` row."""

    from_status: str
    to_status: str
    message: str
    at: datetime


def flap_percent(history: deque[int] | list[int]) -> float:
    """Weighted percent state change over the history (Nagios' curved formula).

    The newest change always weighs 1.25 and the weights fall by 0.5/19 per step back,
    also while the history is not yet full; the sum is always divided by the 20 changes a
    full history has, so a short history cannot look like flapping too early.
    """
    entries = list(history)
    slots = FLAP_HISTORY - 1
    offset = FLAP_HISTORY - len(entries)
    step = (FLAP_WEIGHT_NEWEST - FLAP_WEIGHT_OLDEST) / (slots - 1)
    changes = 0.0
    for index in range(1, len(entries)):
        if entries[index] != entries[index - 1]:
            slot = index + offset - 1  # 0 = oldest transition, slots-1 = newest
            changes += FLAP_WEIGHT_OLDEST + slot * step
    return changes * 100.0 / slots


@dataclass(slots=True)
class TrackedState:
    """The in-memory mirror of one ``DeviceState`` row, plus the flap history."""

    status: str
    since: datetime
    changed_at: datetime
    last_check_at: datetime | None = None
    last_ok_at: datetime | None = None
    latency_ms: float | None = None
    consecutive_failures: int = 0
    consecutive_successes: int = 0
    last_error: str = ""
    flapping: bool = False
    history: deque[int] = field(default_factory=lambda: deque(maxlen=FLAP_HISTORY))

    @classmethod
    def new(cls, now: datetime) -> TrackedState:
        return cls(status=Status.UNKNOWN, since=now, changed_at=now)

    @classmethod
    def from_stored(cls, row: Mapping[str, Any]) -> TrackedState:
        """From a ``DeviceState.objects.values()`` row, so a restart resumes the counts."""
        return cls(
            status=row["status"],
            since=row["since"],
            changed_at=row["changed_at"],
            last_check_at=row["last_check_at"],
            last_ok_at=row["last_ok_at"],
            latency_ms=row["latency_ms"],
            consecutive_failures=row["consecutive_failures"],
            consecutive_successes=row["consecutive_successes"],
            last_error=row["last_error"],
            flapping=row["flapping"],
            history=deque(
                (int(c) for c in row.get("flap_history") or "" if c in _OUTCOME_DIGITS),
                maxlen=FLAP_HISTORY,
            ),
        )

    def history_text(self) -> str:
        """The flap history as stored (``DeviceState.flap_history``): a digit per check."""
        return "".join(map(str, self.history))

    # -- transitions ------------------------------------------------------------------

    def apply(
        self,
        result: ProbeResult,
        thresholds: Thresholds,
        *,
        now: datetime,
        blocked_by: str | None = None,
    ) -> StatusChange | None:
        """Fold one check result in. ``blocked_by`` names a down ancestor, if any."""
        self.last_check_at = now
        if result.ok:
            return self._apply_success(result, thresholds, now)
        return self._apply_failure(result, thresholds, now, blocked_by)

    def _apply_success(
        self, result: ProbeResult, thresholds: Thresholds, now: datetime
    ) -> StatusChange | None:
        limit = thresholds.latency_threshold_ms
        slow = limit is not None and result.latency_ms is not None and result.latency_ms > limit
        self._record_outcome(Outcome.SLOW if slow else Outcome.OK, now)
        self.consecutive_successes += 1
        self.consecutive_failures = 0
        self.last_ok_at = now
        self.latency_ms = result.latency_ms
        if self.last_error:
            self.last_error = ""
            self.changed_at = now
        recovered = self.consecutive_successes >= thresholds.recover_threshold
        answering = self.status in {Status.UP, Status.DEGRADED, Status.UNKNOWN}
        target = self.status
        if answering or (self.status in DOWNISH and recovered):
            target = Status.DEGRADED if slow else Status.UP
        message = f"latency {result.latency_ms:.0f} ms over {limit:g} ms" if slow else RECOVERED
        return self.set_status(target, message, now)

    def _apply_failure(
        self, result: ProbeResult, thresholds: Thresholds, now: datetime, blocked_by: str | None
    ) -> StatusChange | None:
        self._record_outcome(Outcome.FAILED, now)
        self.consecutive_failures += 1
        self.consecutive_successes = 0
        self.latency_ms = None
        text = (result.text or result.error or "failed")[:MAX_TEXT]
        if text != self.last_error:
            self.last_error = text
            self.changed_at = now
        if self.consecutive_failures < thresholds.fail_threshold:
            return None
        if self.status == Status.MAINTENANCE:
            return None
        if blocked_by is not None:
            return self.set_status(Status.UNREACHABLE, f"{text}; parent {blocked_by} is down", now)
        return self.set_status(Status.DOWN, text, now)

    def mark_unreachable(self, parent_name: str, now: datetime) -> StatusChange | None:
        """A parent went down: a device already down is now unreachable (nothing else)."""
        if self.status != Status.DOWN:
            return None
        return self.set_status(Status.UNREACHABLE, f"parent {parent_name} is down", now)

    def mark_unknown(self, text: str, now: datetime) -> StatusChange | None:
        """Nothing can be known (a feed failed): ``unknown``, never ``down``.

        The streaks restart, so the next real result decides afresh.
        """
        self.consecutive_failures = 0
        self.consecutive_successes = 0
        text = text[:MAX_TEXT]
        if text != self.last_error:
            self.last_error = text
            self.changed_at = now
        return self.set_status(Status.UNKNOWN, text, now)

    def set_status(self, status: str, message: str, now: datetime) -> StatusChange | None:
        if status == self.status:
            return None
        change = StatusChange(self.status, status, message[:MAX_TEXT], now)
        self.status = status
        self.since = now
        self.changed_at = now
        return change

    def _record_outcome(self, outcome: Outcome, now: datetime) -> None:
        history = self.history
        history.append(int(outcome))
        if not self.flapping and history.count(history[0]) == len(history):
            return  # the common case, all the same: 0 %, nothing to weigh
        percent = flap_percent(history)
        flapping = self.flapping
        if not flapping and percent > FLAP_START_PERCENT:
            flapping = True
        elif flapping and percent < FLAP_STOP_PERCENT:
            flapping = False
        if flapping != self.flapping:
            self.flapping = flapping
            self.changed_at = now


class Topology:
    """Who depends on whom: parent ids and names for every device (all shards)."""

    def __init__(
        self,
        parents: Mapping[int, int | None] | None = None,
        names: Mapping[int, str] | None = None,
    ) -> None:
        self.parent_of: dict[int, int | None] = {}
        self.names: dict[int, str] = {}
        self.children_of: dict[int, list[int]] = {}
        self.update(parents or {}, names or {})

    def update(self, parents: Mapping[int, int | None], names: Mapping[int, str]) -> None:
        if parents == self.parent_of and names == self.names:
            return  # the usual refresh: nothing moved, keep the child index
        self.parent_of = dict(parents)
        self.names = dict(names)
        children: dict[int, list[int]] = {}
        for child, parent in self.parent_of.items():
            if parent is not None:
                children.setdefault(parent, []).append(child)
        self.children_of = children

    def name(self, device_id: int) -> str:
        return self.names.get(device_id, f"#{device_id}")

    def ancestors(self, device_id: int) -> Iterator[int]:
        seen = {device_id}
        parent = self.parent_of.get(device_id)
        while parent is not None and parent not in seen and len(seen) <= MAX_DEPTH:
            yield parent
            seen.add(parent)
            parent = self.parent_of.get(parent)

    def blocked_by(self, device_id: int, status_of: Callable[[int], str | None]) -> str | None:
        """The name of the nearest ancestor that is down or unreachable, else None."""
        for ancestor in self.ancestors(device_id):
            if status_of(ancestor) in DOWNISH:
                return self.name(ancestor)
        return None

    def descendants(self, device_id: int) -> Iterator[int]:
        """Children, grandchildren, … breadth first; safe against cycles."""
        seen = {device_id}
        queue = deque(self.children_of.get(device_id, ()))
        while queue:
            child = queue.popleft()
            if child in seen:
                continue
            seen.add(child)
            yield child
            queue.extend(self.children_of.get(child, ()))
