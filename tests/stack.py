"""Start the real product (``resmon run``) in a subprocess for end-to-end tests.

Real processes, real sockets, a real SQLite file in a temporary data directory: the same
path a user takes with ``make run``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_json(url: str, *, method: str = "GET", body: Any = None, timeout: float = 5.0) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.load(response)


def wait_for(
    predicate: Callable[[], T | None], *, timeout: float, interval: float = 0.2, what: str = ""
) -> T:
    """Poll until ``predicate`` returns something truthy; fail with ``what`` after timeout."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except (urllib.error.URLError, OSError, ValueError) as exc:
            last_error = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last_error})")


@dataclass
class Stack:
    process: subprocess.Popen[bytes]
    web_url: str
    sim_url: str
    data_dir: Path
    log_path: Path

    def api(self, path: str) -> Any:
        return http_json(f"{self.web_url}{path}")

    def sim(self, path: str, body: Any = None) -> Any:
        method = "GET" if body is None else "POST"
        return http_json(f"{self.sim_url}{path}", method=method, body=body)

    def force(self, device: dict[str, Any], state: str) -> None:
        self.sim(f"/devices/{device['id']}/state", {"state": state})

    def pin_up_with_ancestors(self, device: dict[str, Any]) -> list[dict[str, Any]]:
        """Force a device and every ancestor up (a down ancestor takes its subtree down),
        so a test decides the device's state alone. Returns the chain, for ``release``."""
        by_id = {entry["id"]: entry for entry in self.sim("/inventory")}
        chain = [by_id[device["id"]]]
        while chain[-1]["parent_id"] is not None:
            chain.append(by_id[chain[-1]["parent_id"]])
        for entry in chain:
            self.force(entry, "up")
        return chain

    def release(self, chain: list[dict[str, Any]]) -> None:
        for entry in chain:
            self.force(entry, "auto")

    def leaf(self) -> dict[str, Any]:
        """A simulated device that is nobody's parent."""
        inventory = self.sim("/inventory")
        parents = {entry["parent_id"] for entry in inventory}
        return next(entry for entry in inventory if entry["id"] not in parents)

    def resmon(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "resourcemonitor", *args],
            env=stack_env(self.data_dir),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def stop(self, timeout: float = 15.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise
        return int(self.process.returncode)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def stack_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env["RESMON_DATA_DIR"] = str(data_dir)
    env.pop("DATABASE_URL", None)
    env["RESMON_INVENTORY_REFRESH_S"] = "1"
    env["RESMON_PUBLIC_DASHBOARD"] = "1"
    return env


_stacks_started = 0


def _address_base() -> str:
    """A /16 of the loopback range of its own for each stack, so two stacks (or a stack
    and a developer's `make run` on 127.10.x.x) never fight over a device's address."""
    global _stacks_started
    _stacks_started += 1
    second_octet = 100 + (os.getpid() * 7 + _stacks_started) % 150
    return f"127.{second_octet}.0.1"


# No MQTT ingester even when a broker runs here: stacks stay alike everywhere
# (tests/integration/mqtt/test_run_mqtt.py covers run with a broker).
NO_MQTT = ("--no-mqtt",)


def start_stack(
    data_dir: Path,
    *,
    devices: int = 16,
    interval: float = 1.0,
    run_args: Sequence[str] = NO_MQTT,
) -> Stack:
    web_port, sim_port = free_port(), free_port()
    log_path = data_dir / "stack.log"
    data_dir.mkdir(parents=True, exist_ok=True)
    log = log_path.open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "resourcemonitor",
            "run",
            "--devices",
            str(devices),
            "--bind",
            f"127.0.0.1:{web_port}",
            "--sim-bind",
            f"127.0.0.1:{sim_port}",
            "--interval",
            str(interval),
            "--sim-address-base",
            _address_base(),
            *run_args,
        ],
        env=stack_env(data_dir),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    stack = Stack(
        process, f"http://127.0.0.1:{web_port}", f"http://127.0.0.1:{sim_port}", data_dir, log_path
    )
    try:
        wait_for(
            lambda: (
                stack.process.poll() is None and stack.api("/api/v1/devices")["count"] == devices
            ),
            timeout=90,
            what=f"the web to list {devices} devices",
        )
    except AssertionError:
        stack.stop()
        raise AssertionError(f"stack did not start:\n{stack.log()[-4000:]}") from None
    return stack
