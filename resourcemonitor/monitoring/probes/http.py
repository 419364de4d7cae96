"""HTTP(S) GET: the expected status, and optionally a substring of the body.

One ``aiohttp.ClientSession`` for the whole process, with ``force_close=True``: every
check opens a fresh connection. That is deliberate, not an oversight:

- a health check should see what a new client sees (connect, TLS handshake, answer);
  a pooled keep-alive connection hides a listener that stopped accepting;
- thousands of devices with idle keep-alive sockets would hold thousands of file
  descriptors (``ulimit -n`` is finite) for a connection reused once per interval;
- a device that rebooted leaves a dead pooled socket behind, and the next check would
  fail with a spurious ``reset``.

Plain ``http://`` checks without a body match skip aiohttp entirely: ``probes.fasthttp``
sends one pre-built request on a bare asyncio Protocol (about 4x less CPU per check).

The cost is a handshake per check (about 1.7 ms of CPU for TLS), which the targets allow.
Redirects are not followed: the check is about the endpoint itself, and "expected 200,
got 301" says more than the status of whatever the redirect pointed at.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
from yarl import URL

from resourcemonitor import __version__
from resourcemonitor.monitoring.probes import errors, fasthttp
from resourcemonitor.monitoring.probes.base import CheckTarget, Probe, ProbeResult

MAX_BODY_BYTES = 64 * 1024


def build_url(target: CheckTarget) -> URL:
    """``http(s)://address:port/path``; the port defaults to 80 or 443."""
    scheme = "https" if target.tls else "http"
    port = target.port or (443 if target.tls else 80)
    path, _, query = (target.path or "/").partition("?")
    if not path.startswith("/"):
        path = "/" + path
    return URL.build(scheme=scheme, host=target.address, port=port, path=path, query_string=query)


async def read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """Up to ``limit`` bytes of the body: ``content.read(n)`` may return fewer than n."""
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await response.content.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def classify_client_error(exc: BaseException, *, timeout: float) -> ProbeResult:
    """aiohttp's exceptions → our codes. Most wrap an OSError that says more."""
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return ProbeResult.failure(errors.DNS)
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return ProbeResult.from_exception(exc.certificate_error, timeout=timeout)
    if isinstance(exc, aiohttp.ClientSSLError):
        return ProbeResult.from_exception(exc.os_error, timeout=timeout)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return ProbeResult.from_exception(exc.os_error, timeout=timeout)
    if isinstance(exc, aiohttp.ServerTimeoutError | asyncio.TimeoutError):
        return ProbeResult.failure(errors.TIMEOUT, timeout=timeout)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        # The peer closed the connection (FIN) without a complete answer.
        return ProbeResult.failure(
            errors.INVALID_HTTP, detail="connection closed without an answer"
        )
    if isinstance(exc, aiohttp.ClientResponseError | aiohttp.ClientPayloadError):
        message = getattr(exc, "message", "") or errors.exception_detail(exc)
        return ProbeResult.failure(errors.INVALID_HTTP, detail=" ".join(str(message).split()))
    if isinstance(exc, aiohttp.ClientOSError):
        return ProbeResult.from_exception(exc, timeout=timeout)
    if isinstance(exc, aiohttp.InvalidURL | ValueError):
        return ProbeResult.failure(errors.ERROR, detail=f"invalid URL: {exc}")
    return ProbeResult.from_exception(exc, timeout=timeout)


class HttpProbe(Probe):
    method = "http"

    def __init__(self, *, concurrency: int = 100) -> None:
        super().__init__(concurrency=concurrency)
        self.session: aiohttp.ClientSession | None = None
        self.user_agent = f"resourcemonitor/{__version__}"

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self.concurrency, force_close=True, ttl_dns_cache=60)
        self.session = aiohttp.ClientSession(
            connector=connector,
            # Health endpoints must not be able to make the checks stateful.
            cookie_jar=aiohttp.DummyCookieJar(),
            # The collector's hard timeout bounds every check; no second clock here.
            timeout=aiohttp.ClientTimeout(total=None),
            headers={"User-Agent": self.user_agent},
        )

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    async def check(self, target: CheckTarget) -> ProbeResult:
        if fasthttp.handles(target):
            # Plain health checks: a bare Protocol, ~4x cheaper than aiohttp (fasthttp).
            return await fasthttp.check_plain(target, self.user_agent)
        if self.session is None:
            await self.start()
        assert self.session is not None
        started = time.perf_counter()
        try:
            url = build_url(target)
            async with self.session.get(url, allow_redirects=False) as response:
                body = b""
                if target.body_match and response.status == target.expect_status:
                    body = await read_capped(response, MAX_BODY_BYTES)
                latency_ms = (time.perf_counter() - started) * 1000.0
                status = response.status
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
            return classify_client_error(exc, timeout=target.timeout_s)
        if status != target.expect_status:
            return ProbeResult.failure(errors.http_status_code(status), latency_ms=latency_ms)
        if target.body_match and target.body_match.encode() not in body:
            return ProbeResult.failure(
                errors.BODY_MISMATCH, match=target.body_match, latency_ms=latency_ms
            )
        return ProbeResult.success(latency_ms)
