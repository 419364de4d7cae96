"""The SNMP probe against snmpsim: v2c, v3, reboots, interface rates, CPU, failures."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from resourcemonitor.monitoring.probes import PROBES
from resourcemonitor.monitoring.probes.snmp import SnmpProbe, SnmpResult
from tests.integration.snmp.conftest import V3_AUTH_KEY, V3_PRIV_KEY, V3_USER

pytestmark = pytest.mark.integration


@dataclass
class Target:
    port: int
    snmp_community: str = "router"
    snmp_version: str = "2c"
    snmp_v3_user: str = ""
    snmp_v3_auth_protocol: str = "sha"
    snmp_v3_auth_key: str = ""
    snmp_v3_priv_protocol: str = "aes"
    snmp_v3_priv_key: str = ""
    snmp_v3_context: str = ""
    id: int = 1
    address: str = "127.0.0.1"
    path: str = ""
    tls: bool = False
    expect_status: int = 0
    body_match: str = ""
    timeout_s: float = 2.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def checks(probe: SnmpProbe, *targets: Target) -> list:
    await probe.start()
    try:
        return [await probe.check(target) for target in targets]
    finally:
        await probe.close()


def test_the_probe_is_registered():
    assert PROBES["snmp"] is SnmpProbe


def test_v2c_reads_uptime_interfaces_and_cpu(snmp_agent):
    (result,) = asyncio.run(checks(SnmpProbe(), Target(snmp_agent.port)))
    assert isinstance(result, SnmpResult)
    assert result.ok and result.latency_ms is not None and result.latency_ms > 0
    assert result.metrics == {"uptime_s": 5000.0, "if_up": 1, "if_down": 1, "cpu_percent": 40.0}
    assert result.notes == ()


def test_octet_counters_become_rates_and_32_bit_wraps_are_unwrapped(snmp_agent):
    clock = Clock()
    probe = SnmpProbe(clock=clock)

    async def scenario():
        await probe.start()
        try:
            first = await probe.check(Target(snmp_agent.port, "router"))
            clock.now += 10.0
            second = await probe.check(Target(snmp_agent.port, "router-later"))
            return first, second
        finally:
            await probe.close()

    first, second = asyncio.run(scenario())
    assert "in_bps" not in first.metrics  # one reading is not a rate
    # Interface 1 (64-bit): +1,000 bytes each way. Interface 2 (32-bit only): in wrapped
    # from 4294967000 to 704 (+1,000), out +1,000. 2,000 bytes in 10 s = 1,600 bit/s.
    assert second.metrics["in_bps"] == pytest.approx(1600.0)
    assert second.metrics["out_bps"] == pytest.approx(1600.0)
    assert second.notes == ()


def test_a_lower_sysuptime_is_a_reboot(snmp_agent):
    results = asyncio.run(
        checks(
            SnmpProbe(),
            Target(snmp_agent.port, "router"),
            Target(snmp_agent.port, "router-rebooted"),
        )
    )
    assert results[0].notes == ()
    assert results[1].ok
    assert results[1].notes == ("rebooted: up for 12 s (was 5000 s at the previous check)",)
    assert "in_bps" not in results[1].metrics  # counters reset with the reboot


def test_an_agent_without_interfaces_or_cpu(snmp_agent):
    (result,) = asyncio.run(checks(SnmpProbe(), Target(snmp_agent.port, "bare")))
    assert result.ok
    assert result.metrics == {"uptime_s": 42.42}


def test_v3_with_authentication_and_privacy(snmp_agent):
    target = Target(
        snmp_agent.port,
        snmp_version="3",
        snmp_v3_user=V3_USER,
        snmp_v3_auth_key=V3_AUTH_KEY,
        snmp_v3_priv_key=V3_PRIV_KEY,
        snmp_v3_context="router",  # snmpsim picks the data file by context name in v3
    )
    (result,) = asyncio.run(checks(SnmpProbe(), target))
    assert result.ok, result.text
    assert result.metrics["uptime_s"] > 0


def test_v3_with_a_wrong_key_fails_with_a_reason(snmp_agent):
    target = Target(
        snmp_agent.port,
        snmp_version="3",
        snmp_v3_user=V3_USER,
        snmp_v3_auth_key="not-the-key",
        snmp_v3_context="router",
        snmp_v3_priv_key=V3_PRIV_KEY,
        timeout_s=0.5,
    )
    (result,) = asyncio.run(checks(SnmpProbe(), target))
    assert not result.ok
    assert result.error in {"error", "timeout"}
    assert result.text


def test_a_wrong_community_times_out(snmp_agent):
    # snmpsim, like most agents, does not answer an unknown community at all.
    (result,) = asyncio.run(checks(SnmpProbe(), Target(snmp_agent.port, "nope", timeout_s=0.5)))
    assert (result.ok, result.error, result.text) == (False, "timeout", "timeout after 0.5 s")


def test_nothing_listening_is_a_failure_not_a_crash():
    with __import__("socket").socket(2, 2) as sock:  # a bound UDP port that never answers
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        (result,) = asyncio.run(checks(SnmpProbe(), Target(port, timeout_s=0.3)))
    assert not result.ok
    assert result.error == "timeout"
