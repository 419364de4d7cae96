"""What to check: the inventory as plain, immutable data for the asyncio side.

``load_inventory`` runs on the writer thread (it is ORM work). It reads every enabled
device with ``values_list`` (one query, no per-device queries), the parent links of all
devices (for ``unreachable``), the stored ``DeviceState`` of devices the collector does
not track yet (so a restart resumes failure counts and statuses) and the status of
ancestors that belong to another shard.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from django.utils import timezone

from resourcemonitor.inventory.models import CheckMethod, Device, Feed
from resourcemonitor.monitoring.models import DeviceState, Heartbeat
from resourcemonitor.monitoring.status import Status
from resourcemonitor.monitoring.storage import STATE_COLUMNS

T = TypeVar("T")
_IDS_PER_QUERY = 500
_SHARD_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True, slots=True)
class Shard:
    """Static sharding: shard K of N owns the devices with ``id % N == K - 1``.

    Feed devices go with their feed (``feed_id % N``), so one collector polls a feed
    and owns all of its devices.
    """

    index: int = 1
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Shard:
        match = _SHARD_RE.match(text)
        if not match:
            raise ValueError(f"--shard must look like K/N, e.g. 1/2 (got {text!r})")
        index, count = int(match.group(1)), int(match.group(2))
        if count < 1 or not 1 <= index <= count:
            raise ValueError(f"--shard K/N needs 1 <= K <= N (got {text!r})")
        return cls(index, count)

    def owns(self, key: int) -> bool:
        return key % self.count == self.index - 1

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


_INSTANCE_RE = re.compile(r"@([^:@]+):(\d+)$")
AUTO = "auto"


def _score(member: str, key: int) -> int:
    digest = hashlib.blake2b(f"{member}|{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _dead_here(instance: str) -> bool:
    """A collector of this host whose process is gone: dead now, not in a few seconds."""
    match = _INSTANCE_RE.search(instance)
    if not match or match.group(1) != socket.gethostname():
        return False
    try:
        os.kill(int(match.group(2)), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class Rendezvous:
    """Dynamic sharding: each key goes to the live collector with the highest hash score.

    Members are the collectors (``resmon collect`` without ``--shard``) whose heartbeat
    is younger than ``dead_beats`` heartbeat periods, plus this one. When one dies, only
    its keys move (rendezvous hashing), each to one survivor, which every survivor works
    out alone from the same heartbeats. ``index``/``count`` mirror ``Shard`` (this
    collector's rank among the members), so code written for ``Shard`` keeps working.
    """

    def __init__(self, me: str, *, heartbeat_s: float, dead_beats: float) -> None:
        self.me = me
        self.heartbeat_s = heartbeat_s
        self.dead_beats = dead_beats
        self.members: tuple[str, ...] = (me,)
        self._owned: dict[int, bool] = {}

    @property
    def index(self) -> int:
        return self.members.index(self.me) + 1

    @property
    def count(self) -> int:
        return len(self.members)

    def owns(self, key: int) -> bool:
        owned = self._owned.get(key)
        if owned is None:
            if len(self.members) == 1:
                owned = True
            else:
                owned = max(self.members, key=lambda m: _score(m, key)) == self.me
            self._owned[key] = owned
        return owned

    def set_members(self, members: Iterable[str]) -> bool:
        """Replace the member list; True when it changed."""
        new = tuple(sorted({*members, self.me}))
        if new == self.members:
            return False
        self.members = new
        self._owned = {}
        return True

    def refresh_members(self) -> bool:
        """Read the live members from the heartbeats (ORM: the writer thread). True: changed."""
        cutoff = timezone.now() - timedelta(seconds=self.heartbeat_s * self.dead_beats)
        live = [
            instance
            for instance in Heartbeat.objects.running()
            .filter(component="collector", last_seen_at__gte=cutoff, info__shard=AUTO)
            .values_list("instance", flat=True)
            if instance == self.me or not _dead_here(instance)
        ]
        return self.set_members(live)

    def __str__(self) -> str:
        return AUTO


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    """One device's check settings (what a probe and the state machine need)."""

    id: int
    name: str
    address: str
    method: str
    port: int | None
    path: str
    tls: bool
    expect_status: int
    body_match: str
    interval_s: float
    timeout_s: float
    fail_threshold: int
    recover_threshold: int
    latency_threshold_ms: float | None
    parent_id: int | None
    feed_id: int | None
    # SNMP options (issue 7), read by probes.snmp; last, with defaults, so older callers work.
    snmp_version: str = "2c"
    snmp_community: str = "public"
    snmp_v3_user: str = ""
    snmp_v3_auth_protocol: str = "sha"
    snmp_v3_auth_key: str = ""
    snmp_v3_priv_protocol: str = "aes"
    snmp_v3_priv_key: str = ""
    snmp_v3_context: str = ""

    @property
    def is_feed(self) -> bool:
        return self.method == CheckMethod.FEED


# The Device columns, in DeviceConfig's field order.
DEVICE_COLUMNS = (
    "id",
    "name",
    "address",
    "check_method",
    "check_port",
    "check_path",
    "check_tls",
    "check_expect_status",
    "check_body_match",
    "check_interval_s",
    "check_timeout_s",
    "fail_threshold",
    "recover_threshold",
    "latency_threshold_ms",
    "parent_id",
    "feed_id",
    "snmp_version",
    "snmp_community",
    "snmp_v3_user",
    "snmp_v3_auth_protocol",
    "snmp_v3_auth_key",
    "snmp_v3_priv_protocol",
    "snmp_v3_priv_key",
    "snmp_v3_context",
)


@dataclass(frozen=True, slots=True)
class FeedConfig:
    id: int
    url: str
    interval_s: float
    timeout_s: float


@dataclass
class InventorySnapshot:
    """The inventory at one moment, for the shard that asked."""

    devices: dict[int, DeviceConfig] = field(default_factory=dict)
    feeds: dict[int, FeedConfig] = field(default_factory=dict)
    parents: dict[int, int | None] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)
    # DeviceState.values() rows of devices the collector did not know when it asked.
    states: dict[int, dict[str, Any]] = field(default_factory=dict)
    # Status of ancestors owned by another shard (or disabled), for ``unreachable``.
    external_statuses: dict[int, str] = field(default_factory=dict)


