"""The probe contract: a tiny base class, a small result, a target description.

Like healthchecks' ``transports.py``: each probe is a class with one job, registered by
name in ``PROBES``. The collector creates one instance of each per process (so the HTTP
probe can share one connection pool), calls ``start()``, then ``check(target)`` many
times concurrently, and ``close()`` at the end. The collector runs every ``check`` as
one Task and cancels it at its hard timeout (``collector.runner``); a probe must let that
cancellation through (cleaning up on the way) and may use a timeout internally but never
rely on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol

from resourcemonitor.monitoring.probes import errors


class CheckTarget(Protocol):
    """What a probe reads from a device (``collector.inventory.DeviceConfig`` has it)."""

    @property
    def address(self) -> str: ...
    @property
    def port(self) -> int | None: ...
    @property
    def path(self) -> str: ...
    @property
    def tls(self) -> bool: ...
    @property
    def expect_status(self) -> int: ...
    @property
    def body_match(self) -> str: ...
    @property
    def timeout_s(self) -> float: ...


@dataclass(frozen=True, slots=True)
class ProbeTarget:
    """A bare ``CheckTarget`` for a probe used on its own (a one-off check, a benchmark,
    a test); the collector passes its ``DeviceConfig`` instead."""

    address: str = "127.0.0.1"
    port: int | None = None
    path: str = ""
    tls: bool = False
    expect_status: int = 200
    body_match: str = ""
    timeout_s: float = 1.0


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One check's outcome: ok, how long it took, and if not ok, why (code + words)."""

    ok: bool
    latency_ms: float | None = None
    error: str | None = None
    text: str = ""

    @classmethod
    def success(cls, latency_ms: float) -> ProbeResult:
        return cls(True, latency_ms)

    @classmethod
    def failure(
        cls,
        code: str,
        *,
        timeout: float | None = None,
        detail: str = "",
        match: str = "",
        latency_ms: float | None = None,
    ) -> ProbeResult:
        text = errors.describe(code, timeout=timeout, detail=detail, match=match)
        return cls(False, latency_ms, code, text)

    @classmethod
    def from_exception(cls, exc: BaseException, *, timeout: float) -> ProbeResult:
        code, detail = errors.classify_exception(exc)
        return cls.failure(code, timeout=timeout, detail=detail)


class Probe:
    """Base class. Subclasses set ``method`` and implement ``check``."""

    method: ClassVar[str] = ""

    def __init__(self, *, concurrency: int = 100) -> None:
        self.concurrency = concurrency

    async def start(self) -> None:
        """Open shared resources (a connection pool). Called once, inside the loop."""

    async def close(self) -> None:
        """Release what ``start`` opened."""

    async def check(self, target: CheckTarget) -> ProbeResult:
        raise NotImplementedError
