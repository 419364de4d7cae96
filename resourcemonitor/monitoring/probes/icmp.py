"""ICMP echo with icmplib's ``async_ping``.

Raw ICMP sockets need privileges. As root it just works. As another user, either give
the interpreter the capability::

    sudo setcap cap_net_raw+ep "$(readlink -f .venv/bin/python)"

or allow unprivileged ICMP sockets for the user's group (then ``privileged=False`` would
do; we ask for the raw socket because it answers on every 127.x.y.z)::

    sudo sysctl -w net.ipv4.ping_group_range="0 2147483647"

Without either, every ICMP check fails with ``icmp_permission`` and the collector goes
on with its other checks.

icmplib opens one socket per ping, which costs CPU and gets slower under concurrency
(every socket receives a copy of every echo reply); a shared raw socket matched by
id/sequence is the planned replacement when ICMP throughput matters.
"""

from __future__ import annotations

from icmplib import async_ping
from icmplib.exceptions import ICMPLibError, NameLookupError, SocketPermissionError

from resourcemonitor.monitoring.probes import errors
from resourcemonitor.monitoring.probes.base import CheckTarget, Probe, ProbeResult


class IcmpProbe(Probe):
    method = "icmp"

    async def check(self, target: CheckTarget) -> ProbeResult:
        try:
            host = await async_ping(
                target.address, count=1, timeout=target.timeout_s, privileged=True
            )
        except SocketPermissionError:
            return ProbeResult.failure(errors.ICMP_PERMISSION)
        except PermissionError:
            return ProbeResult.failure(errors.ICMP_PERMISSION)
        except NameLookupError:
            return ProbeResult.failure(errors.DNS)
        except ICMPLibError as exc:
            return ProbeResult.failure(errors.ERROR, detail=errors.exception_detail(exc))
        except OSError as exc:
            return ProbeResult.from_exception(exc, timeout=target.timeout_s)
        if not host.is_alive:
            # async_ping swallows ICMP errors (unreachable, TTL exceeded): no reply is
            # all we learn, and it took the whole timeout to learn it.
            return ProbeResult.failure(errors.TIMEOUT, timeout=target.timeout_s)
        return ProbeResult.success(float(host.avg_rtt))
