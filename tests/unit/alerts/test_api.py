"""/api/v1/incidents: list, detail with timeline and delivery, ack by session or token."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone

from resourcemonitor.alerts.models import Channel, Incident, Notification
from resourcemonitor.alerts.services import open_incident
from resourcemonitor.api.models import ApiToken

pytestmark = pytest.mark.django_db


@pytest.fixture
def incidents(network):
    now = timezone.now()
    made = [
        open_incident(device=d, problem="down", message="refused", now=now)
        for d in (network.core, network.server, network.pc)
    ]
    channel = Channel.objects.create(name="hook", target="json://127.0.0.1:9/x")
    for incident in made:
        Notification.objects.create(
            incident=incident, channel=channel, kind="problem", title="t", status="sent"
        )
    made[2].resolved_at = now
    made[2].save()
    return made


def test_list_and_filters(client, alice, incidents, django_assert_max_num_queries):
    client.force_login(alice)
    with django_assert_max_num_queries(6):
        body = client.get("/api/v1/incidents").json()
    assert body["count"] == 3
    assert {i["device_name"] for i in body["items"]} == {"lon-core-1", "par-srv-1", "lon-pc-1"}
    assert all(i["notifications_sent"] == 1 for i in body["items"])
    active = client.get("/api/v1/incidents?state=active").json()
    assert active["count"] == 2
    resolved = client.get("/api/v1/incidents?state=resolved").json()
    assert [i["device_name"] for i in resolved["items"]] == ["lon-pc-1"]


def test_list_query_count_does_not_grow(client, alice, network, django_assert_max_num_queries):
    client.force_login(alice)
    now = timezone.now()
    for device in (network.core, network.dist, network.access, network.phone, network.pc):
        open_incident(device=device, problem="down", message="x", now=now)
    with django_assert_max_num_queries(6):
        assert client.get("/api/v1/incidents").json()["count"] == 5


def test_bad_parameters_are_422_naming_the_field(client, alice, incidents):
    client.force_login(alice)
    response = client.get("/api/v1/incidents?state=sideways")
    assert response.status_code == 422
    assert "state" in str(response.json()["detail"])
    assert client.get("/api/v1/incidents?limit=0").status_code == 422
    assert client.get("/api/v1/incidents/999999").status_code == 404


def test_detail_has_timeline_and_deliveries(client, alice, incidents):
    client.force_login(alice)
    body = client.get(f"/api/v1/incidents/{incidents[0].pk}").json()
    assert [t["kind"] for t in body["timeline"]] == ["opened"]
    assert body["deliveries"][0]["channel"] == "hook"
    assert body["deliveries"][0]["status"] == "sent"


def test_ack_by_session_needs_csrf(alice, incidents):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    url = f"/api/v1/incidents/{incidents[0].pk}/ack"
    response = client.post(url, {"note": "on it"}, content_type="application/json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert Incident.objects.get(pk=incidents[0].pk).acknowledged_at is None
    client.get("/incidents/")  # the page sets the csrftoken cookie
    token = client.cookies["csrftoken"].value
    response = client.post(
        url, {"note": "on it"}, content_type="application/json", HTTP_X_CSRFTOKEN=token
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["state"] == "acknowledged" and body["acknowledged_by"] == "alice"
    assert body["ack_note"] == "on it"
    assert body["timeline"][-1]["kind"] == "acknowledged"


def test_ack_by_token(client, alice, incidents):
    _, plain = ApiToken.issue(user=alice, name="pager", scopes=["write"])
    response = client.post(
        f"/api/v1/incidents/{incidents[1].pk}/ack",
        {"note": "from the pager"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {plain}",
    )
    assert response.status_code == 200, response.content
    assert Incident.objects.get(pk=incidents[1].pk).acknowledged_by == alice


def test_ack_refused_without_auth_or_role(client, bob, incidents, settings):
    settings.RESMON_PUBLIC_DASHBOARD = True
    url = f"/api/v1/incidents/{incidents[0].pk}/ack"
    assert client.post(url, {}, content_type="application/json").status_code == 401
    client.force_login(bob)  # a viewer
    assert client.post(url, {}, content_type="application/json").status_code == 403
    assert Incident.objects.get(pk=incidents[0].pk).acknowledged_at is None


def test_ack_bad_body_is_422(client, alice, incidents):
    client.force_login(alice)
    url = f"/api/v1/incidents/{incidents[0].pk}/ack"
    response = client.post(url, {"note": "x" * 501}, content_type="application/json")
    assert response.status_code == 422
    assert "note" in str(response.json()["detail"])
    response = client.post("/api/v1/incidents/999999/ack", {}, content_type="application/json")
    assert response.status_code == 404
