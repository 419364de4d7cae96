"""`resmon ingest-mqtt` against the real Mosquitto at 127.0.0.1:1883 (and a private one)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Callable

import aiomqtt
import pytest
from django.db import connection

from resourcemonitor.inventory.models import CheckMethod, Device
from resourcemonitor.monitoring.management.commands.ingest_mqtt import BrokerUrl, MqttIngester
from resourcemonitor.monitoring.models import DeviceMetric, DeviceState, Sample
from resourcemonitor.monitoring.status import Status

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

BROKER = BrokerUrl("127.0.0.1", 1883)


def broker_listening(host: str = "127.0.0.1", port: int = 1883) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(autouse=True)
def need_broker():
    if not broker_listening():
        reason = "no MQTT broker on 127.0.0.1:1883 (start it: mosquitto -d -c /etc/mosquitto/mosquitto.conf)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(autouse=True)
def no_samples_left_over():
    # monitoring_sample is not managed by Django, so a transactional test's flush
    # leaves its rows behind while device ids are reused.
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM monitoring_sample")
        cursor.execute("DELETE FROM monitoring_devicemetric")


@pytest.fixture
def prefix() -> str:
    return f"resmon-test-{uuid.uuid4().hex[:10]}"


async def until(condition: Callable[[], bool], limit_s: float = 10.0) -> None:
    """Poll a condition, bounded in time."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def publish(messages: list[tuple[str, bytes]], port: int = 1883) -> None:
    async with aiomqtt.Client("127.0.0.1", port, protocol=aiomqtt.ProtocolVersion.V5) as client:
        for topic, payload in messages:
            await client.publish(topic, payload, qos=1)


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 30))


def test_status_messages_are_recorded_and_bad_ones_counted(prefix):
    sensor = Device.objects.create(
        name="mqtt-sensor-1", address="10.0.0.1", check_method=CheckMethod.PUSH, fail_threshold=1
    )
    Device.objects.create(
        name="mqtt-probed", address="10.0.0.2", check_method=CheckMethod.TCP, check_port=22
    )
    ingester = MqttIngester(broker=BROKER, prefix=prefix, group=f"g{uuid.uuid4().hex[:8]}")

    async def scenario():
        task = asyncio.create_task(ingester.run(duration=20))
        await asyncio.wait_for(ingester.connected.wait(), 10)
        await publish(
            [
                (
                    f"{prefix}/mqtt-sensor-1/status",
                    json.dumps({"ok": True, "latency_ms": 7}).encode(),
                ),
                (f"{prefix}/mqtt-sensor-1/telemetry", json.dumps({"cpu": 0.25}).encode()),
                (f"{prefix}/mqtt-sensor-1/status", b"{not json"),
                (f"{prefix}/mqtt-sensor-1/status", json.dumps({"ok": "yes"}).encode()),
                (f"{prefix}/mqtt-sensor-1/telemetry", json.dumps({"cpu": "hot"}).encode()),
                (f"{prefix}/no-such-device/status", json.dumps({"ok": True}).encode()),
                (f"{prefix}/mqtt-probed/status", json.dumps({"ok": True}).encode()),
            ]
        )
        await until(lambda: ingester.received_total >= 7 and not ingester.pending)
        await until(lambda: ingester.bad_total >= 5)
        ingester.request_stop()
        await task

    run(scenario())
    assert (ingester.recorded_total, ingester.telemetry_total, ingester.bad_total) == (1, 1, 5)
    state = DeviceState.objects.get(device=sensor)
    assert (state.status, state.latency_ms) == (Status.UP, 7.0)
    assert Sample.objects.filter(device=sensor).count() == 1
    assert not Sample.objects.exclude(device=sensor).exists()
    # The good telemetry message is stored as a metric; the bad one is not.
    assert list(DeviceMetric.objects.values_list("device_id", "name", "value")) == [
        (sensor.id, "cpu", 0.25)
    ]
    assert ingester.metrics_total == 1


def test_a_shared_subscription_splits_messages_between_ingesters(prefix):
    names = [f"mqtt-shared-{i}" for i in range(20)]
    for name in names:
        Device.objects.create(name=name, address="10.0.0.1", check_method=CheckMethod.PUSH)
    group = f"g{uuid.uuid4().hex[:8]}"
    first = MqttIngester(broker=BROKER, prefix=prefix, group=group)
    second = MqttIngester(broker=BROKER, prefix=prefix, group=group)

    async def scenario():
        tasks = [asyncio.create_task(i.run(duration=20)) for i in (first, second)]
        await asyncio.wait_for(first.connected.wait(), 10)
        await asyncio.wait_for(second.connected.wait(), 10)
        await publish([(f"{prefix}/{name}/status", b'{"ok": true}') for name in names])
        await until(lambda: first.received_total + second.received_total >= 20)
        await until(lambda: not first.pending and not second.pending)
        await asyncio.sleep(0.3)  # nothing more should arrive: each message went to one
        first.request_stop()
        second.request_stop()
        await asyncio.gather(*tasks)

    run(scenario())
    assert first.received_total + second.received_total == 20
    assert first.received_total > 0 and second.received_total > 0
    assert Sample.objects.count() == 20


