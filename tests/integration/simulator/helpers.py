"""Helpers for the simulator's integration tests: a subprocess, a control client, probes.

Everything uses real sockets on 127.0.0.0/8; every wait is bounded in time.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulator.behaviour import DOWN, UP, BehaviourModel
from simulator.topology import SimulatedDevice, generate

REPO = Path(__file__).resolve().parents[3]


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the kernel's pick for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class Response:
    status: int
    body: Any
    elapsed_s: float


def request(
    url: str, *, method: str = "GET", data: bytes | None = None, timeout: float = 5.0
) -> Response:
    """One HTTP request; 4xx/5xx are returned, not raised. The body is parsed as JSON."""
    started = time.monotonic()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as reply:
            status, raw = reply.status, reply.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    return Response(status, json.loads(raw) if raw else None, time.monotonic() - started)


@dataclass
class SimulatorProcess:
    """A ``python -m simulator`` child process and where it listens."""

    process: subprocess.Popen[str]
    control: str  # base URL of the control API
    address_base: str
    port: int
    devices: int
    seed: int
    banner: str

    def get(self, path: str) -> Response:
        return request(self.control + path)

    def force(self, device_id: int, state: str) -> Response:
        body = json.dumps({"state": state}).encode()
        return request(f"{self.control}/devices/{device_id}/state", method="POST", data=body)

    def topology(self) -> list[SimulatedDevice]:
        return generate(self.devices, self.seed, self.address_base, self.port)

    def model(self) -> BehaviourModel:
        return BehaviourModel(self.topology(), self.seed)


def start_simulator(
    address_base: str, *, devices: int = 16, seed: int = 1, wait_s: float = 15.0
) -> SimulatorProcess:
    """Start the simulator and wait (bounded) until its control API answers."""
    bind_port, port = free_port(), free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "simulator",
            "-d",
            str(devices),
            "--seed",
            str(seed),
            "--bind",
            f"127.0.0.1:{bind_port}",
            "--address-base",
            address_base,
            "--port",
            str(port),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    control = f"http://127.0.0.1:{bind_port}"
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            _, err = process.communicate(timeout=5)
            raise RuntimeError(f"simulator exited with {process.returncode}: {err.strip()}")
        with contextlib.suppress(OSError):
            if request(control + "/healthz", timeout=1.0).status == 200:
                banner = _read_line(process, deadline)
                return SimulatorProcess(process, control, address_base, port, devices, seed, banner)
        time.sleep(0.05)
    stop_simulator(process)
    raise RuntimeError(f"simulator did not answer on {control} within {wait_s}s")


def _read_line(process: subprocess.Popen[str], deadline: float) -> str:
    """The next stdout line, waiting no later than ``deadline``."""
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], max(0.0, deadline - time.monotonic()))
    if not ready:
        raise RuntimeError("simulator printed no start-up line")
    return process.stdout.readline().strip()


def stop_simulator(process: subprocess.Popen[str], timeout: float = 5.0) -> int:
    """SIGTERM, then SIGKILL if it lingers; the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()
    return process.returncode


@dataclass
class Probe:
    """What a device did with one ``GET /health``."""

    outcome: str  # "answered", "refused", "silent" (accepted, no answer), "closed"
    status: int | None = None
    body: Any = None
    elapsed_s: float = 0.0


def probe_health(address: str, port: int, *, path: str = "/health", timeout: float = 3.0) -> Probe:
    """Connect, send one ``GET`` with ``Connection: close`` and read the answer."""
    started = time.monotonic()
    try:
        sock = socket.create_connection((address, port), timeout=timeout)
    except ConnectionRefusedError:
        return Probe("refused", elapsed_s=time.monotonic() - started)
    with sock:
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n".encode()
        )
        chunks = []
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except TimeoutError:
            return Probe("silent", elapsed_s=time.monotonic() - started)
        except ConnectionResetError:
            return Probe("closed", elapsed_s=time.monotonic() - started)
    raw = b"".join(chunks)
    elapsed = time.monotonic() - started
    if not raw:
        return Probe("closed", elapsed_s=elapsed)
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return Probe("answered", status, json.loads(body) if body else None, elapsed)


def wait_until_refused(address: str, port: int, within_s: float = 1.0) -> float:
    """Seconds until a connect to ``address:port`` is refused; AssertionError if never."""
    started = time.monotonic()
    while time.monotonic() - started < within_s:
        try:
            with socket.create_connection((address, port), timeout=0.5):
                pass
        except ConnectionRefusedError:
            return time.monotonic() - started
        time.sleep(0.01)
    raise AssertionError(f"{address}:{port} still accepts connections after {within_s}s")


def steady_leaf(model: BehaviourModel, horizon_s: int = 600) -> SimulatedDevice:
    """An endpoint that, by the model, is plainly up (ancestors too) for ``horizon_s``
    from the start, so a test can expect it to answer once forces are cleared."""
    parents = {device.parent_id for device in model.devices}
    for device in model.devices:
        if device.id in parents or device.parent_id is None:
            continue
        if all(model.condition(device.id, float(t)).state == UP for t in range(horizon_s)):
            return device
    raise AssertionError("no steady endpoint in this network; pick another seed")


def is_down(detail: dict[str, Any]) -> bool:
    return bool(detail["state"] == DOWN)
