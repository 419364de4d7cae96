"""The collector, in-process, against real local servers and the real test database.

The writer thread writes, so these tests use transactional test databases. ORM work
happens before and after a run on the test's thread, or during a run through the
writer itself (``collector.writer.run``), the product's one seam to the database.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import OperationalError

from resourcemonitor.inventory.models import CheckMethod, Device
from resourcemonitor.monitoring import storage
from resourcemonitor.monitoring.collector import Collector, Shard, run_collector
from resourcemonitor.monitoring.collector.writer import Writer
from resourcemonitor.monitoring.models import DeviceState, Event, Heartbeat, Rollup, Sample
from tests.unit.monitoring.helpers import ServerThread, closed_port, hang, http_answer

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(60),
    pytest.mark.django_db(transaction=True),
]

INTERVAL = 0.5


def device(name: str, method: str, port: int, **fields: Any) -> Device:
    defaults: dict[str, Any] = {
        "address": "127.0.0.1",
        "check_method": method,
        "check_port": port,
        "check_path": "/health",
        "check_interval_s": INTERVAL,
        "check_timeout_s": 0.4,
        "fail_threshold": 2,
    }
    return Device.objects.create(name=name, **{**defaults, **fields})


def collector(**options: Any) -> Collector:
    return Collector(batch_seconds=0.2, inventory_refresh_s=1.0, **options)


def test_up_down_and_unreachable_with_events_and_samples_on_schedule(
    servers: ServerThread, no_samples: None
) -> None:
    web = device("web", CheckMethod.HTTP, servers.serve(http_answer(200, b"ok")))
    tcp = device("tcp", CheckMethod.TCP, servers.serve(hang))
    refused = device("refused", CheckMethod.TCP, closed_port())
    core = device("core", CheckMethod.TCP, closed_port(), fail_threshold=1)
    child = device("child", CheckMethod.TCP, closed_port(), fail_threshold=1, parent=core)

    duration = 2.6
    checks = run_collector(collector(), duration=duration, handle_signals=False)

    status = dict(DeviceState.objects.values_list("device__name", "status"))
    assert status == {
        "web": "up",
        "tcp": "up",
        "refused": "down",
        "core": "down",
        "child": "unreachable",
    }
    assert DeviceState.objects.get(device=refused).last_error == "connection refused"
    assert DeviceState.objects.get(device=refused).consecutive_failures >= 2

    events = list(
        Event.objects.filter(device=refused).values_list("from_status", "to_status", "message")
    )
    assert events == [("unknown", "down", "connection refused")]
    assert Event.objects.get(device=web).to_status == "up"
    assert Event.objects.filter(device=child, to_status="unreachable").exists()

    # Samples against the schedule: one per interval per device (± the phase), no repeats.
    per_device = Counter(Sample.objects.values_list("device_id", flat=True))
    expected = duration / INTERVAL
    for item in (web, tcp, refused, core, child):
        assert expected - 2 <= per_device[item.id] <= expected + 1, per_device
    assert sum(per_device.values()) == checks
    rollup_counts = Rollup.objects.filter(resolution=3600).values_list("device_id", "count")
    assert sum(count for _, count in rollup_counts) == checks

    beat = Heartbeat.objects.get(component="collector")
    assert beat.info["devices"] == 5
    assert beat.info[Heartbeat.STOPPED] is True  # its last beat, so others take over at once
    assert set(beat.info) >= {
        "checks_per_s",
        "lag_p50_ms",
        "lag_p99_ms",
        "devices",
        "in_flight",
        "queue_depth",
        "write_ms",
        "errors_total",
    }
    # Lag targets are the benchmarks' business (a shared test machine can stall); here
    # it only has to be measured.
    assert 0 <= beat.info["lag_p50_ms"] <= beat.info["lag_p99_ms"]


def test_a_restart_resumes_failure_counts(servers: ServerThread, no_samples: None) -> None:
    refused = device("refused", CheckMethod.TCP, closed_port(), fail_threshold=3)
    DeviceState.objects.create(device=refused, status="up", consecutive_failures=2)
    assert run_collector(collector(), once=True, handle_signals=False) == 1
    state = DeviceState.objects.get(device=refused)
    assert (state.status, state.consecutive_failures) == ("down", 3)


def test_inventory_changes_apply_without_a_restart(servers: ServerThread, no_samples: None) -> None:
    port = servers.serve(http_answer(200))
    kept = device("kept", CheckMethod.HTTP, port)
    paused = device("paused", CheckMethod.HTTP, port)
    unknown_before = device("later", CheckMethod.HTTP, port, enabled=False)

    def edit() -> None:
        Device.objects.filter(id=paused.id).update(enabled=False)
        Device.objects.filter(id=unknown_before.id).update(enabled=True)
        Device.objects.filter(id=kept.id).update(check_interval_s=7.0, address="127.0.0.2")

    async def scenario() -> None:
        subject = collector()
        await subject.start()
        try:
            assert await subject.refresh_inventory()
            assert set(subject.devices) == {kept.id, paused.id}
            assert len(subject.scheduler) == 2
            await subject.writer.run(edit)
            assert await subject.refresh_inventory()
            assert set(subject.devices) == {kept.id, unknown_before.id}
            assert paused.id not in subject.scheduler
            assert subject.scheduler.interval(kept.id) == 7.0
            assert subject.devices[kept.id].config.address == "127.0.0.2"
        finally:
            await subject.stop()

    with asyncio.Runner() as runner:
        runner.run(scenario())
    # Every enabled device got a state row at load time, before its first check.
    assert set(DeviceState.objects.values_list("device_id", flat=True)) >= {
        kept.id,
        unknown_before.id,
    }


def test_collect_once_and_shards(servers: ServerThread, no_samples: None) -> None:
    port = servers.serve(http_answer(200))
    devices = [device(f"d{i}", CheckMethod.HTTP, port) for i in range(6)]
    call_command("collect", "--once", "--shard", "2/3")
    checked = set(Sample.objects.values_list("device_id", flat=True))
    assert checked == {d.id for d in devices if d.id % 3 == 1}
    call_command("collect", "--once")
    assert set(Sample.objects.values_list("device_id", flat=True)) == {d.id for d in devices}


@pytest.mark.parametrize("shard", ["0/2", "3/2", "2", "a/b", "1/0"])
def test_a_bad_shard_is_a_one_line_error(shard: str) -> None:
    with pytest.raises(CommandError) as caught:
        call_command("collect", "--shard", shard)
    assert "--shard" in str(caught.value)


def test_shard_ownership() -> None:
    shard = Shard.parse("2/3")
    assert [i for i in range(1, 10) if shard.owns(i)] == [1, 4, 7]
    assert str(shard) == "2/3"


def test_a_database_outage_holds_results_while_probing_goes_on(
    servers: ServerThread, no_samples: None
) -> None:
    device("web", CheckMethod.HTTP, servers.serve(http_answer(200)))
    outage = {"failures_left": 4}

    def flaky_write(batch: Any, *, using: str) -> Any:
        # The storage boundary fails like a locked database for the first four batches.
        if outage["failures_left"]:
            outage["failures_left"] -= 1
            raise OperationalError("database is locked")
        return storage.write_batch(batch, using=using)

    writer = Writer(batch_max=1000, batch_seconds=0.2, write=flaky_write, retry_initial_s=0.1)
    subject = Collector(writer=writer, inventory_refresh_s=1.0)
    checks = run_collector(subject, duration=2.5, handle_signals=False)
    assert writer.errors_total == 4
    assert checks >= 4, "probing went on during the outage"
    assert Sample.objects.count() == checks, "every held result written once"
    assert DeviceState.objects.get(device__name="web").status == "up"
