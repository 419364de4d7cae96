"""The devices' listeners: one listening socket per device, and a lean HTTP/1.1 server.

Each device listens on its own address and answers ``GET /health`` (and ``HEAD``)
after its current latency. A device in a "refused" outage has its listener closed;
one in a "hang" outage accepts and never answers. The HTTP side is a bare
``asyncio.Protocol`` that parses only the request line and headers: at 10,000
devices per process a framework's per-request overhead would dominate.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import socket
from collections.abc import Iterable
from functools import partial
from typing import cast

from simulator.behaviour import DEGRADED, DOWN, HANG
from simulator.network import NetworkState
from simulator.topology import SimulatedDevice

log = logging.getLogger("simulator")

MAX_REQUEST_BYTES = 8 * 1024
IDLE_TIMEOUT_S = 15.0  # keep-alive connections idle this long are closed (fds are scarce)
HANG_TIMEOUT_S = 120.0  # a hung connection is dropped this long after its last request
LISTEN_BACKLOG = 128
_SERVER_HEADER = b"Server: resmon-simulator\r\n"


class ListenError(OSError):
    """A device's address and port could not be listened on."""

    def __init__(self, device: SimulatedDevice, error: OSError) -> None:
        reason = os.strerror(error.errno).lower() if error.errno else str(error)
        super().__init__(error.errno, f"cannot listen on {device.address}:{device.port}: {reason}")
        self.device = device


def _response(
    status: bytes, body: bytes, *, keep_alive: bool, head_only: bool = False, extra: bytes = b""
) -> bytes:
    return b"".join(
        (
            b"HTTP/1.1 ",
            status,
            b"\r\n",
            _SERVER_HEADER,
            b"Content-Type: application/json\r\nContent-Length: ",
            str(len(body)).encode(),
            b"\r\nConnection: keep-alive\r\n" if keep_alive else b"\r\nConnection: close\r\n",
            extra,
            b"\r\n",
            b"" if head_only else body,
        )
    )


_BAD_REQUEST = _response(b"400 Bad Request", b'{"error": "bad request"}', keep_alive=False)


class _Request:
    """The little the server needs from a parsed request."""

    __slots__ = ("body_length", "keep_alive", "method", "path")

    def __init__(self, method: bytes, path: bytes, keep_alive: bool, body_length: int) -> None:
        self.method = method
        self.path = path
        self.keep_alive = keep_alive
        self.body_length = body_length


def parse_head(head: bytes) -> _Request | None:
    """Parse a request line and headers (without the blank line); None if malformed.

    Raises nothing: a malformed request is a 400, never an exception in the loop.
    """
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not parts[0].isalpha() or not parts[1]:
        return None
    method, target, version = parts
    if version == b"HTTP/1.1":
        keep_alive = True
    elif version == b"HTTP/1.0":
        keep_alive = False
    else:
        return None
    body_length = 0
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip():
            return None
        name = name.lower()
        if name == b"connection":
            tokens = {token.strip().lower() for token in value.split(b",")}
            if b"close" in tokens:
                keep_alive = False
            elif b"keep-alive" in tokens:
                keep_alive = True
        elif name == b"content-length":
            value = value.strip()
            if not value.isdigit() or len(value) > 6:
                return None
            body_length = int(value)
        elif name == b"transfer-encoding":
            return None  # health checks carry no body; rather than unchunk one, refuse it
    return _Request(method, target.partition(b"?")[0], keep_alive, body_length)


class HealthProtocol(asyncio.Protocol):
    """One accepted connection to one device."""

    __slots__ = (
        "_buffer",
        "_busy",
        "_device_id",
        "_eof",
        "_hung",
        "_servers",
        "_transport",
        "last_activity",
    )

    def __init__(self, servers: DeviceServers, device_id: int) -> None:
        self._servers = servers
        self._device_id = device_id
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._busy = False  # a delayed response is pending; later requests wait
        self._hung = False
        self._eof = False
        self.last_activity = 0.0

    @property
    def idle(self) -> bool:
        return not self._busy and not self._hung

    @property
    def hung(self) -> bool:
        return self._hung

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self._transport = cast(asyncio.Transport, transport)
        self.last_activity = self._servers.loop_time()
        self._servers.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._servers.connections.discard(self)
        self._transport = None

    def data_received(self, data: bytes) -> None:
        if self._hung:
            return  # a hung device swallows everything
        self._buffer += data
        self.last_activity = self._servers.loop_time()
        if not self._busy:
            self._process()
        elif len(self._buffer) > MAX_REQUEST_BYTES:
            self.abort()  # pipelining past the cap while we wait: not a health checker

    def eof_received(self) -> bool:
        self._eof = True
        # Keep the write side open so a request sent just before a half-close still
        # gets its (delayed) answer; _send_delayed closes afterwards.
        return self._busy

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def _process(self) -> None:
        transport = self._transport
        while transport is not None and not transport.is_closing():
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_REQUEST_BYTES:
                    self._reject()
                elif self._eof:
                    transport.close()
                return
            request = parse_head(bytes(self._buffer[:end]).lstrip(b"\r\n"))
            if request is None:
                self._reject()
                return
            size = end + 4 + request.body_length
            if size > MAX_REQUEST_BYTES:
                self._reject()
                return
            if len(self._buffer) < size:
                if self._eof:
                    transport.close()
                return  # the body is still on its way
            del self._buffer[:size]
            condition = self._servers.network.condition(self._device_id)
            if condition.state == DOWN:
                if condition.failure_mode == HANG:
                    self._hung = True
                    self._buffer.clear()
                else:
                    transport.abort()  # its listener is gone; its connections go too
                return
            response = self._servers.answer(self._device_id, request)
            delay = self._servers.response_delay(self._device_id)
            if delay >= 0.001:
                self._busy = True
                self._servers.loop.call_later(delay, self._send_delayed, response, request)
                return
            transport.write(response)
            if not request.keep_alive:
                transport.close()
                return

    def _send_delayed(self, response: bytes, request: _Request) -> None:
        self._busy = False
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        condition = self._servers.network.condition(self._device_id)
        if condition.state == DOWN:
            # It went down while "thinking": answer the way it now fails.
            if condition.failure_mode == HANG:
                self._hung = True
                self._buffer.clear()
            else:
                transport.abort()
            return
        transport.write(response)
        self.last_activity = self._servers.loop_time()
        if not request.keep_alive or (self._eof and not self._buffer):
            transport.close()
        elif self._buffer:
            self._process()

    def _reject(self) -> None:
        if self._transport is not None:
            self._transport.write(_BAD_REQUEST)
            self._transport.close()
        self._buffer.clear()


