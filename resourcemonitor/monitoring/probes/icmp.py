"""ICMP echo on ONE socket shared by every ping; replies matched by (identifier, sequence).

Why one socket: a raw ICMP socket receives a copy of every ICMP packet the host gets, so
one socket per ping (icmplib's way) makes N sockets each parse N replies: measured at
3-4k pings per CPU-second, and slower as concurrency grows. One socket, with the kernel
filtering out everything but echo replies and errors (``ICMP_FILTER``), does one
``sendto`` and one ``recvfrom`` per ping; the reply is matched to its ping by the echo's
identifier and sequence number (a 32-bit counter split in two) and by its source address.

Privileges. A raw socket needs root or ``CAP_NET_RAW``. For another user, either give
the interpreter the capability::

    sudo setcap cap_net_raw+ep "$(readlink -f .venv/bin/python)"

or allow unprivileged ICMP ("ping") sockets for the user's group::

    sudo sysctl -w net.ipv4.ping_group_range="0 2147483647"

With the sysctl (and no capability) the probe falls back to one shared unprivileged
``SOCK_DGRAM`` ICMP socket: the kernel then picks the identifier and delivers only our
own replies, so replies are matched by sequence number alone, and ICMP errors
(unreachable) are not reported (the check times out instead). With neither, every ICMP
check fails with ``icmp_permission`` and the collector goes on with its other checks.
icmplib is not used any more: its sockets are per ping, and both paths above are a few
lines on the same shared socket.

The probe has no clock of its own: the collector's hard timeout cancels a check whose
reply never came (``collector.runner``), which also forgets its pending entry.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import os
import socket
import struct
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from resourcemonitor.monitoring.probes import errors
from resourcemonitor.monitoring.probes.base import CheckTarget, Probe, ProbeResult

# Not in Python's socket module: <linux/icmp.h> ICMP_FILTER at level SOL_RAW, and
# <netinet/icmp6.h> ICMP6_FILTER at level IPPROTO_ICMPV6. A set bit blocks that type.
SOL_RAW = 255
ICMP_FILTER = 1
ICMP6_FILTER = 1

ECHO_REQUEST_V4, ECHO_REPLY_V4 = 8, 0
UNREACHABLE_V4, TIME_EXCEEDED_V4 = 3, 11
ECHO_REQUEST_V6, ECHO_REPLY_V6 = 128, 129
UNREACHABLE_V6, TIME_EXCEEDED_V6 = 1, 3

# A short payload: enough to look like a ping in a capture, cheap to checksum.
PAYLOAD = b"resmon\x00\x00"
_PAYLOAD_SUM = sum(struct.unpack("!4H", PAYLOAD))
# Replies read per wake-up at most, so one busy socket cannot starve the loop.
READ_BATCH = 512
RECEIVE_BUFFER = 4 * 1024 * 1024
# Resolved literals are cached (parsing an address costs more than sending the ping).
ADDRESS_CACHE_MAX = 200_000


class IcmpPermissionError(PermissionError):
    """Neither a raw nor an unprivileged ICMP socket may be opened by this process."""


@dataclass(slots=True)
class _Pending:
    address: str
    sent: float
    future: asyncio.Future[ProbeResult]


def _checksum_v4(ident: int, seq: int) -> int:
    """The echo request's checksum: the ones' complement sum is linear, so the fixed
    payload's part is computed once and only the identifier and sequence are added."""
    total = (ECHO_REQUEST_V4 << 8) + ident + seq + _PAYLOAD_SUM
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def open_socket(family: int, kind: int, proto: int) -> socket.socket:
    """``socket.socket``, named here so that tests can refuse it as the OS would."""
    return socket.socket(family, kind, proto)


def _strip_scope(address: str) -> str:
    return address.partition("%")[0]


