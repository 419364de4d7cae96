"""The public switch: open reads for the demo, a session login otherwise."""

from __future__ import annotations

import pytest

READ_URLS = [
    "/api/v1/devices",
    "/api/v1/summary",
    "/api/v1/events",
]


@pytest.mark.parametrize("url", READ_URLS)
def test_private_by_default_401_json(client, settings, network, url):
    settings.RESMON_PUBLIC_DASHBOARD = False
    response = client.get(url)
    assert response.status_code == 401
    assert response.json() == {"detail": "Unauthorized"}


@pytest.mark.parametrize("url", READ_URLS)
def test_logged_in_user_may_read(client, settings, bob, network, url):
    settings.RESMON_PUBLIC_DASHBOARD = False
    client.force_login(bob)
    assert client.get(url).status_code == 200


@pytest.mark.parametrize("url", READ_URLS)
def test_public_needs_no_login(client, settings, network, url):
    settings.RESMON_PUBLIC_DASHBOARD = True
    assert client.get(url).status_code == 200


def test_device_endpoints_follow_the_switch(client, settings, network):
    settings.RESMON_PUBLIC_DASHBOARD = False
    for suffix in ("", "/samples", "/latency"):
        assert client.get(f"/api/v1/devices/{network.core.pk}{suffix}").status_code == 401


def test_openapi_and_docs_are_served(client, db):
    schema = client.get("/api/v1/openapi.json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path in (
        "/api/v1/devices",
        "/api/v1/devices/{device_id}",
        "/api/v1/devices/{device_id}/samples",
        "/api/v1/devices/{device_id}/latency",
        "/api/v1/events",
        "/api/v1/summary",
    ):
        assert path in paths
    assert client.get("/api/v1/docs").status_code == 200
