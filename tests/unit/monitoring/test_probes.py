"""Each probe against real local sockets: success, and every way a device can fail."""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import socket
import ssl
import subprocess
from pathlib import Path

import pytest

from resourcemonitor.monitoring.probes import (
    PROBES,
    HttpProbe,
    IcmpProbe,
    ProbeResult,
    ProbeTarget,
    TcpProbe,
)
from resourcemonitor.monitoring.probes import errors as codes
from resourcemonitor.monitoring.probes.http import build_url, classify_client_error
from tests.unit.monitoring.helpers import (
    closed_port,
    garbage,
    hang,
    http_answer,
    reset,
    start_server,
)

pytestmark = pytest.mark.timeout(30)


# The simulator's health check, with a short timeout: these servers answer at once.
Target = functools.partial(ProbeTarget, path="/health", timeout_s=0.5)


async def http_check(target: Target) -> ProbeResult:
    probe = HttpProbe(concurrency=4)
    await probe.start()
    try:
        # The collector's hard timeout, as the runner applies it.
        async with asyncio.timeout(target.timeout_s):
            return await probe.check(target)
    except TimeoutError:
        return ProbeResult.failure(codes.TIMEOUT, timeout=target.timeout_s)
    finally:
        await probe.close()


def test_registry_has_the_probes() -> None:
    assert set(PROBES) >= {"tcp", "http", "icmp"}
    assert PROBES["http"] is HttpProbe


def test_error_texts_are_defined_once() -> None:
    assert codes.describe(codes.REFUSED) == "connection refused"
    assert codes.describe(codes.TIMEOUT, timeout=2.0) == "timeout after 2 s"
    assert codes.describe(codes.TIMEOUT, timeout=0.5) == "timeout after 0.5 s"
    assert codes.describe("http_503") == "HTTP 503"
    assert codes.describe(codes.BODY_MISMATCH, match="x") == "body does not contain 'x'"
    assert codes.describe(codes.FEED_DOWN) == "reported down by feed"
    assert codes.describe(codes.DNS) == "DNS lookup failed"
    assert codes.describe(codes.RESET) == "connection reset"
    assert codes.describe(codes.TLS, detail="bad cert").startswith("TLS error: ")
    assert codes.describe(codes.ERROR, detail="boom") == "boom"
    assert "setcap" in codes.describe(codes.ICMP_PERMISSION)


def test_os_errors_map_to_codes() -> None:
    assert codes.classify_exception(ConnectionRefusedError(111, "x"))[0] == codes.REFUSED
    assert codes.classify_exception(TimeoutError())[0] == codes.TIMEOUT
    assert codes.classify_exception(ConnectionResetError(104, "x"))[0] == codes.RESET
    assert codes.classify_exception(OSError(113, "No route to host"))[0] == codes.UNREACHABLE
    assert codes.classify_exception(socket.gaierror(-2, "Name unknown"))[0] == codes.DNS
    assert codes.classify_exception(RuntimeError("odd"))[0] == codes.ERROR


# -- TCP --------------------------------------------------------------------------------


async def test_tcp_connect_succeeds_with_a_latency() -> None:
    server, port = await start_server(hang)
    async with server:
        result = await TcpProbe().check(Target(port=port))
    assert result.ok and result.error is None
    assert result.latency_ms is not None and 0 <= result.latency_ms < 500


async def test_tcp_closed_port_is_refused() -> None:
    result = await TcpProbe().check(Target(port=closed_port()))
    assert (result.ok, result.error, result.text) == (False, "refused", "connection refused")


async def test_tcp_without_a_port_is_an_error_not_a_crash() -> None:
    result = await TcpProbe().check(Target(port=None))
    assert result.error == codes.ERROR


async def test_tcp_unresolvable_name_is_dns() -> None:
    result = await TcpProbe().check(Target(address="no-such-host.invalid", port=80))
    assert result.error == codes.DNS and result.text == "DNS lookup failed"


# -- HTTP -------------------------------------------------------------------------------


async def test_http_200_with_matching_body_is_ok() -> None:
    server, port = await start_server(http_answer(200, b"status: all good"))
    async with server:
        result = await http_check(Target(port=port, body_match="all good"))
    assert result.ok, result