@pytest.fixture
def private_broker_port():
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not os.path.exists(mosquitto):
        pytest.skip("mosquitto is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return mosquitto, port


def test_reconnects_with_backoff_when_the_broker_comes_late(prefix, private_broker_port):
    mosquitto, port = private_broker_port
    Device.objects.create(name="mqtt-late", address="10.0.0.1", check_method=CheckMethod.PUSH)
    ingester = MqttIngester(broker=BrokerUrl("127.0.0.1", port), prefix=prefix, group="late")
    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "mosquitto.conf")
        with open(config, "w") as f:
            f.write(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
        os.chmod(tmp, 0o755)
        os.chmod(config, 0o644)

        async def scenario():
            task = asyncio.create_task(ingester.run(duration=25))
            await until(lambda: ingester.reconnects_total >= 1)
            assert not task.done()  # a missing broker is never fatal
            broker = await asyncio.create_subprocess_exec(
                mosquitto, "-c", config, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            try:
                await asyncio.wait_for(ingester.connected.wait(), 15)
                await publish([(f"{prefix}/mqtt-late/status", b'{"ok": true}')], port=port)
                await until(lambda: ingester.recorded_total == 1)
            finally:
                ingester.request_stop()
                await task
                broker.terminate()
                await asyncio.wait_for(broker.wait(), 10)

        run(scenario())
    assert DeviceState.objects.get(device__name="mqtt-late").status == Status.UP


def test_the_simulator_publishes_and_push_devices_follow_it(prefix):
    from simulator.runner import Simulator, SimulatorConfig
    from tests.integration.simulator.helpers import free_port

    config = SimulatorConfig(
        devices=3,
        seed=7,
        bind_port=free_port(),
        address_base="127.77.0.1",
        port=free_port(),
        mqtt_url="mqtt://127.0.0.1:1883",
        mqtt_interval_s=0.3,
        mqtt_prefix=prefix,
    )
    simulator = Simulator(config)
    for device in simulator.devices:
        Device.objects.create(
            name=device.name, address=device.address, check_method=CheckMethod.PUSH
        )
    ingester = MqttIngester(broker=BROKER, prefix=prefix, group=f"g{uuid.uuid4().hex[:8]}")

    async def scenario():
        task = asyncio.create_task(ingester.run(duration=25))
        await asyncio.wait_for(ingester.connected.wait(), 10)
        await simulator.start()
        try:
            assert simulator.network is not None
            roots = [d.id for d in simulator.devices if d.parent_id is None]
            for root in roots:  # each subtree follows its root
                simulator.network.force(root, "up")
            await until(lambda: ingester.recorded_total >= 6 and ingester.telemetry_total >= 6)
            for root in roots:
                simulator.network.force(root, "down")
            # Wait on the ingester's own count of recorded reports, not on the database:
            # the test database is in-memory SQLite with a shared cache, where a read from
            # another thread during the ingester's write fails at once ("table is
            # locked") instead of waiting. Five more reports a device cover the three
            # failures that make it down (and one in flight from before the outage).
            recorded = ingester.recorded_total
            await until(lambda: ingester.recorded_total >= recorded + 5 * len(simulator.devices))
        finally:
            await simulator.stop()
            ingester.request_stop()
            await task

    run(scenario())
    assert ingester.bad_total == 0
    statuses = set(DeviceState.objects.values_list("status", flat=True))
    assert statuses <= {Status.DOWN, Status.UNREACHABLE}, statuses  # 3 failures = fail_threshold
    root = DeviceState.objects.get(device__name=simulator.devices[0].name)
    assert root.status == Status.DOWN
    assert "simulated outage" in root.last_error
    # Telemetry became per-device metrics: CPU, memory and uptime of every device.
    stored = set(DeviceMetric.objects.values_list("device__name", "name"))
    assert {(d.name, "cpu_percent") for d in simulator.devices} <= stored
    assert {(d.name, "uptime_s") for d in simulator.devices} <= stored
