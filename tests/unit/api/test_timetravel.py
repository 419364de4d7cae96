"""GET /api/v1/devices/status-at: the network as it was, rebuilt from events."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from resourcemonitor.monitoring.models import Event


@pytest.fixture
def history(network):
    now = timezone.now()

    def event(device, minutes_ago, from_status, to_status):
        Event.objects.create(
            device=device,
            at=now - timedelta(minutes=minutes_ago),
            from_status=from_status,
            to_status=to_status,
        )

    event(network.core, 120, "unknown", "up")
    event(network.core, 60, "up", "down")
    event(network.core, 30, "down", "up")
    event(network.pc, 90, "unknown", "up")
    event(network.pc, 60, "up", "unreachable")
    return now


def _statuses(client, moment):
    response = client.get("/api/v1/devices/status-at", {"t": moment.isoformat()})
    assert response.status_code == 200, response.content
    return {item["id"]: item for item in response.json()["items"]}


def test_status_is_the_last_event_before_t(client, public, network, history):
    at_45 = _statuses(client, history - timedelta(minutes=45))
    assert at_45[network.core.pk]["status"] == "down"
    assert at_45[network.pc.pk]["status"] == "unreachable"
    # No event before t: unknown, with no since.
    assert at_45[network.server.pk] == {"id": network.server.pk, "status": "unknown", "since": None}
    at_100 = _statuses(client, history - timedelta(minutes=100))
    assert at_100[network.core.pk]["status"] == "up"
    assert at_100[network.pc.pk]["status"] == "unknown"
    now = _statuses(client, history)
    assert now[network.core.pk]["status"] == "up"
    assert now[network.core.pk]["since"].endswith("Z")


def test_one_query_whatever_the_history(
    client, public, network, history, django_assert_max_num_queries
):
    with django_assert_max_num_queries(1):
        _statuses(client, history - timedelta(minutes=45))


@pytest.mark.parametrize("value", ["yesterday", "", "2999-01-01T00:00:00Z", "1000"])
def test_bad_or_future_time_is_a_422_naming_t(client, public, network, value):
    response = client.get("/api/v1/devices/status-at", {"t": value})
    assert response.status_code == 422
    assert "t" in str(response.json()["detail"])


def test_needs_read_access(client, network):
    response = client.get("/api/v1/devices/status-at", {"t": timezone.now().isoformat()})
    assert response.status_code == 401
