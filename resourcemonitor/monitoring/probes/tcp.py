"""TCP connect: the device answers if the three-way handshake completes."""

from __future__ import annotations

import asyncio
import time

from resourcemonitor.monitoring.probes import errors
from resourcemonitor.monitoring.probes.base import CheckTarget, Probe, ProbeResult


class _Discard(asyncio.Protocol):
    """We only want the handshake: a bare Protocol is far cheaper than StreamReader/Writer."""


class TcpProbe(Probe):
    method = "tcp"

    async def check(self, target: CheckTarget) -> ProbeResult:
        if not target.port:
            return ProbeResult.failure(errors.ERROR, detail="a TCP check needs a port")
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            transport, _ = await loop.create_connection(_Discard, target.address, target.port)
        except OSError as exc:
            return ProbeResult.from_exception(exc, timeout=target.timeout_s)
        latency_ms = (time.perf_counter() - started) * 1000.0
        # A normal close (FIN), not abort(): an RST would show up as an error in the
        # device's own logs on every check.
        transport.close()
        return ProbeResult.success(latency_ms)
