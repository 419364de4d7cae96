"""Test data for the web tests, written directly with the ORM (or raw SQL for samples)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.utils import timezone

from resourcemonitor.inventory.models import Device
from resourcemonitor.monitoring.models import DeviceState


def set_state(
    device: Device,
    status: str,
    *,
    checked_ago: float | None = 1.0,
    since_ago: float = 120.0,
    now: datetime | None = None,
    **fields: Any,
) -> DeviceState:
    """Give ``device`` a current state, last checked ``checked_ago`` seconds ago."""
    now = now or timezone.now()
    defaults: dict[str, Any] = {
        "status": status,
        "since": now - timedelta(seconds=since_ago),
        "last_check_at": None if checked_ago is None else now - timedelta(seconds=checked_ago),
        "changed_at": now - timedelta(seconds=since_ago),
        "latency_ms": 1.5,
    }
    defaults.update(fields)
    state, _ = DeviceState.objects.update_or_create(device=device, defaults=defaults)
    return state


def insert_samples(rows: list[tuple[int, int, bool, int | None, str | None]]) -> None:
    """(t_ms, device_id, ok, latency_us, error) straight into the raw table."""
    with connection.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO monitoring_sample (t, device_id, ok, latency_us, error) "
            "VALUES (%s, %s, %s, %s, %s)",
            rows,
        )
