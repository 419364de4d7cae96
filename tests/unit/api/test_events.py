"""GET /api/v1/events."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from resourcemonitor.monitoring.models import Event


@pytest.fixture
def events(network):
    now = timezone.now()
    made = []
    for index, device in enumerate([network.core, network.pc, network.core, network.server]):
        made.append(
            Event.objects.create(
                device=device,
                at=now - timedelta(minutes=10 - index),
                from_status="up",
                to_status="down",
                message=f"event {index}",
            )
        )
    return made


def test_newest_first_with_device_name(client, public, events):
    response = client.get("/api/v1/events")
    assert response.status_code == 200
    items = response.json()["items"]
    assert [item["message"] for item in items] == ["event 3", "event 2", "event 1", "event 0"]
    assert items[0]["device_name"] == "par-srv-1"
    assert set(items[0]) == {
        "id",
        "at",
        "device_id",
        "device_name",
        "from_status",
        "to_status",
        "message",
    }


def test_filter_by_device_limit_and_before(client, public, network, events):
    items = client.get("/api/v1/events", {"device": network.core.pk}).json()["items"]
    assert [item["message"] for item in items] == ["event 2", "event 0"]
    items = client.get("/api/v1/events", {"limit": 1}).json()["items"]
    assert [item["message"] for item in items] == ["event 3"]
    before = items[0]["at"]
    items = client.get("/api/v1/events", {"before": before, "limit": 2}).json()["items"]
    assert [item["message"] for item in items] == ["event 2", "event 1"]


@pytest.mark.parametrize(
    "params", [{"limit": "0"}, {"limit": "1001"}, {"device": "x"}, {"before": "soon"}]
)
def test_bad_parameters(client, public, network, params):
    response = client.get("/api/v1/events", params)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][-1] == next(iter(params))


def test_query_count_is_constant(client, public, events, django_assert_max_num_queries):
    with django_assert_max_num_queries(1):
        client.get("/api/v1/events")
