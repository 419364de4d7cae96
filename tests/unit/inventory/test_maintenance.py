"""Maintenance windows: one-off and recurring occurrences, and validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError

from resourcemonitor.inventory.models import MaintenanceWindow, Recurrence

T0 = datetime(2026, 3, 2, 22, 0, tzinfo=UTC)  # a Monday, 22:00


def window(**kwargs: object) -> MaintenanceWindow:
    values: dict[str, object] = {
        "name": "patching",
        "starts_at": T0,
        "ends_at": T0 + timedelta(hours=2),
    }
    values.update(kwargs)
    return MaintenanceWindow(**values)


def test_one_off_window_covers_start_but_not_end() -> None:
    w = window()
    assert not w.is_active(T0 - timedelta(seconds=1))
    assert w.occurrence_at(T0) == (T0, T0 + timedelta(hours=2))
    assert w.is_active(T0 + timedelta(hours=1, minutes=59))
    assert not w.is_active(T0 + timedelta(hours=2))


def test_daily_window_repeats_every_day_until_until() -> None:
    w = window(recurrence=Recurrence.DAILY, until=T0 + timedelta(days=3, hours=1))
    assert w.occurrence_at(T0 + timedelta(days=1, minutes=30)) == (
        T0 + timedelta(days=1),
        T0 + timedelta(days=1, hours=2),
    )
    assert not w.is_active(T0 + timedelta(days=1, hours=3))
    # The last occurrence is cut short by `until`.
    assert w.occurrence_at(T0 + timedelta(days=3, minutes=10)) == (
        T0 + timedelta(days=3),
        T0 + timedelta(days=3, hours=1),
    )
    assert not w.is_active(T0 + timedelta(days=3, hours=1, minutes=30))
    assert not w.is_active(T0 + timedelta(days=4, minutes=10))


def test_weekly_window_skips_the_other_days() -> None:
    w = window(recurrence=Recurrence.WEEKLY)
    assert not w.is_active(T0 + timedelta(days=1, minutes=10))
    assert w.is_active(T0 + timedelta(days=14, minutes=10))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"ends_at": T0}, "ends_at"),
        ({"ends_at": T0 - timedelta(hours=1)}, "ends_at"),
        ({"recurrence": Recurrence.DAILY, "ends_at": T0 + timedelta(hours=25)}, "ends_at"),
        ({"until": T0 - timedelta(days=1), "recurrence": Recurrence.DAILY}, "until"),
        ({"kinds": ["router", "toaster"]}, "kinds"),
    ],
)
def test_invalid_windows_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        window(**kwargs).clean()
    assert field in excinfo.value.message_dict


@pytest.mark.django_db
def test_may_be_active_narrows_in_sql() -> None:
    once = window(name="once")
    once.save()
    daily = window(name="daily", recurrence=Recurrence.DAILY)
    daily.save()
    ended = window(name="ended", recurrence=Recurrence.DAILY, until=T0 + timedelta(days=1))
    ended.save()
    later = T0 + timedelta(days=2, minutes=5)
    names = set(MaintenanceWindow.objects.may_be_active(later).values_list("name", flat=True))
    assert names == {"daily"}
    assert [
        w.name for w in MaintenanceWindow.objects.may_be_active(later) if w.is_active(later)
    ] == ["daily"]
