"""``python -m simulator`` as a real process: devices answer, the control API drives them.

One simulator (16 devices on 127.77.0.x) serves the whole module; each test that
forces a state puts it back to ``auto`` before it ends.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import time
from collections.abc import Iterator

import pytest

from simulator.behaviour import HANG, REFUSED

from .helpers import (
    SimulatorProcess,
    is_down,
    probe_health,
    request,
    start_simulator,
    steady_leaf,
    stop_simulator,
    wait_until_refused,
)

pytestmark = pytest.mark.integration

ADDRESS_BASE = "127.77.0.1"


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorProcess]:
    simulator = start_simulator(ADDRESS_BASE)
    try:
        yield simulator
    finally:
        stop_simulator(simulator.process)


@pytest.fixture
def release(sim: SimulatorProcess) -> Iterator[list[int]]:
    """Device ids a test forced; they go back to ``auto`` afterwards, whatever happens."""
    forced: list[int] = []
    yield forced
    for device_id in forced:
        sim.force(device_id, "auto")


def test_prints_one_start_line(sim: SimulatorProcess) -> None:
    assert sim.banner == (
        f"simulator: 16 devices on 127.77.0.1-127.77.0.16:{sim.port}, "
        f"control API {sim.control} (seed 1)"
    )


def test_every_device_answers_tcp_and_health(sim: SimulatorProcess, release: list[int]) -> None:
    inventory = sim.get("/inventory").body
    for device in inventory:  # a calm network: nothing in an outage or a spike
        assert sim.force(device["id"], "up").status == 200
        release.append(device["id"])

    for device in inventory:
        with socket.create_connection((device["address"], device["port"]), timeout=2):
            pass
        probe = probe_health(device["address"], device["port"])
        assert probe.outcome == "answered", device
        assert probe.status == 200
        assert probe.body["name"] == device["name"]
        assert probe.body["status"] == "up"
        assert set(probe.body) == {"name", "status", "cpu", "memory", "uptime_s"}
        assert 0 <= probe.body["cpu"] <= 100
        assert 0 <= probe.body["memory"] <= 100
        assert isinstance(probe.body["uptime_s"], int)


def test_keep_alive_head_and_not_found(sim: SimulatorProcess) -> None:
    device = steady_leaf(sim.model())
    with socket.create_connection((device.address, device.port), timeout=3) as sock:
        reader = sock.makefile("rb")
        for method, path in (("GET", "/health"), ("HEAD", "/health"), ("GET", "/nope")):
            sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            status_line = reader.readline()
            headers = {}
            while (line := reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers["content-length"])
            assert headers["connection"] == "keep-alive"
            assert headers["content-type"] == "application/json"
            if method == "HEAD":
                assert status_line.startswith(b"HTTP/1.1 200")
                continue  # no body follows a HEAD
            body = json.loads(reader.read(length))
            if path == "/nope":
                assert status_line.startswith(b"HTTP/1.1 404")
                assert "error" in body
            else:
                assert status_line.startswith(b"HTTP/1.1 200")
                assert body["name"] == device.name


def test_oversized_request_is_400_and_closed(sim: SimulatorProcess) -> None:
    device = steady_leaf(sim.model())
    with socket.create_connection((device.address, device.port), timeout=3) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nX-Padding: " + b"a" * 9000)
        reply = sock.recv(4096)
        assert reply.startswith(b"HTTP/1.1 400")
        assert b"Connection: close" in reply
        assert sock.recv(4096) == b""  # and the server hung up


def test_feed_is_the_original_exercise_format(sim: SimulatorProcess) -> None:
    feed = sim.get("/devices")
    inventory = sim.get("/inventory").body

    assert feed.status == 200
    assert isinstance(feed.body, list)
    assert [entry["id"] for entry in feed.body] == list(range(1, 17))
    first = ipaddress.ip_address(ADDRESS_BASE)
    for offset, (entry, device) in enumerate(zip(feed.body, inventory, strict=True)):
        assert list(entry) == ["id", "name", "ip_address", "status"]
        assert isinstance(entry["id"], int)
        assert isinstance(entry["name"], str)
        assert isinstance(entry["status"], bool)
        assert entry["name"] == device["name"]
        assert entry["ip_address"] == device["address"] == str(first + offset)
    assert feed.body[0]["name"] == "lon-core-1"


def test_inventory_and_detail_shapes(sim: SimulatorProcess) -> None:
    inventory = sim.get("/inventory").body
    detail = sim.get("/devices/5")
    health = sim.get("/healthz")

    assert health.status == 200
    assert health.body == {"ok": True, "devices": 16}
    assert len(inventory) == 16
    assert detail.status == 200
    assert list(detail.body) == [
        "id",
        "name",
        "kind",
        "site",
        "parent_id",
        "address",
        "port",
        "state",
        "failure_mode",
        "forced",
        "latency_ms",
        "snmp",
    ]
    assert {device["kind"] for device in inventory} == {
        "router",
        "switch",
        "firewall",
        "access_point",
        "phone",
        "pc",
        "server",
    }
    assert len({device["site"] for device in inventory}) >= 2
    for device in inventory:
        assert device["state"] in ("up", "degraded", "down")
        assert device["failure_mode"] in (None, REFUSED, HANG)
        assert (device["failure_mode"] is not None) == is_down(device)
        assert device["port"] == sim.port


def test_reachability_matches_reported_state(sim: SimulatorProcess) -> None:
    before = {device["id"]: device for device in sim.get("/inventory").body}
    probes = {
        device_id: probe_health(device["address"], device["port"], timeout=0.3)
        for device_id, device in before.items()
    }
    after = {device["id"]: device for device in sim.get("/inventory").body}

    checked = 0
    for device_id, probe in probes.items():
        seen = (before[device_id]["state"], before[device_id]["failure_mode"])
        if seen != (after[device_id]["state"], after[device_id]["failure_mode"]):
            continue  # it changed while we looked; nothing to compare
        checked += 1
        if seen[0] == "down" and seen[1] == REFUSED:
            assert probe.outcome == "refused", (before[device_id], probe)
        elif seen[0] == "down":
            assert probe.outcome == "silent", (before[device_id], probe)
        elif seen[0] == "up":
            assert probe.outcome == "answered", (before[device_id], probe)
            assert probe.status == 200
        # A degraded device may take longer than this probe's 0.3 s to answer.
    assert checked >= 12


def test_force_down_refuses_connects_within_a_second(
    sim: SimulatorProcess, release: list[int]
) -> None:
    device = steady_leaf(sim.model())
    release.append(device.id)

    reply = sim.force(device.id, "down")

    assert reply.status == 200
    assert reply.body["state"] == "down"
    assert reply.body["failure_mode"] == "refused"
    assert reply.body["forced"] == "down"
    assert wait_until_refused(device.address, device.port, within_s=1.0) < 1.0
    assert sim.get("/devices").body[device.id - 1]["status"] is False

    restored = sim.force(device.id, "auto")

    assert restored.status == 200
    assert restored.body["forced"] is None
    assert restored.body["state"] == "up"
    probe = probe_health(device.address, device.port)
    assert probe.outcome == "answered"
    assert probe.status == 200
    assert sim.get("/devices").body[device.id - 1]["status"] is True


def test_forcing_a_parent_down_takes_its_children(
    sim: SimulatorProcess, release: list[int]
) -> None:
    leaf = steady_leaf(sim.model())
    assert leaf.parent_id is not None
    parent = sim.get(f"/devices/{leaf.parent_id}").body
    children = [d for d in sim.get("/inventory").body if d["parent_id"] == parent["id"]]
    assert len(children) >= 2
    release.append(parent["id"])

    assert sim.force(parent["id"], "down").status == 200

    for child in children:
        detail = sim.get(f"/devices/{child['id']}").body
        assert detail["state"] == "down"
        assert detail["failure_mode"] == "refused"
        assert detail["forced"] is None  # down because of its parent, not forced itself
        assert wait_until_refused(child["address"], child["port"], within_s=1.0) < 1.0

    sim.force(parent["id"], "auto")

    assert sim.get(f"/devices/{leaf.id}").body["state"] == "up"
    assert probe_health(leaf.address, leaf.port).status == 200


def test_forced_degraded_answers_slowly(sim: SimulatorProcess, release: list[int]) -> None:
    device = steady_leaf(sim.model())
    release.append(device.id)

    reply = sim.force(device.id, "degraded")
    probe = probe_health(device.address, device.port)

    assert reply.body["state"] == "degraded"
    assert reply.body["latency_ms"] == 800
    assert probe.status == 200
    assert probe.body["status"] == "degraded"
    assert probe.elapsed_s >= 0.5

    sim.force(device.id, "auto")
    started = time.monotonic()
    assert probe_health(device.address, device.port).status == 200
    assert time.monotonic() - started < 0.5


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "error"),
    [
        ("GET", "/devices/abc", None, 400, "whole number"),
        ("GET", "/devices/99", None, 404, "no device with id 99"),
        ("GET", "/devices/0", None, 404, "no device with id 0"),
        ("POST", "/devices/99/state", b'{"state": "up"}', 404, "no device with id 99"),
        ("POST", "/devices/x/state", b'{"state": "up"}', 400, "whole number"),
        ("POST", "/devices/3/state", b"not json", 400, "must be JSON"),
        ("POST", "/devices/3/state", b"", 400, "must be JSON"),
        ("POST", "/devices/3/state", b"[1, 2]", 400, "JSON object"),
        ("POST", "/devices/3/state", b"{}", 400, '"state" is missing'),
        ("POST", "/devices/3/state", b'{"state": "sideways"}', 400, '"state" must be one of'),
        ("POST", "/devices/3/state", b'{"state": null}', 400, '"state" must be one of'),
        ("POST", "/devices/3/state", b'{"state": "' + b"u" * 70_000 + b'"}', 400, "over 65536"),
        ("GET", "/nowhere", None, 404, "no such endpoint"),
        ("DELETE", "/devices/3", None, 405, "not allowed"),
        ("GET", "/devices/3/state", None, 405, "not allowed"),
    ],
)
def test_bad_control_requests_get_json_errors(
    sim: SimulatorProcess, method: str, path: str, body: bytes | None, status: int, error: str
) -> None:
    reply = request(sim.control + path, method=method, data=body)

    assert reply.status == status
    assert isinstance(reply.body, dict)
    assert error in reply.body["error"]
    assert sim.get("/devices/3").body["forced"] is None  # nothing was changed
