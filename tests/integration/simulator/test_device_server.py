"""The device servers in-process, on real sockets, with a clock the test moves.

Covers what the process tests cannot steer from outside: a "hang" outage, idle
connections being dropped, pipelining and the corners of the HTTP parsing.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import pytest
import uvloop

from simulator.behaviour import DOWN, HANG, BehaviourModel
from simulator.device_server import DeviceServers
from simulator.network import NetworkState
from simulator.topology import SimulatedDevice, generate

from .helpers import free_port

pytestmark = pytest.mark.integration

ADDRESS_BASE = "127.77.4.1"
STEP_S = 2.0  # every await below is bounded by this


class Clock:
    """A monotonic clock the test sets."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Rig:
    clock: Clock
    network: NetworkState
    servers: DeviceServers
    devices: list[SimulatedDevice]

    async def force(self, device_id: int, state: str) -> None:
        await self.servers.sync(self.network.force(device_id, state))

    async def calm(self) -> None:
        """Everything forced up: no outages, no spikes."""
        for device in self.devices:
            await self.force(device.id, "up")

    async def move_to(self, t: float) -> None:
        self.clock.now = t
        await self.servers.sync(self.network.tick())

    def leaf(self) -> SimulatedDevice:
        parents = {device.parent_id for device in self.devices}
        return next(
            d
            for d in self.devices
            if d.id not in parents and self.network.model.profile(d.id).base_latency_ms >= 1.5
        )


def run(scenario: Callable[[Rig], Coroutine[Any, Any, None]], **options: Any) -> None:
    """Run ``scenario`` against 16 devices on uvloop, as the real simulator does."""

    async def main() -> None:
        clock = Clock()
        devices = generate(16, 1, ADDRESS_BASE, free_port())
        network = NetworkState(devices, BehaviourModel(devices, 1), clock)
        servers = DeviceServers(network, **options)
        await servers.start()
        try:
            await asyncio.wait_for(scenario(Rig(clock, network, servers, devices)), 15)
        finally:
            await servers.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())


async def _bounded(awaitable: Awaitable[Any]) -> Any:
    return await asyncio.wait_for(awaitable, STEP_S)


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await _bounded(reader.readuntil(b"\r\n\r\n"))
    lines = head.decode().split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await _bounded(reader.readexactly(int(headers["content-length"])))
    return status, headers, body


async def connect(device: SimulatedDevice) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await _bounded(asyncio.open_connection(device.address, device.port))


async def assert_closed(reader: asyncio.StreamReader) -> None:
    with contextlib.suppress(ConnectionResetError):  # a reset is closed too
        assert await _bounded(reader.read(1)) == b""


def test_hang_outage_accepts_and_never_answers() -> None:
    async def scenario(rig: Rig) -> None:
        model = rig.network.model
        # The first moment some device is in a "hang" outage, by the model.
        device_id, t = next(
            (device.id, float(t))
            for t in range(0, 2_000_000, 7)
            for device in rig.devices
            if model.condition(device.id, float(t)).failure_mode == HANG
        )
        device = rig.devices[device_id - 1]
        reader, writer = await connect(device)  # a keep-alive connection from before

        await rig.move_to(t)

        assert rig.network.condition(device_id).state == DOWN
        assert rig.servers.is_listening(device_id)
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        fresh_reader, fresh_writer = await connect(device)  # connects still succeed
        fresh_writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        for silent in (reader, fresh_reader):
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(silent.read(1), 0.3)
        writer.close()
        fresh_writer.close()

    run(scenario)


def test_refused_outage_closes_listener_and_drops_connections() -> None:
    async def scenario(rig: Rig) -> None:
        await rig.calm()
        device = rig.leaf()
        reader, writer = await connect(device)
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await read_response(reader))[0] == 200

        await rig.force(device.id, "down")

        assert not rig.servers.is_listening(device.id)
        with pytest.raises(ConnectionRefusedError):
            await connect(device)
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        await assert_closed(reader)
        writer.close()

        await rig.force(device.id, "auto")
        await rig.force(device.id, "up")
        reader, writer = await connect(device)
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await read_response(reader))[0] == 200
        writer.close()

    run(scenario)


def test_pipelined_requests_are_answered_in_order() -> None:
    async def scenario(rig: Rig) -> None:
        await rig.calm()
        device = rig.leaf()
        reader, writer = await connect(device)
        writer.write(
            b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /elsewhere HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /health HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
            b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n"
        )
        statuses = [(await read_response(reader))[0] for _ in range(4)]
        assert statuses == [200, 404, 405, 200]
        await assert_closed(reader)
        writer.close()

    run(scenario)


@pytest.mark.parametrize(
    "raw",
    [
        b"NONSENSE\r\n\r\n",
        b"GET /health HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET /health HTTP/1.1\r\nContent-Length: 9000\r\n\r\n",
        b"GET /health HTTP/1.1\r\nX: " + b"y" * 9000,
    ],
)
def test_bad_requests_get_400_and_close(raw: bytes) -> None:
    async def scenario(rig: Rig) -> None:
        await rig.calm()
        reader, writer = await connect(rig.leaf())
        writer.write(raw)
        status, headers, body = await read_response(reader)
        assert status == 400
        assert headers["connection"] == "close"
        assert b"error" in body
        await assert_closed(reader)
        writer.close()

    run(scenario)


def test_http_1_0_and_half_close_still_get_their_answer() -> None:
    async def scenario(rig: Rig) -> None:
        await rig.calm()
        device = rig.leaf()
        with socket.create_connection((device.address, device.port), timeout=STEP_S) as sock:
            sock.setblocking(False)
            loop = asyncio.get_running_loop()
            await loop.sock_sendall(sock, b"GET /health HTTP/1.0\r\n\r\n")
            sock.shutdown(socket.SHUT_WR)  # the client is done sending
            received = b""
            while chunk := await _bounded(loop.sock_recv(sock, 4096)):
                received += chunk
        assert received.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"Connection: close" in received
        assert device.name.encode() in received

    run(scenario)


def test_idle_keep_alive_connections_are_swept() -> None:
    async def scenario(rig: Rig) -> None:
        await rig.calm()
        reader, writer = await connect(rig.leaf())
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        await read_response(reader)
        assert len(rig.servers.connections) == 1

        rig.servers.sweep()
        assert len(rig.servers.connections) == 1  # not idle long enough yet
        await asyncio.sleep(0.3)
        rig.servers.sweep()

        await assert_closed(reader)
        writer.close()

    run(scenario, idle_timeout_s=0.2)


def test_close_drops_everything() -> None:
    async def scenario(rig: Rig) -> None:
        await rig.calm()
        device = rig.leaf()
        reader, writer = await connect(device)

        await rig.servers.close()

        assert rig.servers.listening == 0
        await assert_closed(reader)
        with pytest.raises(ConnectionRefusedError):
            await connect(device)
        writer.close()

    run(scenario)
