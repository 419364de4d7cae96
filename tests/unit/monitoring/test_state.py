"""The device state machine, without I/O: thresholds, recovery, degraded, parents, flaps."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from resourcemonitor.monitoring.collector.state import (
    FLAP_HISTORY,
    Topology,
    TrackedState,
    flap_percent,
)
from resourcemonitor.monitoring.probes import ProbeResult
from resourcemonitor.monitoring.probes import errors as codes
from resourcemonitor.monitoring.status import Status

T0 = datetime(2026, 1, 1, tzinfo=UTC)
OK = ProbeResult.success(5.0)
SLOW = ProbeResult.success(500.0)
REFUSED = ProbeResult.failure(codes.REFUSED)


@dataclass(frozen=True)
class Limits:
    fail_threshold: int = 3
    recover_threshold: int = 1
    latency_threshold_ms: float | None = None


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def feed(state: TrackedState, results: list[ProbeResult], limits: Limits, start: int = 1):
    """Apply results one per second; return the changes that happened."""
    changes = []
    for offset, result in enumerate(results):
        change = state.apply(result, limits, now=at(start + offset))
        if change is not None:
            changes.append(change)
    return changes


def test_never_checked_device_is_unknown_and_first_success_makes_it_up() -> None:
    state = TrackedState.new(T0)
    assert state.status == Status.UNKNOWN
    change = state.apply(OK, Limits(recover_threshold=3), now=at(1))
    assert state.status == Status.UP
    assert change is not None
    assert (change.from_status, change.to_status, change.message) == ("unknown", "up", "recovered")
    assert state.since == at(1) and state.changed_at == at(1)
    assert state.last_ok_at == at(1) and state.latency_ms == 5.0


def test_unknown_device_goes_down_only_at_the_threshold() -> None:
    state = TrackedState.new(T0)
    assert feed(state, [REFUSED, REFUSED], Limits(fail_threshold=3)) == []
    assert state.status == Status.UNKNOWN
    assert state.consecutive_failures == 2
    [change] = feed(state, [REFUSED], Limits(fail_threshold=3), start=3)
    assert (change.from_status, change.to_status) == ("unknown", "down")
    assert change.message == "connection refused"
    assert state.last_error == "connection refused"


def test_up_device_needs_fail_threshold_consecutive_failures() -> None:
    state = TrackedState.new(T0)
    limits = Limits(fail_threshold=3)
    feed(state, [OK, REFUSED, REFUSED, OK, REFUSED, REFUSED], limits)
    assert state.status == Status.UP, "a success in between resets the streak"
    [change] = feed(state, [REFUSED], limits, start=10)
    assert change.to_status == Status.DOWN
    assert state.since == at(10)


def test_down_device_recovers_after_recover_threshold_successes() -> None:
    state = TrackedState.new(T0)
    limits = Limits(fail_threshold=1, recover_threshold=3)
    feed(state, [REFUSED], limits)
    assert state.status == Status.DOWN
    assert feed(state, [OK, OK], limits, start=2) == []
    assert state.status == Status.DOWN
    assert state.last_error == "", "the error text belongs to the failure streak"
    [change] = feed(state, [OK], limits, start=4)
    assert (change.from_status, change.to_status, change.message) == ("down", "up", "recovered")
    assert state.consecutive_successes == 3 and state.consecutive_failures == 0


def test_slow_answers_make_the_device_degraded_and_fast_ones_bring_it_back() -> None:
    state = TrackedState.new(T0)
    limits = Limits(latency_threshold_ms=100.0)
    [first] = feed(state, [SLOW], limits)
    assert (first.to_status, first.message) == ("degraded", "latency 500 ms over 100 ms")
    assert feed(state, [SLOW], limits, start=2) == []
    [back] = feed(state, [OK], limits, start=3)
    assert (back.from_status, back.to_status) == ("degraded", "up")


def test_without_a_latency_threshold_slow_is_still_up() -> None:
    state = TrackedState.new(T0)
    feed(state, [SLOW], Limits())
    assert state.status == Status.UP


def test_failure_below_threshold_keeps_degraded() -> None:
    state = TrackedState.new(T0)
    limits = Limits(latency_threshold_ms=100.0, fail_threshold=2)
    feed(state, [SLOW, REFUSED], limits)
    assert state.status == Status.DEGRADED
    assert state.latency_ms is None


def test_failing_device_with_a_down_ancestor_is_unreachable() -> None:
    state = TrackedState.new(T0)
    limits = Limits(fail_threshold=2)
    state.apply(REFUSED, limits, now=at(1), blocked_by="core-1")
    change = state.apply(REFUSED, limits, now=at(2), blocked_by="core-1")
    assert change is not None and change.to_status == Status.UNREACHABLE
    assert change.message == "connection refused; parent core-1 is down"


def test_unreachable_child_becomes_down_only_if_it_keeps_failing_after_the_parent_is_back() -> None:
    state = TrackedState.new(T0)
    limits = Limits(fail_threshold=1, recover_threshold=2)
    state.apply(REFUSED, limits, now=at(1), blocked_by="core-1")
    assert state.status == Status.UNREACHABLE
    # The parent recovered: nothing changes until the child's own next result.
    change = state.apply(REFUSED, limits, now=at(2), blocked_by=None)
    assert change is not None and (change.from_status, change.to_status) == (
        "unreachable",
        "down",
    )

    other = TrackedState.new(T0)
    other.apply(REFUSED, limits, now=at(1), blocked_by="core-1")
    assert other.apply(OK, limits, now=at(2)) is None
    change = other.apply(OK, limits, now=at(3))
    assert change is not None and change.to_status == Status.UP


def test_mark_unreachable_only_moves_down_devices() -> None:
    up, down = TrackedState.new(T0), TrackedState.new(T0)
    up.apply(OK, Limits(), now=at(1))
    down.apply(REFUSED, Limits(fail_threshold=1), now=at(1))
    assert up.mark_unreachable("core-1", at(2)) is None
    change = down.mark_unreachable("core-1", at(2))
    assert change is not None and change.message == "parent core-1 is down"
    assert down.status == Status.UNREACHABLE and down.since == at(2)


def test_mark_unknown_restarts_the_streaks_and_is_never_down() -> None:
    state = TrackedState.new(T0)
    feed(state, [REFUSED, REFUSED, REFUSED], Limits())
    assert state.status == Status.DOWN
    change = state.mark_unknown("feed error: HTTP 500", at(9))
    assert change is not None and (change.from_status, change.to_status) == ("down", "unknown")
    assert state.consecutive_failures == 0
    assert state.last_error == "feed error: HTTP 500"
    assert state.mark_unknown("feed error: HTTP 500", at(10)) is None


def test_flap_percent_weights_newer_changes_more() -> None:
    assert flap_percent([0] * FLAP_HISTORY) == 0.0
    assert flap_percent([0, 2] * 10 + [0]) == pytest.approx(100.0)
    oldest_change = [2] + [0] * 20
    newest_change = [0] * 20 + [2]
    assert flap_percent(oldest_change) == pytest.approx(0.75 * 100 / 20)
    assert flap_percent(newest_change) == pytest.approx(1.25 * 100 / 20)
    # A short history is weighed as the newest part of a full one.
    assert flap_percent([0, 2]) == pytest.approx(1.25 * 100 / 20)


def test_flapping_starts_above_20_percent_and_stops_below_5_percent() -> None:
    state = TrackedState.new(T0)
    limits = Limits(fail_threshold=5)
    # Four changes at the newest weights: 5 % · (1.25 + 1.22 + 1.20 + 1.17) ≈ 24 %.
    feed(state, [OK] * 16 + [REFUSED, OK, REFUSED, OK, REFUSED], limits)
    assert flap_percent(state.history) > 20.0
    assert state.flapping is True
    assert state.status == Status.UP, "flapping is a flag beside the status"
    # Calm answers: the percentage falls, the flag holds until it drops under 5 %.
    seen_between = False
    for second in range(100, 100 + FLAP_HISTORY):
        state.apply(OK, limits, now=at(second))
        percent = flap_percent(state.history)
        if 5.0 <= percent <= 20.0:
            seen_between = True
            assert state.flapping is True
        if percent < 5.0:
            break
    assert seen_between
    assert state.flapping is False
    assert state.changed_at == at(second)


def test_three_changes_stay_under_the_start_threshold() -> None:
    state = TrackedState.new(T0)
    feed(state, [OK] * 18 + [REFUSED, OK, REFUSED], Limits(fail_threshold=5))
    assert 5.0 < flap_percent(state.history) < 20.0
    assert state.flapping is False


def test_from_stored_resumes_streaks() -> None:
    row = {
        "status": "down",
        "since": T0,
        "changed_at": T0,
        "last_check_at": T0,
        "last_ok_at": None,
        "latency_ms": None,
        "consecutive_failures": 7,
        "consecutive_successes": 0,
        "last_error": "connection refused",
        "flapping": False,
    }
    state = TrackedState.from_stored(row)
    state.apply(OK, Limits(recover_threshold=2), now=at(1))
    assert state.status == Status.DOWN and state.consecutive_successes == 1


def test_the_flap_history_survives_a_restart_through_the_stored_row() -> None:
    from resourcemonitor.monitoring.storage import STATE_COLUMNS, StateRow

    limits = Limits(fail_threshold=1, recover_threshold=1)
    before = TrackedState.new(T0)
    for i in range(12):  # alternating: a flap every check
        before.apply(OK if i % 2 else REFUSED, limits, now=at(i))
    assert before.flapping
    row = StateRow.of(1, before)
    stored = {name: getattr(row, name) for name in STATE_COLUMNS}
    after = TrackedState.from_stored(stored)
    assert list(after.history) == list(before.history) and after.flapping
    # It keeps weighing the same checks: a few more alternations keep it flapping, where
    # an empty history would need a long run of checks before it could tell.
    for i in range(12, 16):
        after.apply(OK if i % 2 else REFUSED, limits, now=at(i))
    assert after.flapping
    # Rows written before the column existed (or hand-edited nonsense) start empty.
    assert not TrackedState.from_stored({**stored, "flap_history": "x9"}).history


def test_topology_finds_the_nearest_down_ancestor_and_all_descendants() -> None:
    parents = {1: None, 2: 1, 3: 2, 4: 3, 5: 3, 6: None}
    names = {i: f"d{i}" for i in parents}
    topology = Topology(parents, names)
    statuses = {1: "down", 2: "unreachable", 3: "up"}
    assert topology.blocked_by(4, statuses.get) == "d2"
    assert topology.blocked_by(6, statuses.get) is None
    assert set(topology.descendants(2)) == {3, 4, 5}
    assert list(topology.descendants(6)) == []


def test_topology_survives_a_cycle() -> None:
    topology = Topology({1: 2, 2: 1}, {})
    assert list(topology.ancestors(1)) == [2]
    assert set(topology.descendants(1)) == {2}
    assert topology.blocked_by(1, {2: "down"}.get) == "#2"