def chunked(items: Iterable[T], size: int = _IDS_PER_QUERY) -> Iterator[list[T]]:
    """``__in`` lists small enough for every database's parameter limit."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def device_config(row: tuple[Any, ...]) -> DeviceConfig:
    return DeviceConfig(*row)


def device_belongs(config: DeviceConfig, shard: Shard | Rendezvous) -> bool:
    if config.is_feed:
        return config.feed_id is not None and shard.owns(config.feed_id)
    return shard.owns(config.id)


def load_states(ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """Stored states by device id; devices without a row get one (``unknown``) now.

    Creating the rows up front means every enabled device has a state the web can list.
    """
    wanted = list(ids)
    states: dict[int, dict[str, Any]] = {}
    for chunk in chunked(wanted):
        for row in DeviceState.objects.filter(device_id__in=chunk).values(*STATE_COLUMNS):
            states[row["device_id"]] = row
    missing = [device_id for device_id in wanted if device_id not in states]
    if missing:
        now = timezone.now()
        DeviceState.objects.bulk_create(
            [
                DeviceState(device_id=i, status=Status.UNKNOWN, since=now, changed_at=now)
                for i in missing
            ],
            ignore_conflicts=True,
            batch_size=_IDS_PER_QUERY,
        )
    return states


def load_inventory(
    *, shard: Shard | Rendezvous, known_ids: Collection[int] = ()
) -> InventorySnapshot:
    """Read the inventory for ``shard``. Runs on the writer thread."""
    if isinstance(shard, Rendezvous):
        shard.refresh_members()
    snapshot = InventorySnapshot()
    for row in Device.objects.filter(enabled=True).values_list(*DEVICE_COLUMNS):
        config = device_config(row)
        # Push devices (issue 7) report themselves (monitoring.ingest writes their state):
        # left out here, their stored status is read like another shard's (below).
        if device_belongs(config, shard) and config.method != CheckMethod.PUSH:
            snapshot.devices[config.id] = config
    enabled: set[int] = set()
    for device_id, parent_id, name, is_enabled in Device.objects.values_list(
        "id", "parent_id", "name", "enabled"
    ):
        snapshot.parents[device_id] = parent_id
        snapshot.names[device_id] = name
        if is_enabled:
            enabled.add(device_id)
    for feed_id, url, interval_s, timeout_s in Feed.objects.filter(enabled=True).values_list(
        "id", "url", "interval_s", "timeout_s"
    ):
        if shard.owns(feed_id):
            snapshot.feeds[feed_id] = FeedConfig(feed_id, url, interval_s, timeout_s)

    known = set(known_ids)
    snapshot.states = load_states(i for i in snapshot.devices if i not in known)

    # Ancestors we do not check ourselves: their stored status decides "unreachable".
    # A paused ancestor's status is stale, so it never makes a child unreachable.
    outside: set[int] = set()
    for device_id in snapshot.devices:
        seen = {device_id}
        parent = snapshot.parents.get(device_id)
        while parent is not None and parent not in seen:
            seen.add(parent)
            if parent not in snapshot.devices and parent in enabled:
                outside.add(parent)
            parent = snapshot.parents.get(parent)
    for chunk in chunked(sorted(outside)):
        for device_id, status in DeviceState.objects.filter(device_id__in=chunk).values_list(
            "device_id", "status"
        ):
            snapshot.external_statuses[device_id] = status
    return snapshot