class DeviceServers:
    """Every device's listener, opened and closed to match the network's state."""

    def __init__(
        self,
        network: NetworkState,
        *,
        seed: int = 1,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        hang_timeout_s: float = HANG_TIMEOUT_S,
    ) -> None:
        self.network = network
        self.loop = asyncio.get_running_loop()
        self.loop_time = self.loop.time
        self.connections: set[HealthProtocol] = set()
        self.idle_timeout_s = idle_timeout_s
        self.hang_timeout_s = hang_timeout_s
        self._servers: dict[int, asyncio.AbstractServer] = {}
        self._lock = asyncio.Lock()
        self._failed: set[int] = set()  # should be listening, but binding failed; retried
        self._rng = random.Random(seed)  # jitter only; the states never depend on it
        self._names = [json.dumps(device.name) for device in network.devices]

    @property
    def listening(self) -> int:
        """How many devices have an open listener."""
        return len(self._servers)

    def is_listening(self, device_id: int) -> bool:
        return device_id in self._servers

    async def start(self) -> None:
        """Bind every device (so an address clash shows at once), then close the
        listeners of devices that start in a refused outage.

        Raises ``ListenError`` for the first device that cannot listen.
        """
        for device in self.network.devices:
            try:
                await self._open(device)
            except OSError as error:
                await self.close()
                raise ListenError(device, error) from error
        await self.sync(device.id for device in self.network.devices)

    async def sync(self, device_ids: Iterable[int]) -> None:
        """Open or close listeners so the given devices (and any that failed to
        reopen earlier) match their current condition."""
        async with self._lock:
            for device_id in sorted({*device_ids, *self._failed}):
                want = self.network.condition(device_id).listening
                have = device_id in self._servers
                if want and not have:
                    await self._reopen(device_id)
                elif have and not want:
                    self._servers.pop(device_id).close()
                    self._failed.discard(device_id)
                else:
                    self._failed.discard(device_id)

    async def _reopen(self, device_id: int) -> None:
        device = self.network.device(device_id)
        try:
            await self._open(device)
        except OSError as error:
            if device_id not in self._failed:
                log.warning("%s", ListenError(device, error).strerror)
            self._failed.add(device_id)
        else:
            self._failed.discard(device_id)

    async def _open(self, device: SimulatedDevice) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            # Reopening after an outage must not trip over TIME_WAIT from old connections.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((device.address, device.port))
            sock.listen(LISTEN_BACKLOG)
            sock.setblocking(False)
            server = await self.loop.create_server(
                partial(HealthProtocol, self, device.id), sock=sock
            )
        except BaseException:
            sock.close()
            raise
        self._servers[device.id] = server

    def sweep(self) -> None:
        """Drop keep-alive connections idle too long and hung ones held too long."""
        now = self.loop_time()
        for connection in list(self.connections):
            quiet = now - connection.last_activity
            if connection.hung:
                if quiet > self.hang_timeout_s:
                    connection.abort()
            elif connection.idle and quiet > self.idle_timeout_s:
                connection.close()

    async def close(self) -> None:
        """Close every listener and connection."""
        async with self._lock:
            for server in self._servers.values():
                server.close()
            self._servers.clear()
            self._failed.clear()
        for connection in list(self.connections):
            connection.abort()

    def response_delay(self, device_id: int) -> float:
        """Seconds to wait before answering: the current latency with some jitter."""
        condition = self.network.condition(device_id)
        latency = condition.latency_ms or 0.0
        if condition.state == DEGRADED:
            return latency * (0.9 + 0.2 * self._rng.random()) / 1000.0
        jitter = self.network.model.profile(device_id).jitter_ms
        return (latency + jitter * self._rng.random()) / 1000.0

    def answer(self, device_id: int, request: _Request) -> bytes:
        """The bytes of the response to ``request`` (the device is up or degraded)."""
        head_only = request.method == b"HEAD"
        if request.path != b"/health":
            return _response(
                b"404 Not Found",
                b'{"error": "not found; try GET /health"}',
                keep_alive=request.keep_alive,
                head_only=head_only,
            )
        if request.method not in (b"GET", b"HEAD"):
            return _response(
                b"405 Method Not Allowed",
                b'{"error": "method not allowed; use GET or HEAD"}',
                keep_alive=request.keep_alive,
                extra=b"Allow: GET, HEAD\r\n",
            )
        t = self.network.elapsed()
        state = self.network.condition(device_id).state
        cpu, memory = self.network.model.health_metrics(device_id, t, state)
        uptime = int(self.network.uptime_s(device_id, t))
        body = (
            f'{{"name": {self._names[device_id - 1]}, "status": "{state}", '
            f'"cpu": {cpu}, "memory": {memory}, "uptime_s": {uptime}}}'
        ).encode()
        return _response(b"200 OK", body, keep_alive=request.keep_alive, head_only=head_only)
