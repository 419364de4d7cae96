"""resourcemonitor.monitoring.freshness: when a stored status stops being believed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from resourcemonitor.monitoring.freshness import (
    effective_status,
    stale_after_s,
    state_freshness,
)
from resourcemonitor.monitoring.models import DeviceState

NOW = datetime(2025, 1, 31, 12, 0, tzinfo=UTC)


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("interval", "expected"), [(0.5, 30.0), (5, 30.0), (10, 30.0), (11, 33.0), (60, 180.0)]
)
def test_window_is_three_intervals_but_at_least_30_s(interval, expected):
    assert stale_after_s(interval) == expected


@pytest.mark.parametrize(
    ("status", "checked", "interval", "expected"),
    [
        ("up", ago(29), 10, ("up", False)),
        ("up", ago(30), 10, ("up", False)),  # exactly at the window: still fresh
        ("up", ago(30.001), 10, ("unknown", True)),
        ("down", ago(31), 10, ("unknown", True)),
        ("down", ago(170), 60, ("down", False)),
        ("down", ago(181), 60, ("unknown", True)),
        ("degraded", ago(1), 10, ("degraded", False)),
        ("unknown", ago(1), 10, ("unknown", False)),
        ("unknown", ago(100), 10, ("unknown", True)),
        ("maintenance", ago(86400), 10, ("maintenance", False)),  # declared, not measured
        ("maintenance", None, 10, ("maintenance", False)),
        ("up", None, 10, ("unknown", False)),  # never checked: nothing stale, just unknown
        (None, None, 10, ("unknown", False)),  # no state at all
    ],
)
def test_effective_status(status, checked, interval, expected):
    assert tuple(effective_status(status, checked, interval, NOW)) == expected


def test_naive_utc_values_work_alike():
    naive_now = NOW.replace(tzinfo=None)
    assert effective_status("up", ago(31).replace(tzinfo=None), 10, naive_now) == ("unknown", True)


def test_state_wrapper():
    state = DeviceState(status="up", last_check_at=ago(5))
    assert state_freshness(state, 10, NOW) == ("up", False)
    assert state_freshness(None, 10, NOW) == ("unknown", False)
    assert state_freshness(state, 10, NOW + timedelta(minutes=5)).stale is True