class IcmpSocket:
    """One ICMP socket for one address family, with every ping in flight on it."""

    def __init__(self, loop: asyncio.AbstractEventLoop, family: socket.AddressFamily) -> None:
        self.loop = loop
        self.family = family
        self.v6 = family == socket.AF_INET6
        self.sock, self.raw = self._open()
        self.pending: dict[int, _Pending] = {}
        # The identifier's start is random, so two collectors on one host (and the
        # host's own ping) rarely share (id, seq) pairs; the source address check
        # catches the rest.
        self._counter = int.from_bytes(os.urandom(2), "big") << 16
        self._backlog: deque[tuple[bytes, tuple[Any, ...], int]] = deque()
        loop.add_reader(self.sock.fileno(), self._readable)

    def _open(self) -> tuple[socket.socket, bool]:
        proto = socket.IPPROTO_ICMPV6 if self.v6 else socket.IPPROTO_ICMP
        try:
            sock = open_socket(self.family, socket.SOCK_RAW, proto)
            raw = True
        except PermissionError:
            try:
                sock = open_socket(self.family, socket.SOCK_DGRAM, proto)
                raw = False
            except PermissionError as exc:
                raise IcmpPermissionError(str(exc)) from None
        sock.setblocking(False)
        for option in (getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF):
            if option is None:
                continue
            try:
                sock.setsockopt(socket.SOL_SOCKET, option, RECEIVE_BUFFER)
                break
            except OSError:
                continue  # SO_RCVBUFFORCE needs CAP_NET_ADMIN; the plain one is capped
        if raw:
            self._install_filter(sock)
        return sock, raw

    def _install_filter(self, sock: socket.socket) -> None:
        """Let the kernel drop every ICMP type we do not read (our own echo requests on
        loopback, other hosts' pings, redirects...): fewer wake-ups, less parsing."""
        try:
            if self.v6:
                words = [0xFFFFFFFF] * 8
                for kind in (ECHO_REPLY_V6, UNREACHABLE_V6, TIME_EXCEEDED_V6):
                    words[kind >> 5] &= ~(1 << (kind & 31)) & 0xFFFFFFFF
                sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, struct.pack("=8I", *words))
            else:
                keep = (1 << ECHO_REPLY_V4) | (1 << UNREACHABLE_V4) | (1 << TIME_EXCEEDED_V4)
                sock.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack("=I", ~keep & 0xFFFFFFFF))
        except OSError:
            pass  # an optimisation only: replies are filtered in Python as well

    def close(self) -> None:
        self.loop.remove_reader(self.sock.fileno())
        if self._backlog:
            self.loop.remove_writer(self.sock.fileno())
            self._backlog.clear()
        self.sock.close()
        for entry in self.pending.values():
            if not entry.future.done():
                entry.future.cancel()
        self.pending.clear()

    # -- sending -----------------------------------------------------------------------------

    def send(self, address: str, future: asyncio.Future[ProbeResult], scope_id: int = 0) -> int:
        """Send one echo request to ``address`` (an IPv6 link-local one through interface
        ``scope_id``); returns the key its reply will carry."""
        self._counter = counter = (self._counter + 1) & 0xFFFFFFFF
        ident, seq = counter >> 16, counter & 0xFFFF
        if self.v6:
            # The kernel computes ICMPv6 checksums itself.
            packet = struct.pack("!BBHHH", ECHO_REQUEST_V6, 0, 0, ident, seq) + PAYLOAD
        else:
            packet = (
                struct.pack("!BBHHH", ECHO_REQUEST_V4, 0, _checksum_v4(ident, seq), ident, seq)
                + PAYLOAD
            )
        # An unprivileged socket's identifier is the kernel's: match on sequence only.
        key = counter if self.raw else seq
        self.pending[key] = _Pending(address, time.perf_counter(), future)
        # A link-local IPv6 address means nothing without its interface: a host with
        # several refuses to guess (EINVAL), so the scope goes in the socket address.
        target = (address, 0, 0, scope_id) if self.v6 else (address, 0)
        if self._backlog:
            self._backlog.append((packet, target, key))
            return key
        try:
            self.sock.sendto(packet, target)
        except BlockingIOError:
            self._backlog.append((packet, target, key))
            self.loop.add_writer(self.sock.fileno(), self._writable)
        except OSError as exc:
            self._fail(key, exc)
        return key

    def _writable(self) -> None:
        backlog = self._backlog
        while backlog:
            packet, target, key = backlog[0]
            if key not in self.pending:  # cancelled while queued
                backlog.popleft()
                continue
            try:
                self.sock.sendto(packet, target)
            except BlockingIOError:
                return
            except OSError as exc:
                self._fail(key, exc)
            backlog.popleft()
        self.loop.remove_writer(self.sock.fileno())

    def _fail(self, key: int, exc: OSError) -> None:
        entry = self.pending.pop(key, None)
        if entry is not None and not entry.future.done():
            if exc.errno in (errno.EPERM, errno.EACCES):
                # A firewall rule (or a broadcast address) refused the packet.
                result = ProbeResult.failure(errors.ERROR, detail=errors.exception_detail(exc))
            else:
                result = ProbeResult.from_exception(exc, timeout=0.0)
            entry.future.set_result(result)

    # -- receiving ---------------------------------------------------------------------------

    def _readable(self) -> None:
        recvfrom = self.sock.recvfrom
        for _ in range(READ_BATCH):
            try:
                data, source = recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # e.g. a queued ICMP error on a DGRAM socket: nothing to match
            received = time.perf_counter()
            try:
                self._match(data, _strip_scope(source[0]), received)
            except (IndexError, struct.error):
                continue  # truncated or foreign packet

    def _match(self, data: bytes, source: str, received: float) -> None:
        # IPv4 raw sockets deliver the IP header; IPv6 and DGRAM sockets do not.
        offset = (data[0] & 0x0F) * 4 if (self.raw and not self.v6) else 0
        kind = data[offset]
        reply, unreachable, exceeded = (
            (ECHO_REPLY_V6, UNREACHABLE_V6, TIME_EXCEEDED_V6)
            if self.v6
            else (ECHO_REPLY_V4, UNREACHABLE_V4, TIME_EXCEEDED_V4)
        )
        if kind == reply:
            ident, seq = struct.unpack_from("!HH", data, offset + 4)
            key = (ident << 16 | seq) if self.raw else seq
            entry = self.pending.get(key)
            if entry is None or entry.address != source:
                return  # someone else's ping, or a late reply to a check already over
            del self.pending[key]
            if not entry.future.done():
                entry.future.set_result(ProbeResult.success((received - entry.sent) * 1000.0))
        elif kind in (unreachable, exceeded) and self.raw:
            # The error quotes our request: its IP header, then the echo's first 8 bytes.
            inner = offset + 8
            if self.v6:
                inner += 40
            else:
                inner += (data[inner] & 0x0F) * 4
            request, ident, seq = data[inner], *struct.unpack_from("!HH", data, inner + 4)
            if request != (ECHO_REQUEST_V6 if self.v6 else ECHO_REQUEST_V4):
                return
            entry = self.pending.pop(ident << 16 | seq, None)
            if entry is not None and not entry.future.done():
                entry.future.set_result(ProbeResult.failure(errors.UNREACHABLE))


