"""``resmon run`` and MQTT: it starts ``ingest-mqtt`` when a broker answers (and, with
``--sim-mqtt``, the simulator's telemetry lands in the metrics table), and says so in one
line, then runs on, when none does."""

from __future__ import annotations

import os
import urllib.request

import pytest

from tests.integration.mqtt.test_ingest_mqtt import broker_listening
from tests.stack import free_port, http_json, start_stack, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]


def test_without_a_broker_run_says_so_in_one_line_and_runs(tmp_path):
    stack = start_stack(tmp_path, devices=3, run_args=("--mqtt", f"mqtt://127.0.0.1:{free_port()}"))
    try:
        lines = [line for line in stack.log().splitlines() if line.startswith("MQTT:")]
        assert len(lines) == 1 and "no broker answers" in lines[0], stack.log()[-2000:]
        assert "ingesting from" not in stack.log()
    finally:
        stack.stop()


def test_with_a_broker_run_ingests_the_simulators_telemetry(tmp_path):
    if not broker_listening():
        reason = "no MQTT broker on 127.0.0.1:1883"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    # run uses the default prefix and shared group ("resmon"): another ingester on this
    # broker may take some of the messages, so the test asks for one device's metrics.
    stack = start_stack(tmp_path, devices=3, run_args=("--sim-mqtt",))
    web = stack.web_url
    try:
        devices = stack.api("/api/v1/devices")["items"]

        def some_metrics() -> bool:
            for device in devices:
                body = http_json(f"{web}/api/v1/devices/{device['id']}/metrics?name=cpu_percent")
                if body["series"]:
                    return True
            return False

        wait_for(some_metrics, timeout=60, what="telemetry stored as metrics")
        log = stack.log()
        assert "MQTT: ingesting from 127.0.0.1:1883" in log, log[-2000:]
        with urllib.request.urlopen(f"{web}/metrics", timeout=10) as response:
            text = response.read().decode()
        assert "resmon_device_cpu_ratio{" in text
    finally:
        stack.stop()
