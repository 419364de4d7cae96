"""Writing samples for SLO tests through the collector's real write path."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from resourcemonitor.inventory.models import Device
from resourcemonitor.monitoring.storage import Batch, SampleRow, write_batch


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def write(device: Device, rows: Iterable[tuple[datetime, bool]], latency_ms: float = 5.0) -> None:
    """One sample per (time, ok), through write_batch (so the rollups are the writer's)."""
    batch = Batch()
    for moment, ok in rows:
        batch.add(
            SampleRow(ms(moment), device.pk, ok, int(latency_ms * 1000), None if ok else "x"),
            None,
        )
    write_batch(batch)


def created(device: Device, moment: datetime) -> None:
    Device.objects.filter(pk=device.pk).update(created_at=moment)
