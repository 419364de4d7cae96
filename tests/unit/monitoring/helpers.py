"""Shared by the collector's unit and integration tests: async tests, small servers.

The servers are real sockets on 127.0.0.0/8 (the network is never mocked): each one
misbehaves in one way a device can (refuse, hang, reset, answer garbage, 503, …).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from resourcemonitor.monitoring.collector import event_loop_factory

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def run_async_test(pyfuncitem: pytest.Function) -> bool | None:
    """A tiny stand-in for pytest-asyncio: ``async def`` tests run on the product's loop."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    kwargs = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(pyfuncitem.obj(**kwargs))
    return True


def closed_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on (bound then released): connecting is refused."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


async def start_server(handler: Handler, host: str = "127.0.0.1") -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handler, host, 0)
    return server, int(server.sockets[0].getsockname()[1])


async def _read_request(reader: asyncio.StreamReader) -> None:
    with contextlib.suppress(asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)


def http_answer(status: int, body: bytes = b"", reason: str = "X") -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        head = f"HTTP/1.1 {status} {reason}\r\nContent-Length: {len(body)}\r\n"
        writer.write(head.encode() + b"Connection: close\r\n\r\n" + body)
        await writer.drain()
        writer.close()

    return handler


async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accept, then never answer (until the test ends)."""
    try:
        await asyncio.sleep(60)
    finally:
        writer.close()


async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read the request, then abort with an RST (SO_LINGER 0)."""
    await _read_request(reader)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    writer.write(b"SSH-2.0-OpenSSH_9.2\r\nthis is not http\r\n\r\n")
    await writer.drain()
    writer.close()


def json_feed_handler(get_body: Callable[[], Any]) -> Handler:
    """Serve whatever ``get_body()`` returns: bytes as is, "hang", or (status, bytes)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        body = get_body()
        if body == "hang":
            await hang(reader, writer)
            return
        status, payload = body if isinstance(body, tuple) else (200, body)
        head = f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
        head += f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
        writer.write(head.encode() + payload)
        await writer.drain()
        writer.close()

    return handler


class ServerThread:
    """An event loop on a thread of its own, serving test servers to sync tests.

    Sync tests create devices with the ORM first (Django refuses ORM calls inside an
    event loop), then run the collector on the main thread against these servers.
    """

    def __init__(self) -> None:
        import threading

        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self._servers: list[asyncio.Server] = []

    def serve(self, handler: Handler, host: str = "127.0.0.1") -> int:
        async def start() -> tuple[asyncio.Server, int]:
            return await start_server(handler, host)

        server, port = asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)
        self._servers.append(server)
        return port

    def close(self) -> None:
        async def stop() -> None:
            for server in self._servers:
                server.close()
            # Cancel handlers still hanging on purpose.
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()
