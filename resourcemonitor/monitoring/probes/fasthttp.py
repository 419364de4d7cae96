"""A minimal HTTP/1.1 health check on a bare asyncio Protocol, for plain ``http://``.

Profiling the collector showed aiohttp's client machinery (session, connector, request
and response objects, the stream reader) costing several times the connect itself: about
2,300 checks per CPU-second against ~9,800 for a bare Protocol. A health check needs one
request and one status line, so for plain HTTP without a body match this module sends a
pre-built ``GET`` with ``Connection: close`` and reads the status line and headers.
Anything richer (TLS, a body match) stays on aiohttp (``probes.http``).

Failures are classified through ``probes.errors`` exactly as the aiohttp path does, so
``refused``, ``timeout``, ``reset``, ``invalid_http`` and ``http_503`` mean the same
whichever path ran. Like the aiohttp path, every check opens a fresh connection and ends
with a normal close (FIN): we read until the server closes (it was asked to), or until
the declared body has arrived, so no unread bytes turn our close into a reset.
"""

from __future__ import annotations

import asyncio
import time

from resourcemonitor.monitoring.probes import errors
from resourcemonitor.monitoring.probes.base import CheckTarget, ProbeResult

# A status line and headers bigger than this are not a health endpoint's answer.
MAX_HEAD_BYTES = 16 * 1024
# After the head, read (and discard) at most this much waiting for the server's close.
MAX_BODY_BYTES = 64 * 1024
# How long to wait for the server's close after a head without Content-Length.
DRAIN_S = 5.0
CLOSED_EARLY = "connection closed without an answer"


def handles(target: CheckTarget) -> bool:
    """Whether this probe can check ``target``: plain HTTP, no body match, and a path of
    printable ASCII without spaces (anything else needs aiohttp's URL quoting)."""
    path = target.path or "/"
    return (
        not target.tls
        and not target.body_match
        and path.isascii()
        and path.isprintable()
        and " " not in path
    )


def build_request(target: CheckTarget, user_agent: str) -> bytes:
    path = target.path or "/"
    if not path.startswith("/"):
        path = "/" + path
    port = target.port or 80
    host = target.address if ":" not in target.address else f"[{target.address}]"
    if port != 80:
        host = f"{host}:{port}"
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {user_agent}\r\n"
        "Accept: */*\r\nConnection: close\r\n\r\n"
    ).encode("latin-1")


def parse_head(head: bytes) -> tuple[int, int | None]:
    """``(status, content_length or None)`` from a response head; ValueError if not HTTP."""
    status_line, _, rest = head.partition(b"\r\n")
    parts = status_line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        shown = status_line[:60].decode("latin-1")
        raise ValueError(f"bad status line {shown!r}")
    status = int(parts[1])
    if not 100 <= status <= 599:
        raise ValueError(f"bad status code {status}")
    length = None
    for line in rest.split(b"\r\n"):
        name, sep, value = line.partition(b":")
        if sep and name.strip().lower() == b"content-length":
            value = value.strip()
            if value.isdigit():
                length = int(value)
    return status, length


class HealthProtocol(asyncio.Protocol):
    """Sends the request, resolves ``result`` with the head, then drains to the close."""

    __slots__ = ("buffer", "remaining", "request", "result", "started", "transport")

    def __init__(self, request: bytes, started: float, result: asyncio.Future[ProbeResult]):
        self.request = request
        self.started = started
        self.result = result
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        # Body bytes still expected after the head (None: until the server closes).
        self.remaining: int | None = -1

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: no isinstance check.
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(self.request)  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        if self.result.done():
            self._drain(len(data))
            return
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > MAX_HEAD_BYTES:
                self._finish(
                    ProbeResult.failure(errors.INVALID_HTTP, detail="response head too large")
                )
            return
        latency_ms = (time.perf_counter() - self.started) * 1000.0
        try:
            status, length = parse_head(self.buffer[:end])
        except ValueError as exc:
            self._finish(ProbeResult.failure(errors.INVALID_HTTP, detail=str(exc)))
            return
        self.result.set_result(ProbeResult(True, latency_ms, text=str(status)))
        self.remaining = MAX_BODY_BYTES if length is None else min(length, MAX_BODY_BYTES)
        if length is None and self.transport is not None:
            # No length: we wait for the close we asked for, but not forever.
            asyncio.get_running_loop().call_later(DRAIN_S, self.transport.close)
        body = len(self.buffer) - end - 4
        self.buffer = b""
        self._drain(body)

    def _drain(self, size: int) -> None:
        if self.remaining is None or self.remaining < 0:
            return
        self.remaining -= size
        if self.remaining <= 0 and self.transport is not None:
            # The whole declared body is in: nothing unread, so close() sends a FIN.
            self.transport.close()

    def _finish(self, result: ProbeResult) -> None:
        if not self.result.done():
            self.result.set_result(result)
        if self.transport is not None:
            self.transport.close()

    def eof_received(self) -> bool:
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        if self.result.done():
            return
        if exc is None:
            self.result.set_result(ProbeResult.failure(errors.INVALID_HTTP, detail=CLOSED_EARLY))
        else:
            self.result.set_result(ProbeResult.from_exception(exc, timeout=0.0))


async def check_plain(target: CheckTarget, user_agent: str) -> ProbeResult:
    """One health GET over plain HTTP; the status is compared with the expected one."""
    if target.port is not None and not 0 < target.port < 65536:
        return ProbeResult.failure(errors.ERROR, detail=f"invalid port {target.port}")
    loop = asyncio.get_running_loop()
    result: asyncio.Future[ProbeResult] = loop.create_future()
    started = time.perf_counter()
    protocol = HealthProtocol(build_request(target, user_agent), started, result)
    try:
        await loop.create_connection(lambda: protocol, target.address, target.port or 80)
    except OSError as exc:
        return ProbeResult.from_exception(exc, timeout=target.timeout_s)
    try:
        outcome = await result
    except BaseException:
        # Cancelled by the collector's hard timeout (which cancels ``result`` too): no
        # half-open socket left behind.
        if protocol.transport is not None:
            protocol.transport.abort()
        raise
    if not outcome.ok:
        if outcome.error == errors.TIMEOUT:
            return ProbeResult.failure(errors.TIMEOUT, timeout=target.timeout_s)
        return outcome
    status = int(outcome.text)
    if status != target.expect_status:
        return ProbeResult.failure(errors.http_status_code(status), latency_ms=outcome.latency_ms)
    return ProbeResult.success(outcome.latency_ms or 0.0)
