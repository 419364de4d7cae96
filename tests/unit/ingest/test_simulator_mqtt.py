"""The simulator's MQTT messages and options (no broker: the integration tests have one)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from simulator.behaviour import BehaviourModel
from simulator.cli import UsageError, parse_args
from simulator.mqtt import MqttTarget, device_messages
from simulator.network import NetworkState
from simulator.topology import generate


def network(devices: int = 4) -> NetworkState:
    nodes = generate(devices, 3, "127.60.0.1", 8080)
    return NetworkState(nodes, BehaviourModel(nodes, 3), clock=lambda: 0.0)


def test_every_device_publishes_status_and_telemetry():
    net = network()
    net.force(1, "down")
    messages = dict(device_messages(net, prefix="lab", now=datetime(2026, 11, 27, 12, tzinfo=UTC)))
    assert len(messages) == 2 * len(net.devices)
    root = net.devices[0].name
    status = json.loads(messages[f"lab/{root}/status"])
    assert status["ok"] is False and status["latency_ms"] is None
    assert status["ts"] == "2026-11-27T12:00:00Z"
    assert status["error"].startswith("simulated outage")
    telemetry = json.loads(messages[f"lab/{root}/telemetry"])
    assert set(telemetry) == {"cpu_percent", "memory_percent", "uptime_s"}
    assert telemetry["uptime_s"] == 0.0


def test_topics_can_be_limited_to_telemetry_or_status():
    net = network()
    telemetry = device_messages(net, prefix="lab", topics="telemetry")
    assert [topic.rsplit("/", 1)[1] for topic, _ in telemetry] == ["telemetry"] * 4
    status = device_messages(net, prefix="lab", topics="status")
    assert [topic.rsplit("/", 1)[1] for topic, _ in status] == ["status"] * 4
    assert parse_args(["--mqtt-topics", "telemetry"]).mqtt_topics == "telemetry"
    with pytest.raises(UsageError, match="--mqtt-topics must be one of both, status, telemetry"):
        parse_args(["--mqtt-topics", "all"])


def test_broker_urls():
    assert MqttTarget.parse("mqtt://127.0.0.1") == MqttTarget("127.0.0.1", 1883)
    assert MqttTarget.parse("mqtts://u:p%40ss@broker:8884") == MqttTarget(
        "broker", 8884, True, "u", "p@ss"
    )
    for bad in ("http://x", "mqtt://", "mqtt://h:70000", "broker:1883"):
        with pytest.raises(ValueError):
            MqttTarget.parse(bad)


def test_cli_options():
    config = parse_args(
        ["--mqtt", "mqtt://127.0.0.1:1883", "--mqtt-interval", "2", "--mqtt-prefix", "/lab/"]
    )
    assert (config.mqtt_url, config.mqtt_interval_s, config.mqtt_prefix) == (
        "mqtt://127.0.0.1:1883",
        2.0,
        "lab",
    )
    assert parse_args([]).mqtt_url is None


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--mqtt", "ftp://x"], "--mqtt must look like"),
        (["--mqtt-interval", "nan"], "--mqtt-interval"),
        (["--mqtt-interval", "0"], "--mqtt-interval"),
        (["--mqtt-prefix", "a/+"], "--mqtt-prefix"),
    ],
)
def test_bad_cli_options_are_one_line_errors(args, words):
    with pytest.raises(UsageError, match=words.replace("+", r"\+")):
        parse_args(args)
