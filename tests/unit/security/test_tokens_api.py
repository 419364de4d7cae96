"""/api/v1/tokens: your own tokens; an admin sees and revokes all; the secret shown once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from resourcemonitor.api.models import ApiToken

from .conftest import bearer, issue


def _create(client, **body):
    return client.post("/api/v1/tokens", body, content_type="application/json")


def test_create_shows_the_token_once(client, bob):
    client.force_login(bob)
    response = _create(client, name="laptop", scopes=["read"])
    assert response.status_code == 201
    created = response.json()
    assert created["token"].startswith(created["prefix"] + "_")
    assert created["scopes"] == ["read"] and created["user"] == "bob" and created["active"]
    assert ApiToken.find(created["token"]).pk == created["id"]
    listed = client.get("/api/v1/tokens").json()["items"]
    assert [item["id"] for item in listed] == [created["id"]]
    assert "token" not in listed[0]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "scopes": ["root"]}, "scopes"),
        ({"name": "x", "scopes": []}, "scopes"),
        ({"name": " ", "scopes": ["read"]}, "name"),
        ({"name": "x" * 101, "scopes": ["read"]}, "name"),
        ({"scopes": ["read"]}, "name"),
        ({"name": "x", "scopes": ["read"], "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
        ({"name": "x", "scopes": ["read"], "expires_at": "tomorrow"}, "expires_at"),
    ],
)
def test_bad_input_is_422_naming_the_field(client, bob, body, field):
    client.force_login(bob)
    response = _create(client, **body)
    assert response.status_code == 422
    assert field in str(response.json()["detail"])
    assert not ApiToken.objects.exists()


def test_not_json_is_4xx(client, bob):
    client.force_login(bob)
    response = client.post("/api/v1/tokens", "{nope", content_type="application/json")
    assert 400 <= response.status_code < 500
    assert "detail" in response.json()


def test_expiring_token(client, bob):
    client.force_login(bob)
    when = (timezone.now() + timedelta(days=1)).isoformat()
    response = _create(client, name="x", scopes=["ingest"], expires_at=when)
    assert response.status_code == 201 and response.json()["expires_at"]


def test_each_sees_their_own_and_the_admin_sees_all(
    client, alice, bob, carol, django_assert_max_num_queries
):
    issue(bob, "read", name="bob's")
    issue(carol, "ingest", name="carol's")
    client.force_login(bob)
    assert [item["name"] for item in client.get("/api/v1/tokens").json()["items"]] == ["bob's"]
    client.force_login(alice)
    for _ in range(20):
        issue(carol, "read")
    with django_assert_max_num_queries(5):
        names = {item["name"] for item in client.get("/api/v1/tokens").json()["items"]}
    assert {"bob's", "carol's"} <= names


def test_revoke_own_not_others(client, alice, bob, carol):
    mine, plain = issue(bob, "read")
    theirs, _ = issue(carol, "read")
    client.force_login(bob)
    assert client.post(f"/api/v1/tokens/{theirs.pk}/revoke").status_code == 404
    response = client.post(f"/api/v1/tokens/{mine.pk}/revoke")
    assert response.status_code == 200 and response.json()["active"] is False
    assert ApiToken.find(plain) is None
    client.force_login(alice)
    assert client.post(f"/api/v1/tokens/{theirs.pk}/revoke").status_code == 200


@pytest.mark.parametrize("token_id", ["0", "99999999999999999999999", "abc"])
def test_revoke_bad_id_is_4xx(client, bob, token_id):
    client.force_login(bob)
    response = client.post(f"/api/v1/tokens/{token_id}/revoke")
    assert response.status_code in {404, 422}


def test_token_management_needs_a_login_even_when_public(client, settings, db):
    settings.RESMON_PUBLIC_DASHBOARD = True
    assert client.get("/api/v1/tokens").status_code == 401
    assert _create(client, name="x", scopes=["read"]).status_code == 401


def test_a_read_token_cannot_mint_tokens_a_write_token_can(client, bob):
    _, read_plain = issue(bob, "read")
    _, write_plain = issue(bob, "write")
    body = {"name": "x", "scopes": ["read"]}
    assert (
        client.post(
            "/api/v1/tokens", body, content_type="application/json", **bearer(read_plain)
        ).status_code
        == 403
    )
    assert client.get("/api/v1/tokens", **bearer(read_plain)).status_code == 200
    assert (
        client.post(
            "/api/v1/tokens", body, content_type="application/json", **bearer(write_plain)
        ).status_code
        == 201
    )
