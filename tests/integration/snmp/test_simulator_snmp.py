"""The simulator's own snmpsim agents (``resmon simulate --snmp K``), checked by the real
collector's SNMP probe: up, growing octet counters become rates, and the metrics land in
the metrics table, the API and /metrics."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest
from django.db import connection

from resourcemonitor.inventory.models import CheckMethod, Device
from resourcemonitor.monitoring.collector import Collector
from resourcemonitor.monitoring.models import DeviceMetric, DeviceState
from resourcemonitor.monitoring.status import Status
from simulator.runner import Simulator, SimulatorConfig
from tests.integration.simulator.helpers import free_port
from tests.integration.snmp.conftest import RESPONDER, _free_udp_port
from tests.integration.snmp.test_snmp_collector import check_all

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(90),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def snmpsim_installed():
    if not RESPONDER.exists():
        reason = f"snmpsim is not installed ({RESPONDER}); run `make snmpsim-deps`"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture
def empty_tables(transactional_db):
    # Unmanaged tables: Django's flush between transactional tests leaves them alone.
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM monitoring_sample")
        cursor.execute("DELETE FROM monitoring_devicemetric")


def test_collector_probes_the_simulators_agents(snmpsim_installed, empty_tables, client, settings):
    settings.RESMON_PUBLIC_DASHBOARD = True
    config = SimulatorConfig(
        devices=6,
        seed=3,
        bind_port=free_port(),
        address_base="127.78.0.1",
        port=free_port(),
        snmp_agents=2,
        snmp_port=_free_udp_port(),
    )
    simulator = Simulator(config)

    async def scenario() -> list[dict]:
        await simulator.start()
        try:
            assert simulator.network is not None
            inventory = simulator.network.inventory()
            answering = [d for d in inventory if d["snmp"] is not None]
            assert len(answering) == 2
            assert "SNMP v2c on 2 devices" in simulator.banner()
            for device in answering:
                snmp = device["snmp"]
                assert (snmp["address"], snmp["community"]) == (device["address"], device["name"])
                await asyncio.to_thread(
                    Device.objects.create,
                    name=device["name"],
                    address=snmp["address"],
                    check_method=CheckMethod.SNMP,
                    check_port=snmp["port"],
                    check_timeout_s=2,
                    snmp_community=snmp["community"],
                )
            collector = Collector(batch_seconds=0.1, inventory_refresh_s=1.0)
            await collector.start()
            try:
                await check_all(collector)
                await asyncio.sleep(1.5)  # counters grow; the second check makes rates
                await check_all(collector)
            finally:
                await collector.stop()  # writes the metrics still batched
            return answering
        finally:
            await simulator.stop()

    with asyncio.Runner() as runner:
        answering = runner.run(scenario())
    for device in answering:
        assert DeviceState.objects.get(device__name=device["name"]).status == Status.UP
    first = Device.objects.get(name=answering[0]["name"])
    names = set(DeviceMetric.objects.filter(device=first).values_list("name", flat=True))
    assert names >= {"uptime_s", "if_up", "if_down", "cpu_percent", "in_bps", "out_bps"}
    in_bps = DeviceMetric.objects.get(device=first, name="in_bps").value
    assert in_bps > 0  # the simulated counters grow

    series = client.get(f"/api/v1/devices/{first.id}/metrics?name=in_bps").json()["series"]
    assert series[0]["name"] == "in_bps" and series[0]["points"][0][1] == in_bps
    text = client.get("/metrics").content.decode()
    assert f'resmon_device_receive_bytes_per_second{{device="{first.name}"}}' in text
    assert f'resmon_device_uptime_seconds{{device="{first.name}"}}' in text


def test_without_snmpsim_the_simulator_says_so_in_one_line():
    result = subprocess.run(
        [sys.executable, "-m", "simulator", "-d", "2", "--snmp", "1", "--snmpsim", "/nonexistent"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "snmpsim is not installed" in lines[0] and "make snmpsim-deps" in lines[0]
