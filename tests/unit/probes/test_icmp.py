"""The ICMP probe on its one shared socket, against real loopback echoes.

Linux answers echo on every 127.x.y.z without set-up, so these ping for real. Raw
sockets need root (or CAP_NET_RAW): without it the tests that send are skipped.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import shutil
import socket
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from resourcemonitor.monitoring.probes import IcmpProbe, ProbeResult, ProbeTarget, icmp
from resourcemonitor.monitoring.probes import errors as codes

pytestmark = pytest.mark.timeout(30)
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="raw ICMP sockets need root here")


async def ping(probe: IcmpProbe, address: str, timeout_s: float = 1.0) -> ProbeResult:
    # The collector's hard timeout, as the runner applies it (the probe has no clock).
    try:
        async with asyncio.timeout(timeout_s):
            return await probe.check(ProbeTarget(address=address, timeout_s=timeout_s))
    except TimeoutError:
        return ProbeResult.failure(codes.TIMEOUT, timeout=timeout_s)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@root_only
async def test_echo_on_any_loopback_address() -> None:
    probe = IcmpProbe()
    try:
        for address in ("127.0.0.1", "127.9.8.7", "localhost"):
            result = await ping(probe, address)
            assert result.ok, (address, result)
            assert result.latency_ms is not None and 0 <= result.latency_ms < 1000
    finally:
        await probe.close()


@root_only
async def test_many_pings_in_flight_share_one_socket() -> None:
    probe = IcmpProbe()
    addresses = [f"127.42.{i // 250}.{i % 250 + 1}" for i in range(600)]
    try:
        await ping(probe, "127.0.0.1")  # opens the socket
        before = open_fds()
        results = await asyncio.gather(*(ping(probe, a, 5.0) for a in addresses))
        assert open_fds() == before
        assert [r.ok for r in results] == [True] * len(addresses), {r.error for r in results}
        assert len(probe._sockets) == 1
        assert not next(iter(probe._sockets.values())).pending
    finally:
        await probe.close()


def has_ipv6_loopback() -> bool:
    path = Path("/proc/net/if_inet6")
    return socket.has_ipv6 and path.exists() and bool(path.read_text().strip())


@root_only
@pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 here")
async def test_ipv6_loopback() -> None:
    probe = IcmpProbe()
    try:
        result = await ping(probe, "::1")
        assert result.ok, result
    finally:
        await probe.close()


async def test_unresolvable_name_is_dns() -> None:
    result = await ping(IcmpProbe(), "no-such-host.invalid")
    assert result.error == codes.DNS
    assert result.text == "DNS lookup failed"


@root_only
async def test_a_check_cancelled_by_the_hard_timeout_forgets_its_ping() -> None:
    probe = IcmpProbe()
    try:
        await ping(probe, "127.0.0.1")
        shared = next(iter(probe._sockets.values()))
        task = asyncio.ensure_future(probe.check(ProbeTarget(address="127.0.0.2")))
        await asyncio.sleep(0)  # sent, waiting for the reply
        assert len(shared.pending) == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not shared.pending
        await asyncio.sleep(0.05)  # the late reply finds nothing and is dropped quietly
        assert (await ping(probe, "127.0.0.3")).ok
    finally:
        await probe.close()


def reply_v4(source: str, kind: int, ident: int, seq: int, quoted: bytes = b"") -> bytes:
    """An IPv4 packet as a raw socket delivers it: a 20-byte header, then the ICMP."""
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 0, 0, 0, 64, 1, 0, socket.inet_aton(source), bytes(4)
    )
    return header + struct.pack("!BBHHH", kind, 0, 0, ident, seq) + quoted


@root_only
async def test_replies_are_matched_by_id_sequence_and_source() -> None:
    probe = IcmpProbe()
    try:
        await ping(probe, "127.0.0.1")
        shared = next(iter(probe._sockets.values()))
        future: asyncio.Future[ProbeResult] = asyncio.get_running_loop().create_future()
        key = 0x12345678
        shared.pending[key] = icmp._Pending("127.0.0.5", 0.0, future)
        ident, seq = key >> 16, key & 0xFFFF
        # Another process's ping (other sequence), then the right pair from the wrong host.
        shared._match(reply_v4("127.0.0.5", 0, ident, seq + 1), "127.0.0.5", 1.0)
        shared._match(reply_v4("127.0.0.6", 0, ident, seq), "127.0.0.6", 1.0)
        assert not future.done()
        shared._match(reply_v4("127.0.0.5", 0, ident, seq), "127.0.0.5", 1.0)
        assert future.result().ok and future.result().latency_ms == 1000.0
        assert key not in shared.pending
    finally:
        await probe.close()


@root_only
async def test_destination_unreachable_quoting_our_echo_is_unreachable() -> None:
    probe = IcmpProbe()
    try:
        await ping(probe, "127.0.0.1")
        shared = next(iter(probe._sockets.values()))
        future: asyncio.Future[ProbeResult] = asyncio.get_running_loop().create_future()
        key = 0x0001_0002
        shared.pending[key] = icmp._Pending("10.9.9.9", 0.0, future)
        # The router's error quotes our request: its IP header and the echo's first bytes.
        quoted = reply_v4("127.0.0.1", 8, 1, 2)
        packet = reply_v4("10.0.0.1", 3, 0, 0, quoted)
        shared._match(packet, "10.0.0.1", 1.0)
        assert future.result().error == codes.UNREACHABLE
        assert future.result().text == "host unreachable"
    finally:
        await probe.close()


async def test_no_permission_is_a_result_and_is_not_retried_per_check(monkeypatch) -> None:
    # We cannot drop root inside a test: make socket() refuse the way it does for a
    # user without CAP_NET_RAW whose group is outside net.ipv4.ping_group_range.
    attempts: list[int] = []

    def refuse(family: int, kind: int, proto: int) -> socket.socket:
        attempts.append(kind)
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(icmp, "open_socket", refuse)
    probe = IcmpProbe()
    first = await ping(probe, "127.0.0.1")
    second = await ping(probe, "127.0.0.1")
    assert first.error == second.error == codes.ICMP_PERMISSION
    assert "setcap" in first.text and "ping_group_range" in first.text
    assert attempts == [socket.SOCK_RAW, socket.SOCK_DGRAM]


UNPRIVILEGED = textwrap.dedent(
    """
    import asyncio, socket, sys
    from resourcemonitor.monitoring.probes import icmp

    def no_raw(family, kind, proto):
        if kind == socket.SOCK_RAW:
            raise PermissionError(1, "Operation not permitted")
        return socket.socket(family, kind, proto)
    icmp.open_socket = no_raw

    class Target:
        address, port, path, tls = "127.0.0.1", None, "", False
        expect_status, body_match, timeout_s = 200, "", 1.0

    async def main():
        probe = icmp.IcmpProbe()
        results = []
        for address in ("127.0.0.1", "127.0.0.1", "127.0.0.1"):
            Target.address = address
            results.append(await asyncio.wait_for(probe.check(Target), 2))
        kinds = {s.raw for s in probe._sockets.values()}
        await probe.close()
        print([r.ok for r in results], kinds)

    asyncio.run(main())
    """
)


@root_only
def test_falls_back_to_an_unprivileged_ping_socket() -> None:
    # A private network namespace where ping sockets are allowed (the host's own
    # setting stays "1 0"), and raw sockets refused as for a user without CAP_NET_RAW.
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs unshare and ip")
    script = (
        "ip link set lo up && echo '0 2147483647' > /proc/sys/net/ipv4/ping_group_range"
        f' && exec {sys.executable} -c "$PROBE"'
    )
    env = {**os.environ, "PROBE": UNPRIVILEGED}
    try:
        done = subprocess.run(
            ["unshare", "-n", "sh", "-c", script],
            env=env,
            capture_output=True,
            text=True,
            timeout=20,
            cwd=Path(__file__).resolve().parents[3],
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"no private network namespace: {exc}")
    if done.returncode != 0 and "unshare" in done.stderr:
        pytest.skip(f"no private network namespace: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[True, True, True] {False}"


def own_link_local() -> tuple[str, str] | None:
    """(address, interface) of one of this host's IPv6 link-local addresses, if any."""
    try:
        lines = Path("/proc/net/if_inet6").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        hexaddr, _, _, scope, _, name = line.split()
        if scope == "20":  # link scope
            groups = ":".join(hexaddr[i : i + 4] for i in range(0, 32, 4))
            return str(ipaddress.ip_address(groups)), name
    return None


@root_only
@pytest.mark.skipif(own_link_local() is None, reason="no IPv6 link-local address here")
async def test_a_link_local_zone_reaches_the_socket_as_its_interface_index(monkeypatch) -> None:
    address, interface = own_link_local()  # type: ignore[misc]
    targets: list[tuple] = []

    class Recording:
        def __init__(self, sock: socket.socket) -> None:
            self._sock = sock

        def sendto(self, packet: bytes, target: tuple) -> int:
            targets.append(target)
            return self._sock.sendto(packet, target)

        def __getattr__(self, name: str):
            return getattr(self._sock, name)

    real = icmp.open_socket
    monkeypatch.setattr(icmp, "open_socket", lambda *args: Recording(real(*args)))
    probe = IcmpProbe()
    try:
        index = socket.if_nametoindex(interface)
        for zone in (interface, str(index)):
            result = await ping(probe, f"{address}%{zone}")
            assert result.ok, (zone, result)
            assert targets[-1] == (address, 0, 0, index)
        # An interface this host does not have: a clear failure, not an exception.
        result = await ping(probe, f"{address}%nosuch0")
        assert not result.ok and "interface" in result.text
    finally:
        await probe.close()