async def test_http_refused() -> None:
    result = await http_check(Target(port=closed_port()))
    assert result.error == codes.REFUSED


async def test_http_timeout_when_the_server_never_answers() -> None:
    server, port = await start_server(hang)
    async with server:
        result = await http_check(Target(port=port, timeout_s=0.3))
    assert (result.error, result.text) == ("timeout", "timeout after 0.3 s")


async def test_http_reset() -> None:
    server, port = await start_server(reset)
    async with server:
        result = await http_check(Target(port=port))
    assert (result.error, result.text) == ("reset", "connection reset")


async def test_http_garbage_is_invalid_http() -> None:
    server, port = await start_server(garbage)
    async with server:
        result = await http_check(Target(port=port))
    assert result.error == codes.INVALID_HTTP
    assert result.text.startswith("invalid HTTP response")


async def test_http_503() -> None:
    server, port = await start_server(http_answer(503, b"maintenance", "Service Unavailable"))
    async with server:
        result = await http_check(Target(port=port))
    assert (result.ok, result.error, result.text) == (False, "http_503", "HTTP 503")


async def test_http_expected_status_other_than_200() -> None:
    server, port = await start_server(http_answer(204))
    async with server:
        assert (await http_check(Target(port=port, expect_status=204))).ok
        assert (await http_check(Target(port=port))).error == "http_204"


async def test_http_body_mismatch() -> None:
    server, port = await start_server(http_answer(200, b"degraded"))
    async with server:
        result = await http_check(Target(port=port, body_match="all good"))
    assert result.error == codes.BODY_MISMATCH
    assert result.text == "body does not contain 'all good'"


async def test_http_body_match_reads_at_most_64_kib() -> None:
    body = b"x" * (70 * 1024) + b"needle"
    server, port = await start_server(http_answer(200, body))
    async with server:
        result = await http_check(Target(port=port, body_match="needle"))
    assert result.error == codes.BODY_MISMATCH


@pytest.fixture
def self_signed(tmp_path: Path) -> ssl.SSLContext:
    """A server TLS context with a fresh self-signed certificate (made by openssl)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


async def test_https_with_an_untrusted_certificate_is_a_tls_error(self_signed) -> None:
    server = await asyncio.start_server(http_answer(200, b"ok"), "127.0.0.1", 0, ssl=self_signed)
    port = server.sockets[0].getsockname()[1]
    async with server:
        result = await http_check(Target(port=port, tls=True, timeout_s=2.0))
    assert result.error == codes.TLS, result
    assert result.text.startswith("TLS error: ") and "certificate" in result.text


async def test_https_against_a_plain_http_server_is_a_tls_error() -> None:
    async def talks_first(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server, port = await start_server(talks_first)
    async with server:
        result = await http_check(Target(port=port, tls=True))
    assert result.error == codes.TLS, result


def test_http_url_defaults_and_ipv6() -> None:
    assert str(build_url(Target(port=None))) == "http://127.0.0.1/health"
    assert str(build_url(Target(port=None, tls=True))) == "https://127.0.0.1/health"
    assert (
        str(build_url(Target(port=8080, path="status?x=1"))) == "http://127.0.0.1:8080/status?x=1"
    )
    assert str(build_url(Target(address="::1", port=81, path="/"))) == "http://[::1]:81/"


def test_http_invalid_url_is_an_error_result() -> None:
    result = classify_client_error(ValueError("bad host"), timeout=1.0)
    assert result.error == codes.ERROR and "invalid URL" in result.text


# -- ICMP -------------------------------------------------------------------------------


@pytest.mark.skipif(os.geteuid() != 0, reason="raw ICMP sockets need root here")
async def test_icmp_echo_on_loopback() -> None:
    probe = IcmpProbe()
    try:
        result = await probe.check(Target(address="127.0.0.1", timeout_s=1.0))
    finally:
        await probe.close()
    assert result.ok and result.latency_ms is not None


async def test_icmp_unresolvable_name_is_dns() -> None:
    result = await IcmpProbe().check(Target(address="no-such-host.invalid", timeout_s=1.0))
    assert result.error in {codes.DNS, codes.ICMP_PERMISSION}


# The shared socket, id/sequence matching and the permission fallback: tests/unit/probes/test_icmp.py