class IcmpProbe(Probe):
    method = "icmp"

    def __init__(self, *, concurrency: int = 100) -> None:
        super().__init__(concurrency=concurrency)
        self._sockets: dict[socket.AddressFamily, IcmpSocket] = {}
        self._denied: set[socket.AddressFamily] = set()
        self._literals: dict[str, tuple[socket.AddressFamily, str, int] | None] = {}

    async def close(self) -> None:
        for sock in self._sockets.values():
            sock.close()
        self._sockets.clear()
        self._denied.clear()

    def _socket(self, family: socket.AddressFamily) -> IcmpSocket | None:
        """The shared socket of ``family``, opened on first use; None if not permitted."""
        sock = self._sockets.get(family)
        if sock is None:
            if family in self._denied:
                return None
            try:
                sock = IcmpSocket(asyncio.get_running_loop(), family)
            except IcmpPermissionError:
                # Remembered: a check a second must not retry socket() every time.
                self._denied.add(family)
                return None
            self._sockets[family] = sock
        return sock

    def _literal(self, address: str) -> tuple[socket.AddressFamily, str, int] | None:
        """(family, canonical text, scope id) for an IP literal; None for a name to resolve.

        An IPv6 zone (``fe80::1%eth0``, ``fe80::1%2``) becomes the interface's index;
        OSError for an interface this host does not have.
        """
        if address in self._literals:
            return self._literals[address]
        bare, _, zone = address.partition("%")
        try:
            ip = ipaddress.ip_address(bare)
        except ValueError:
            parsed = None
        else:
            family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
            scope = 0
            if zone and ip.version == 6:
                scope = int(zone) if zone.isdigit() else socket.if_nametoindex(zone)
            parsed = (family, str(ip), scope)
        if len(self._literals) >= ADDRESS_CACHE_MAX:
            self._literals.clear()
        self._literals[address] = parsed
        return parsed

    async def _resolve(self, address: str) -> tuple[socket.AddressFamily, str, int]:
        literal = self._literal(address)
        if literal is not None:
            return literal
        # Any socket type does for a lookup; ICMP's protocol number would not fit IPv6.
        infos = await asyncio.get_running_loop().getaddrinfo(address, None, type=socket.SOCK_DGRAM)
        family, *_, sockaddr = infos[0]
        scope = int(sockaddr[3]) if len(sockaddr) > 3 else 0  # IPv6: (host, port, flow, scope)
        return family, str(ipaddress.ip_address(_strip_scope(str(sockaddr[0])))), scope

    async def check(self, target: CheckTarget) -> ProbeResult:
        try:
            family, address, scope_id = await self._resolve(target.address)
        except socket.gaierror:
            return ProbeResult.failure(errors.DNS)
        except (OSError, IndexError, ValueError) as exc:
            return ProbeResult.from_exception(exc, timeout=target.timeout_s)
        sock = self._socket(family)
        if sock is None:
            return ProbeResult.failure(errors.ICMP_PERMISSION)
        future: asyncio.Future[ProbeResult] = sock.loop.create_future()
        key = sock.send(address, future, scope_id)
        try:
            return await future
        finally:
            # Cancelled by the collector's hard timeout: a late reply must find nothing.
            entry = sock.pending.get(key)
            if entry is not None and entry.future is future:
                del sock.pending[key]
