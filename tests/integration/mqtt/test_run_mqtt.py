"""``resmon run`` and MQTT: it starts ``ingest-mqtt`` when a broker answers (and, with
``--sim-mqtt``, the simulator's telemetry lands in the metrics table), and says so in one
line, then runs on, when none does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.integration.mqtt.test_ingest_mqtt import broker_listening
from tests.stack import free_port, http_json, stack_env, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]


def start_run(data_dir: Path, *args: str) -> tuple[subprocess.Popen[bytes], str, Path]:
    web_port, sim_port = free_port(), free_port()
    log_path = data_dir / "run.log"
    data_dir.mkdir(parents=True, exist_ok=True)
    second_octet = 100 + (os.getpid() * 11 + web_port) % 150
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "resourcemonitor",
            "run",
            "--devices",
            "3",
            "--interval",
            "1",
            "--bind",
            f"127.0.0.1:{web_port}",
            "--sim-bind",
            f"127.0.0.1:{sim_port}",
            "--sim-address-base",
            f"127.{second_octet}.0.1",
            *args,
        ],
        env=stack_env(data_dir),
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
    )
    return process, f"http://127.0.0.1:{web_port}", log_path


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_without_a_broker_run_says_so_in_one_line_and_runs(tmp_path):
    process, web, log_path = start_run(tmp_path, "--mqtt", f"mqtt://127.0.0.1:{free_port()}")
    try:
        wait_for(
            lambda: process.poll() is None and http_json(f"{web}/api/v1/devices")["count"] == 3,
            timeout=90,
            what="the web to list 3 devices",
        )
        log = log_path.read_text()
        lines = [line for line in log.splitlines() if line.startswith("MQTT:")]
        assert len(lines) == 1 and "no broker answers" in lines[0], log[-2000:]
        assert "ingesting from" not in log
    finally:
        stop(process)


def test_with_a_broker_run_ingests_the_simulators_telemetry(tmp_path):
    if not broker_listening():
        reason = "no MQTT broker on 127.0.0.1:1883"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    # run uses the default prefix and shared group ("resmon"): another ingester on this
    # broker may take some of the messages, so the test asks for one device's metrics.
    process, web, log_path = start_run(tmp_path, "--sim-mqtt")
    try:

        def listed() -> list[dict] | None:
            items = http_json(f"{web}/api/v1/devices")["items"]
            return items if process.poll() is None and len(items) == 3 else None

        devices = wait_for(listed, timeout=90, what="the web to list 3 devices")

        def some_metrics() -> bool:
            for device in devices:
                body = http_json(f"{web}/api/v1/devices/{device['id']}/metrics?name=cpu_percent")
                if body["series"]:
                    return True
            return False

        wait_for(some_metrics, timeout=60, what="telemetry stored as metrics")
        log = log_path.read_text()
        assert "MQTT: ingesting from 127.0.0.1:1883" in log, log[-2000:]
        with urllib.request.urlopen(f"{web}/metrics", timeout=10) as response:
            text = response.read().decode()
        assert "resmon_device_cpu_ratio{" in text
    finally:
        stop(process)
