"""SNMP (v2c and v3) with pysnmp 7: the device is up when its agent answers.

One check is one GET of ``sysUpTime`` (the latency) and walks of the interface table and
the CPU load:

- ``sysUpTime`` lower than at the previous check means the device rebooted: the result
  carries a note, which the collector records as an ``Event`` (status unchanged). A
  32-bit TimeTicks wrap (after ~497 days) is not a reboot.
- ``ifOperStatus`` per interface: counted as ``if_up`` / ``if_down``.
- Octet counters (``ifHCInOctets``/``ifHCOutOctets``, or the 32-bit ``ifInOctets`` /
  ``ifOutOctets`` where the 64-bit ones are missing) become rates in bits per second
  between two checks, summed over interfaces. A counter that went backwards after a
  reboot gives no rate for that check; a 32-bit counter that wrapped is unwrapped.
- CPU: the average ``hrProcessorLoad`` (HOST-RESOURCES-MIB), else Cisco's
  ``cpmCPUTotal5minRev``; absent when the agent has neither.

The metrics ride on the result (``SnmpResult.metrics``); the collector stores them as
``DeviceMetric`` rows (``monitoring.metricstore``; ``GET /api/v1/devices/{id}/metrics``)
and /metrics exports the latest of each. Numeric OIDs only: no MIB is loaded or compiled
at run time. Previous values (for reboots and rates) live in memory per device.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    UdpTransportTarget,
    UsmUserData,
    get_cmd,
    usmAesCfb128Protocol,
    usmDESPrivProtocol,
    usmHMAC192SHA256AuthProtocol,
    usmHMACMD5AuthProtocol,
    usmHMACSHAAuthProtocol,
    usmNoAuthProtocol,
    usmNoPrivProtocol,
    walk_cmd,
)

from resourcemonitor.monitoring.probes import errors
from resourcemonitor.monitoring.probes.base import CheckTarget, Probe, ProbeResult

SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
IF_OPER_STATUS = "1.3.6.1.2.1.2.2.1.8"
IF_IN_OCTETS = "1.3.6.1.2.1.2.2.1.10"
IF_OUT_OCTETS = "1.3.6.1.2.1.2.2.1.16"
IF_HC_IN_OCTETS = "1.3.6.1.2.1.31.1.1.1.6"
IF_HC_OUT_OCTETS = "1.3.6.1.2.1.31.1.1.1.10"
HR_PROCESSOR_LOAD = "1.3.6.1.2.1.25.3.3.1.2"
CISCO_CPU_5MIN = "1.3.6.1.4.1.9.9.109.1.1.1.1.8"
DEFAULT_PORT = 161
# A walk stops here: a switch stack with thousands of interfaces costs one check too much.
MAX_ROWS = 512
TICKS_WRAP = 2**32
COUNTER32_WRAP = 2**32
# Within this much of the 32-bit limit, a smaller sysUpTime is a wrap, not a reboot.
WRAP_MARGIN_TICKS = 100 * 86400 * 10  # ten days of hundredths of a second

_AUTH = {
    "md5": usmHMACMD5AuthProtocol,
    "sha": usmHMACSHAAuthProtocol,
    "sha256": usmHMAC192SHA256AuthProtocol,
}
_PRIV = {"des": usmDESPrivProtocol, "aes": usmAesCfb128Protocol}


@dataclass(frozen=True, slots=True)
class SnmpResult(ProbeResult):
    """A ``ProbeResult`` plus what SNMP adds: metrics and notes (a reboot) for events."""

    metrics: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


@dataclass(slots=True)
class _Previous:
    uptime_ticks: int
    at: float
    octets_in: dict[str, tuple[int, bool]]  # interface index → (value, is 32-bit)
    octets_out: dict[str, tuple[int, bool]]


def credentials(target: CheckTarget) -> Any:
    """pysnmp's auth data for a target (v2c community, or a v3 user with its keys)."""
    version = getattr(target, "snmp_version", "2c")
    if version == "3":
        auth_key = getattr(target, "snmp_v3_auth_key", "") or None
        priv_key = getattr(target, "snmp_v3_priv_key", "") or None
        auth = _AUTH.get(getattr(target, "snmp_v3_auth_protocol", "sha"), usmHMACSHAAuthProtocol)
        priv = _PRIV.get(getattr(target, "snmp_v3_priv_protocol", "aes"), usmAesCfb128Protocol)
        return UsmUserData(
            getattr(target, "snmp_v3_user", ""),
            auth_key,
            priv_key,
            authProtocol=auth if auth_key else usmNoAuthProtocol,
            privProtocol=priv if priv_key else usmNoPrivProtocol,
        )
    return CommunityData(getattr(target, "snmp_community", "") or "public", mpModel=1)


def uptime_went_back(previous: int, current: int) -> bool:
    """A reboot, unless the 32-bit TimeTicks counter simply wrapped."""
    if current >= previous:
        return False
    return previous < TICKS_WRAP - WRAP_MARGIN_TICKS


def counter_delta(previous: int, current: int, *, is_32bit: bool) -> int | None:
    """Octets since the previous read; None when the counter was reset."""
    if current >= previous:
        return current - previous
    if is_32bit:
        return current + COUNTER32_WRAP - previous
    return None


