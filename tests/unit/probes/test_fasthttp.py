"""The minimal HTTP/1.1 health probe (probes.fasthttp) against real loopback servers."""

from __future__ import annotations

import asyncio
import contextlib
import functools

import pytest

from resourcemonitor.monitoring.probes import HttpProbe, ProbeTarget, errors, fasthttp
from tests.unit.monitoring.helpers import (
    _read_request,
    closed_port,
    garbage,
    hang,
    http_answer,
    reset,
    start_server,
)

Target = functools.partial(ProbeTarget, port=80, path="/health", timeout_s=2.0)


def test_request_is_one_get_with_host_and_close() -> None:
    request = fasthttp.build_request(Target(port=8080, path="status?x=1"), "ua/1")
    assert request == (
        b"GET /status?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: ua/1\r\n"
        b"Accept: */*\r\nConnection: close\r\n\r\n"
    )
    assert b"Host: 127.0.0.1\r\n" in fasthttp.build_request(Target(port=None), "ua")
    assert b"Host: [::1]:81\r\n" in fasthttp.build_request(Target(address="::1", port=81), "ua")


def test_only_plain_checks_with_a_simple_path_take_the_fast_path() -> None:
    assert fasthttp.handles(Target())
    assert fasthttp.handles(Target(path="status?verbose=1&x=%20"))
    assert not fasthttp.handles(Target(tls=True))
    assert not fasthttp.handles(Target(body_match="ok"))
    for path in ("/a b", "/h\r\nX-Injected: 1", "/santé"):
        assert not fasthttp.handles(Target(path=path))


def test_parse_head() -> None:
    assert fasthttp.parse_head(b"HTTP/1.1 204 No Content\r\nContent-Length: 0") == (204, 0)
    assert fasthttp.parse_head(b"HTTP/1.0 200 OK\r\nX: y") == (200, None)
    for bad in (b"SSH-2.0-OpenSSH", b"HTTP/1.1 abc OK", b"HTTP/2 200", b"HTTP/1.1 999 X", b""):
        with pytest.raises(ValueError):
            fasthttp.parse_head(bad)


async def check(handler, **target) -> fasthttp.ProbeResult:
    server, port = await start_server(handler)
    async with server:
        return await fasthttp.check_plain(Target(port=port, **target), "test")


async def test_200_is_ok_with_a_latency() -> None:
    result = await check(http_answer(200, b"ok"))
    assert result.ok and result.error is None
    assert result.latency_ms is not None and 0 < result.latency_ms < 2000


async def test_status_other_than_expected_is_http_code() -> None:
    result = await check(http_answer(503, b"busy"))
    assert (result.ok, result.error, result.text) == (False, "http_503", "HTTP 503")
    assert (await check(http_answer(401), expect_status=401)).ok


async def test_head_split_over_packets_and_no_length_until_close() -> None:
    async def slow(reader, writer) -> None:
        await _read_request(reader)
        for part in (b"HTTP/1.1 20", b"0 OK\r\nServer: x\r", b"\n\r\nbody without length"):
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(0.02)
        writer.close()

    assert (await check(slow)).ok


async def test_failures_match_the_shared_vocabulary() -> None:
    assert (await check(garbage)).error == errors.INVALID_HTTP
    assert (await check(reset)).error == errors.RESET

    async def close_at_once(reader, writer) -> None:
        await _read_request(reader)
        writer.close()

    early = await check(close_at_once)
    assert (early.error, early.text) == (
        errors.INVALID_HTTP,
        "invalid HTTP response: connection closed without an answer",
    )
    refused = await fasthttp.check_plain(Target(port=closed_port()), "test")
    assert (refused.error, refused.text) == ("refused", "connection refused")


async def test_a_huge_head_is_invalid_not_buffered_forever() -> None:
    async def endless(reader, writer) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n" + b"X: " + b"a" * 40_000)
        await writer.drain()
        await asyncio.sleep(1)
        writer.close()

    result = await check(endless)
    assert (result.error, result.text) == (
        errors.INVALID_HTTP,
        "invalid HTTP response: response head too large",
    )


async def test_we_close_with_fin_after_the_declared_body() -> None:
    """The device must see a normal close (EOF), never a reset, on every check."""
    seen: list[bytes | str] = []

    async def answer_then_watch(reader, writer) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")  # keeps it open
        await writer.drain()
        try:
            seen.append(await asyncio.wait_for(reader.read(100), 2))
        except ConnectionResetError:
            seen.append("reset")
        writer.close()

    server, port = await start_server(answer_then_watch)
    async with server:
        assert (await fasthttp.check_plain(Target(port=port), "t")).ok
        for _ in range(100):
            if seen:
                break
            await asyncio.sleep(0.02)
    assert seen == [b""]


async def test_cancelled_by_the_hard_timeout_leaves_no_connection() -> None:
    closed = asyncio.Event()

    async def hang_and_watch(reader, writer) -> None:
        with contextlib.suppress(ConnectionError):
            await reader.read()  # returns (or raises) at the client's close or abort
        closed.set()
        writer.close()

    server, port = await start_server(hang_and_watch)
    async with server:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await fasthttp.check_plain(Target(port=port), "t")
        await asyncio.wait_for(closed.wait(), 2)


async def test_http_probe_uses_the_fast_path_only_for_plain_checks() -> None:
    """Same answers from both paths: the fast one (plain) and aiohttp (a body match)."""
    probe = HttpProbe()
    plain = await start_server(http_answer(200))
    async with plain[0]:
        assert (await probe.check(Target(port=plain[1]))).ok
    assert probe.session is None  # the plain check never opened aiohttp's session
    server, port = await start_server(http_answer(503, b"maintenance"))
    try:
        async with server:
            fast = await probe.check(Target(port=port))
            rich = await probe.check(Target(port=port, body_match="ok"))
            hung_server, hung_port = await start_server(hang)
            async with hung_server:
                with pytest.raises(TimeoutError):
                    async with asyncio.timeout(0.2):
                        await probe.check(Target(port=hung_port))
    finally:
        await probe.close()
    assert (fast.error, fast.text) == (rich.error, rich.text) == ("http_503", "HTTP 503")
