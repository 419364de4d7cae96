"""GET /api/v1/summary."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from resourcemonitor.monitoring.models import Heartbeat
from tests.unit.api.helpers import set_state


def test_counts_every_status(client, public, network):
    set_state(network.core, "down")
    set_state(network.dist, "unreachable")
    set_state(network.access, "up", checked_ago=300)  # stale: counts as unknown
    set_state(network.phone, "up", flapping=True)
    set_state(network.pc, "maintenance", checked_ago=None)
    response = client.get("/api/v1/summary")
    assert response.status_code == 200
    body = response.json()
    assert body["counts"] == {
        "up": 1,
        "degraded": 0,
        "down": 1,
        "unreachable": 1,
        "unknown": 2,  # the stale one and the server, never checked
        "maintenance": 1,
    }
    assert body["total"] == 6
    assert body["problems"] == 2
    assert body["stale"] == 1
    assert body["flapping"] == 1


def test_empty_inventory(client, public, db):
    body = client.get("/api/v1/summary").json()
    assert body["total"] == 0
    assert set(body["counts"]) == {
        "up",
        "degraded",
        "down",
        "unreachable",
        "unknown",
        "maintenance",
    }
    assert body["collector"] == {"alive": False, "last_seen_at": None, "instances": 0, "info": {}}


def test_fresh_collector_heartbeat(client, public, db):
    Heartbeat.beat(component="collector", instance="collector@a", info={"devices": 12})
    Heartbeat.beat(component="simulator", instance="simulator@a")
    collector = client.get("/api/v1/summary").json()["collector"]
    assert collector["alive"] is True
    assert collector["instances"] == 1
    assert collector["info"] == {"devices": 12}
    assert collector["last_seen_at"].endswith("Z")


def test_stale_collector_heartbeat(client, public, settings, db):
    settings.RESMON_HEARTBEAT_STALE_S = 30
    beat = Heartbeat.beat(component="collector", instance="collector@a")
    Heartbeat.objects.filter(pk=beat.pk).update(last_seen_at=timezone.now() - timedelta(seconds=45))
    collector = client.get("/api/v1/summary").json()["collector"]
    assert collector["alive"] is False
    assert collector["instances"] == 0
    assert collector["last_seen_at"] is not None


def test_one_live_collector_of_two_is_alive(client, public, db):
    old = Heartbeat.beat(component="collector", instance="collector@old")
    Heartbeat.objects.filter(pk=old.pk).update(last_seen_at=timezone.now() - timedelta(hours=1))
    Heartbeat.beat(component="collector", instance="collector@new")
    collector = client.get("/api/v1/summary").json()["collector"]
    assert (collector["alive"], collector["instances"]) == (True, 1)
