"""The device servers' HTTP request parsing (no sockets; those are in integration)."""

from __future__ import annotations

import pytest

from simulator.device_server import parse_head


def test_a_plain_health_check() -> None:
    request = parse_head(b"GET /health HTTP/1.1\r\nHost: 127.10.0.1:8080\r\nAccept: */*")

    assert request is not None
    assert (request.method, request.path, request.keep_alive, request.body_length) == (
        b"GET",
        b"/health",
        True,
        0,
    )


@pytest.mark.parametrize(
    ("head", "keep_alive"),
    [
        (b"GET /health HTTP/1.1", True),
        (b"GET /health HTTP/1.1\r\nConnection: close", False),
        (b"GET /health HTTP/1.1\r\nconnection: Keep-Alive, Upgrade", True),
        (b"GET /health HTTP/1.0", False),
        (b"GET /health HTTP/1.0\r\nConnection: keep-alive", True),
    ],
)
def test_keep_alive_follows_version_and_connection_header(head: bytes, keep_alive: bool) -> None:
    request = parse_head(head)

    assert request is not None
    assert request.keep_alive is keep_alive


def test_query_string_is_not_part_of_the_path() -> None:
    request = parse_head(b"HEAD /health?probe=1 HTTP/1.1")

    assert request is not None
    assert request.path == b"/health"
    assert request.method == b"HEAD"


def test_content_length_is_read() -> None:
    request = parse_head(b"POST /health HTTP/1.1\r\nContent-Length: 12")

    assert request is not None
    assert request.body_length == 12


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"GET /health",
        b"GET  /health HTTP/1.1",
        b"GET /health HTTP/2",
        b"GET /health SPDY/1.1",
        b"G3T /health HTTP/1.1",
        b"GET /health HTTP/1.1\r\nno colon here",
        b"GET /health HTTP/1.1\r\n Folded: header",
        b"GET /health HTTP/1.1\r\nContent-Length: -1",
        b"GET /health HTTP/1.1\r\nContent-Length: 99999999",
        b"GET /health HTTP/1.1\r\nTransfer-Encoding: chunked",
    ],
)
def test_malformed_requests_are_refused(head: bytes) -> None:
    assert parse_head(head) is None
