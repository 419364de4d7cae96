"""The collector's retention job: old raw samples go, recent ones and rollups stay."""

from __future__ import annotations

import asyncio
import time

import pytest
from django.db import connection

from resourcemonitor.inventory.models import CheckMethod, Device
from resourcemonitor.monitoring.collector import Collector
from resourcemonitor.monitoring.models import Sample

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(60),
    pytest.mark.django_db(transaction=True),
]

DAY_MS = 86_400_000


def test_prune_history_drops_raw_samples_past_retention(settings):
    settings.RESMON_RETENTION_RAW_DAYS = 7
    device = Device.objects.create(
        name="old-timer", address="127.0.0.1", check_method=CheckMethod.TCP, check_port=9
    )
    now_ms = int(time.time() * 1000)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM monitoring_sample")
        cursor.executemany(
            "INSERT INTO monitoring_sample (t, device_id, ok, latency_us, error) "
            "VALUES (%s, %s, %s, NULL, NULL)",
            [(now_ms - days * DAY_MS, device.id, True) for days in (30, 8, 6, 1)],
        )

    async def scenario() -> None:
        collector = Collector(batch_seconds=0.1)
        await collector.start()
        try:
            await collector.prune_history()
        finally:
            await collector.stop()

    with asyncio.Runner() as runner:
        runner.run(scenario())

    ages = sorted(
        round((now_ms - t) / DAY_MS)
        for t in Sample.objects.filter(device=device).values_list("t", flat=True)
    )
    assert ages == [1, 6]
