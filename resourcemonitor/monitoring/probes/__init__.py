"""Probes by check method (like healthchecks' ``TRANSPORTS``).

Feed devices are not probed: their status arrives with the feed (``collector.feeds``).
"""

from __future__ import annotations

from resourcemonitor.monitoring.probes.base import CheckTarget, Probe, ProbeResult, ProbeTarget
from resourcemonitor.monitoring.probes.http import HttpProbe
from resourcemonitor.monitoring.probes.icmp import IcmpProbe
from resourcemonitor.monitoring.probes.snmp import SnmpProbe
from resourcemonitor.monitoring.probes.tcp import TcpProbe

PROBES: dict[str, type[Probe]] = {
    TcpProbe.method: TcpProbe,
    HttpProbe.method: HttpProbe,
    IcmpProbe.method: IcmpProbe,
    SnmpProbe.method: SnmpProbe,
}

__all__ = [
    "PROBES",
    "CheckTarget",
    "HttpProbe",
    "IcmpProbe",
    "Probe",
    "ProbeResult",
    "ProbeTarget",
    "SnmpProbe",
    "TcpProbe",
]
