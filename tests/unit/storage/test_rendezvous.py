"""Dynamic sharding: rendezvous hashing over the live collectors' heartbeats."""

from __future__ import annotations

import os
import socket
from datetime import timedelta

import pytest
from django.utils import timezone

from resourcemonitor.monitoring.collector.inventory import Rendezvous
from resourcemonitor.monitoring.models import Heartbeat


def ring(me: str, members: list[str]) -> Rendezvous:
    shard = Rendezvous(me, heartbeat_s=5, dead_beats=1.5)
    shard.set_members(members)
    return shard


def test_every_key_has_exactly_one_owner_and_the_split_is_even() -> None:
    members = ["a", "b", "c"]
    owners = {m: {k for k in range(3000) if ring(m, members).owns(k)} for m in members}
    assert set().union(*owners.values()) == set(range(3000))
    assert sum(len(keys) for keys in owners.values()) == 3000
    assert all(800 < len(keys) < 1200 for keys in owners.values())


def test_when_one_leaves_only_its_keys_move() -> None:
    before = {k: next(m for m in "abc" if ring(m, list("abc")).owns(k)) for k in range(2000)}
    after = {k: next(m for m in "ab" if ring(m, list("ab")).owns(k)) for k in range(2000)}
    moved = {k for k in before if before[k] != after[k]}
    assert moved == {k for k, m in before.items() if m == "c"}


def test_alone_it_owns_everything_and_is_shard_one() -> None:
    shard = ring("a", [])
    assert all(shard.owns(k) for k in range(100))
    assert (shard.index, shard.count, str(shard)) == (1, 1, "auto")


@pytest.mark.django_db
def test_members_are_the_live_auto_collectors() -> None:
    host = socket.gethostname()
    me = f"collector@{host}:{os.getpid()}"
    Heartbeat.beat(component="collector", instance="collector@other:1", info={"shard": "auto"})
    Heartbeat.beat(component="collector", instance="collector@other:2", info={"shard": "1/2"})
    Heartbeat.beat(component="web", instance="web@other:3", info={})
    stale = Heartbeat.beat(
        component="collector", instance="collector@other:4", info={"shard": "auto"}
    )
    Heartbeat.objects.filter(pk=stale.pk).update(last_seen_at=timezone.now() - timedelta(seconds=8))
    # A collector of this host whose process is gone is dead at once.
    Heartbeat.beat(
        component="collector", instance=f"collector@{host}:999999999", info={"shard": "auto"}
    )
    shard = Rendezvous(me, heartbeat_s=5, dead_beats=1.5)
    assert shard.refresh_members() is True
    assert shard.members == tuple(sorted([me, "collector@other:1"]))
    assert shard.refresh_members() is False


@pytest.mark.django_db
def test_a_collector_that_stopped_cleanly_leaves_at_once() -> None:
    me = f"collector@{socket.gethostname()}:{os.getpid()}"
    Heartbeat.beat(component="collector", instance="collector@other:1", info={"shard": "auto"})
    shard = Rendezvous(me, heartbeat_s=5, dead_beats=1.5)
    shard.refresh_members()
    assert "collector@other:1" in shard.members
    # Its last beat on SIGTERM: still fresh, but it said it stopped.
    Heartbeat.beat(
        component="collector",
        instance="collector@other:1",
        info={"shard": "auto", Heartbeat.STOPPED: True},
    )
    assert shard.refresh_members() is True
    assert shard.members == (me,)
    assert not Heartbeat.objects.alive("collector").exists()
