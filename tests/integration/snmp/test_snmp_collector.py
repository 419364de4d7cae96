"""An snmp device in the real collector, against snmpsim: up, and a reboot is an Event."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from resourcemonitor.inventory.models import CheckMethod, Device
from resourcemonitor.monitoring.collector import Collector
from resourcemonitor.monitoring.models import DeviceState, Event, Sample
from resourcemonitor.monitoring.status import Status

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(60),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def no_samples(transactional_db):
    # monitoring_sample is unmanaged: Django's flush between tests leaves it alone.
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM monitoring_sample")


async def check_all(collector: Collector) -> None:
    assert await collector.refresh_inventory()
    now = asyncio.get_running_loop().time()
    for tracked in list(collector.devices.values()):
        collector.launch_check(tracked, now)
    for _ in range(100):  # bounded: the checks take milliseconds
        if not collector._tasks:
            break
        await asyncio.sleep(0.05)
    await collector.writer.run(lambda: None)  # a round trip: everything queued is written


def test_an_snmp_device_is_up_and_its_reboot_is_an_event(snmp_agent, no_samples):
    switch = Device.objects.create(
        name="snmp-switch",
        address="127.0.0.1",
        check_method=CheckMethod.SNMP,
        check_port=snmp_agent.port,
        check_timeout_s=2,
        snmp_community="router",
    )
    silent = Device.objects.create(
        name="push-sensor", address="10.0.0.1", check_method=CheckMethod.PUSH, check_interval_s=1
    )
    DeviceState.objects.create(
        device=silent, status=Status.UP, last_check_at=timezone.now() - timedelta(seconds=60)
    )

    async def scenario() -> None:
        collector = Collector(batch_seconds=0.1, inventory_refresh_s=1.0)
        await collector.start()
        try:
            await check_all(collector)
            assert silent.id not in collector.devices  # push devices are not probed
            await collector.writer.run(
                lambda: Device.objects.filter(id=switch.id).update(snmp_community="router-rebooted")
            )
            await check_all(collector)
            await collector.check_silent_push()
        finally:
            await collector.stop()

    with asyncio.Runner() as runner:
        runner.run(scenario())
    assert DeviceState.objects.get(device=switch).status == Status.UP
    assert Sample.objects.filter(device=switch, ok=True).count() == 2
    reboot = Event.objects.get(device=switch, message__startswith="rebooted")
    assert (reboot.from_status, reboot.to_status) == (Status.UP, Status.UP)
    assert "up for 12 s" in reboot.message
    assert DeviceState.objects.get(device=silent).status == Status.DOWN
