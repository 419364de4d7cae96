"""Alerting fixtures: a real webhook receiver, a channel to it, a worker with a clock."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from resourcemonitor.alerts.management.commands.alerts import Command
from resourcemonitor.alerts.models import Channel
from resourcemonitor.inventory.models import Device
from resourcemonitor.monitoring.models import DeviceState, Event
from resourcemonitor.monitoring.status import Status
from tests.integration.alerts.receiver import Receiver


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime(2026, 3, 2, 9, 0, tzinfo=UTC))

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    yield rec
    rec.close()


@pytest.fixture
def hook(db, receiver: Receiver) -> Channel:
    return Channel.objects.create(name="hook", target=receiver.url())


@pytest.fixture
def worker(clock: Clock, settings) -> Command:
    settings.RESMON_ALERT_NOTIFY_DELAY_S = 30.0
    settings.RESMON_ALERT_RESOLVE_HOLD_S = 60.0
    settings.RESMON_ALERT_DEGRADED_AFTER_S = 300.0
    settings.RESMON_ALERT_RENOTIFY_S = 0.0
    settings.RESMON_ALERT_RETRY_BASE_S = 10.0
    settings.RESMON_ALERT_BURN_EVERY_S = 0.0  # tests call evaluate_burn_rates(force=True)
    cmd = Command()
    cmd.instance = "test-worker"
    cmd._now = lambda: clock.now  # type: ignore[method-assign]
    return cmd


def change(device: Device, to: str, clock: Clock, *, flapping: bool | None = None) -> Event:
    """What the collector's writer does on a status change: the state row and an event."""
    state, _ = DeviceState.objects.get_or_create(device=device)
    event = Event.objects.create(
        device=device, at=clock.now, from_status=state.status, to_status=to, message=f"now {to}"
    )
    state.status = to
    state.since = clock.now
    if flapping is not None:
        state.flapping = flapping
    state.save()
    return event


def all_up(*devices: Device, clock: Clock) -> None:
    for device in devices:
        DeviceState.objects.update_or_create(
            device=device, defaults={"status": Status.UP, "since": clock.now}
        )
