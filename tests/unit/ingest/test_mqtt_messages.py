"""The MQTT ingester's message step, without a broker: topics, payloads, counting."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from resourcemonitor.monitoring.management.commands.ingest_mqtt import BrokerUrl, MqttIngester


@pytest.fixture
def ingester() -> MqttIngester:
    return MqttIngester(broker=BrokerUrl("127.0.0.1", 1883), prefix="site/a", group="resmon")


def test_shared_subscriptions(ingester):
    assert ingester.subscriptions() == [
        "$share/resmon/site/a/+/status",
        "$share/resmon/site/a/+/telemetry",
    ]
    ingester.group = None
    assert ingester.subscriptions() == ["site/a/+/status", "site/a/+/telemetry"]


def test_a_good_status_is_queued_and_stamped_on_arrival(ingester):
    assert ingester.handle_message(
        "site/a/ap-1/status", json.dumps({"ok": True, "latency_ms": 3}).encode()
    )
    (report,) = ingester.pending
    assert (report.device, report.ok, report.latency_ms) == ("ap-1", True, 3.0)
    assert report.ts is not None


@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        ("site/a/ap-1/status", b"\xff\xfe"),
        ("site/a/ap-1/status", b"[1, 2]"),
        ("site/a/ap-1/status", b'{"ok": 1}'),
        ("site/a/ap-1/status", b'{"ok": true, "device": "ap-2"}'),
        ("site/a/ap-1/telemetry", b'{"cpu": "high"}'),
        ("site/a/ap-1/other", b'{"ok": true}'),
        ("site/b/ap-1/status", b'{"ok": true}'),
        ("site/a/x/y/status", b'{"ok": true}'),
        ("site/a/ap-1/status", b"{" + b" " * 70_000 + b"}"),
    ],
)
def test_bad_messages_are_counted_never_raised(ingester, topic, payload):
    assert ingester.handle_message(topic, payload) is False
    assert (ingester.bad_total, ingester.pending) == (1, [])


def test_telemetry_is_counted(ingester):
    assert ingester.handle_message("site/a/ap-1/telemetry", b'{"cpu_percent": 12.5}')
    assert (ingester.telemetry_total, ingester.pending) == (1, [])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--url", "http://broker"], "mqtt://host:1883"),
        (["--url", "mqtt://host:99999"], "not a broker URL"),
        (["--prefix", "a/#"], "--prefix"),
        (["--group", "a/b"], "--group"),
        (["--duration", "soon"], "--duration"),
    ],
)
def test_bad_options_are_one_line_errors(args, message):
    with pytest.raises(CommandError, match=message.replace("+", r"\+")):
        call_command("ingest_mqtt", *args)