class SnmpProbe(Probe):
    method: ClassVar[str] = "snmp"

    def __init__(
        self, *, concurrency: int = 100, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(concurrency=concurrency)
        self.clock = clock
        self.engine: SnmpEngine | None = None
        self.previous: dict[Any, _Previous] = {}

    async def start(self) -> None:
        self.engine = SnmpEngine()

    async def close(self) -> None:
        if self.engine is not None:
            self.engine.close_dispatcher()
            self.engine = None

    async def check(self, target: CheckTarget) -> ProbeResult:
        if self.engine is None:
            await self.start()
        assert self.engine is not None
        auth = credentials(target)
        context = ContextData(contextName=getattr(target, "snmp_v3_context", "") or "")
        try:
            transport = await UdpTransportTarget.create(
                (target.address, target.port or DEFAULT_PORT),
                timeout=max(0.1, target.timeout_s),
                retries=0,
            )
        except Exception as exc:  # a bad host name: pysnmp raises its own error types
            return ProbeResult.failure(errors.DNS, detail=errors.exception_detail(exc))
        started = time.perf_counter()
        indication, status, _, binds = await get_cmd(
            self.engine,
            auth,
            transport,
            context,
            ObjectType(ObjectIdentity(SYS_UPTIME)),
            lookupMib=False,
        )
        latency_ms = (time.perf_counter() - started) * 1000.0
        if indication:
            text = str(indication)
            if "timeout" in text.lower() or "no snmp response" in text.lower():
                return ProbeResult.failure(errors.TIMEOUT, timeout=target.timeout_s)
            return ProbeResult.failure(errors.ERROR, detail=f"SNMP: {text}")
        if status:
            return ProbeResult.failure(errors.ERROR, detail=f"SNMP: {status.prettyPrint()}")
        uptime = _number(binds[0][1]) if binds else None
        if uptime is None:
            return ProbeResult.failure(errors.ERROR, detail="SNMP: no sysUpTime")
        tables = {}
        for oid in (
            IF_OPER_STATUS,
            IF_HC_IN_OCTETS,
            IF_HC_OUT_OCTETS,
            IF_IN_OCTETS,
            IF_OUT_OCTETS,
            HR_PROCESSOR_LOAD,
        ):
            tables[oid] = await self._walk(auth, transport, context, oid)
        if not tables[HR_PROCESSOR_LOAD]:
            tables[CISCO_CPU_5MIN] = await self._walk(auth, transport, context, CISCO_CPU_5MIN)
        return self._result(target, latency_ms, uptime, tables)

    async def _walk(self, auth: Any, transport: Any, context: Any, oid: str) -> dict[str, int]:
        """One column: {index: value}; empty when the agent does not have it."""
        assert self.engine is not None
        rows: dict[str, int] = {}
        async for indication, status, _, binds in walk_cmd(
            self.engine,
            auth,
            transport,
            context,
            ObjectType(ObjectIdentity(oid)),
            lexicographicMode=False,
            lookupMib=False,
            maxRows=MAX_ROWS,
        ):
            if indication or status:
                break
            for name, value in binds:
                number = _number(value)
                if number is not None:
                    rows[str(name)[len(oid) + 1 :]] = number
        return rows

    def _result(
        self, target: CheckTarget, latency_ms: float, uptime: int, tables: dict[str, dict[str, int]]
    ) -> SnmpResult:
        key = getattr(target, "id", None) or (target.address, target.port)
        now = self.clock()
        metrics: dict[str, float] = {"uptime_s": uptime / 100.0}
        notes: list[str] = []
        statuses = tables[IF_OPER_STATUS]
        if statuses:
            metrics["if_up"] = sum(1 for v in statuses.values() if v == 1)
            metrics["if_down"] = sum(1 for v in statuses.values() if v == 2)
        octets_in = _octets(tables[IF_HC_IN_OCTETS], tables[IF_IN_OCTETS])
        octets_out = _octets(tables[IF_HC_OUT_OCTETS], tables[IF_OUT_OCTETS])
        cpu = tables[HR_PROCESSOR_LOAD] or tables.get(CISCO_CPU_5MIN, {})
        if cpu:
            metrics["cpu_percent"] = sum(cpu.values()) / len(cpu)
        previous = self.previous.get(key)
        if previous is not None:
            if uptime_went_back(previous.uptime_ticks, uptime):
                notes.append(
                    f"rebooted: up for {uptime / 100.0:.0f} s "
                    f"(was {previous.uptime_ticks / 100.0:.0f} s at the previous check)"
                )
            elif now > previous.at:
                elapsed = now - previous.at
                for name, current, before in (
                    ("in_bps", octets_in, previous.octets_in),
                    ("out_bps", octets_out, previous.octets_out),
                ):
                    rate = _rate(before, current, elapsed)
                    if rate is not None:
                        metrics[name] = rate
        self.previous[key] = _Previous(uptime, now, octets_in, octets_out)
        return SnmpResult(True, latency_ms, metrics=metrics, notes=tuple(notes))


def _number(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None  # noSuchObject, noSuchInstance, endOfMibView, strings


def _octets(hc: dict[str, int], legacy: dict[str, int]) -> dict[str, tuple[int, bool]]:
    """Per interface, the 64-bit counter where there is one, else the 32-bit one."""
    merged = {index: (value, True) for index, value in legacy.items()}
    merged.update({index: (value, False) for index, value in hc.items()})
    return merged


def _rate(
    before: dict[str, tuple[int, bool]], current: dict[str, tuple[int, bool]], elapsed: float
) -> float | None:
    total = 0
    seen = False
    for index, (value, is_32bit) in current.items():
        if index not in before:
            continue
        delta = counter_delta(before[index][0], value, is_32bit=is_32bit)
        if delta is None:
            continue
        total += delta
        seen = True
    return total * 8 / elapsed if seen else None
