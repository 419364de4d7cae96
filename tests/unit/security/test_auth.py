"""TokenOrSession and the role helpers: who gets in, with which answer when not."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser, Group
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.test import Client, RequestFactory
from ninja.errors import HttpError

from resourcemonitor.api.auth import (
    Principal,
    TokenOrSession,
    require_role,
    role_of,
    role_required,
)

from .conftest import bearer, issue

READ_URLS = ["/api/v1/devices", "/api/v1/summary", "/api/v1/events"]


def _request(method="GET", user=None, token=None, csrf=False):
    factory = RequestFactory()
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    request = factory.generic(method, "/api/v1/x", **headers)
    request.user = user or AnonymousUser()
    request._dont_enforce_csrf_checks = csrf
    return request


def test_roles_of_users(alice, bob, carol, db):
    assert role_of(alice) == "admin"
    assert role_of(carol) == "operator"
    assert role_of(bob) == "viewer"
    assert role_of(AnonymousUser()) is None
    bob.groups.add(Group.objects.get(name="admin"))
    del bob._resmon_role
    assert role_of(bob) == "admin"
    bob.is_active = False
    assert role_of(bob) is None


def test_role_groups_hold_sensible_permissions(db):
    viewer = set(Group.objects.get(name="viewer").permissions.values_list("codename", flat=True))
    operator = set(
        Group.objects.get(name="operator").permissions.values_list("codename", flat=True)
    )
    assert "view_device" in viewer and "change_device" not in viewer
    # Operators run the inventory's self-service pages; sites, feeds and tokens are admins'.
    assert {"add_device", "change_device", "delete_device", "add_maintenancewindow"} <= operator
    assert "delete_site" not in operator and "add_feed" not in operator
    assert "view_apitoken" not in operator
    admin = Group.objects.get(name="admin").permissions
    assert admin.filter(codename="delete_site").exists()


def test_require_role_and_decorator(bob, carol, rf):
    request = rf.post("/pause")
    request.user = bob
    with pytest.raises(PermissionDenied):
        require_role(request, "operator")
    request.user = carol
    require_role(request, "operator")

    @role_required("operator")
    def view(request):
        return HttpResponse("ok")

    request.user = AnonymousUser()
    assert view(request).status_code == 302
    request.user = carol
    assert view(request).content == b"ok"
    request.user = bob
    with pytest.raises(PermissionDenied):
        view(request)


def test_token_with_scope_and_role_passes(carol):
    _, plain = issue(carol, "write")
    principal = TokenOrSession(scope="write", role="operator")(_request("POST", token=plain))
    assert isinstance(principal, Principal)
    assert principal.user == carol and principal.via == "token" and principal.role == "operator"


def test_token_without_the_scope_is_403_not_401(carol):
    _, plain = issue(carol, "read")
    with pytest.raises(HttpError) as raised:
        TokenOrSession(scope="write", role="operator")(_request("POST", token=plain))
    assert raised.value.status_code == 403
    assert "write scope" in str(raised.value)


def test_token_of_a_weaker_user_is_403(bob):
    _, plain = issue(bob, "write")
    with pytest.raises(HttpError) as raised:
        TokenOrSession(scope="write", role="operator")(_request("POST", token=plain))
    assert raised.value.status_code == 403 and "operator role" in str(raised.value)


@pytest.mark.parametrize("header", ["Bearer nonsense", "Basic YWxpY2U6eA==", "Bearer ", "Token x"])
def test_bad_credentials_are_refused(db, header, settings):
    settings.RESMON_PUBLIC_DASHBOARD = True  # a wrong token is refused even when public
    request = RequestFactory().get("/api/v1/x", HTTP_AUTHORIZATION=header)
    request.user = AnonymousUser()
    assert TokenOrSession()(request) is None


def test_session_write_needs_csrf_and_role(bob, carol):
    auth = TokenOrSession(scope="write", role="operator")
    with pytest.raises(HttpError) as raised:
        auth(_request("POST", user=carol, csrf=False))
    assert raised.value.status_code == 403 and "CSRF" in str(raised.value)
    assert auth(_request("POST", user=carol, csrf=True)).user == carol
    with pytest.raises(HttpError, match="operator role"):
        auth(_request("POST", user=bob, csrf=True))


def test_session_ingest_needs_an_operator(bob, carol):
    auth = TokenOrSession(scope="ingest")
    with pytest.raises(HttpError, match="operator role"):
        auth(_request("POST", user=bob, csrf=True))
    assert auth(_request("POST", user=carol, csrf=True)).via == "session"


def test_public_read_only_for_reads(private, db):
    private.RESMON_PUBLIC_DASHBOARD = True
    assert TokenOrSession()(_request()).via == "public"
    assert TokenOrSession(scope="write")(_request("POST")) is None
    assert TokenOrSession(scope="ingest")(_request("POST")) is None
    assert TokenOrSession(public_read=False)(_request()) is None


# Through real URLs ---------------------------------------------------------------


@pytest.mark.parametrize("url", READ_URLS)
def test_read_token_reads_a_private_api(client, private, bob, network, url):
    _, plain = issue(bob, "read")
    assert client.get(url).status_code == 401
    assert client.get(url, **bearer(plain)).status_code == 200


def test_ingest_token_cannot_read(client, private, bob, network):
    _, plain = issue(bob, "ingest")
    response = client.get("/api/v1/devices", **bearer(plain))
    assert response.status_code == 403
    assert response.json() == {"detail": "this token lacks the read scope"}


def test_revoked_token_is_401(client, private, bob, network):
    token, plain = issue(bob, "read")
    token.revoke()
    response = client.get("/api/v1/devices", **bearer(plain))
    assert response.status_code == 401
    assert response.json() == {"detail": "Unauthorized"}


def test_using_a_token_records_last_used(client, private, bob, network):
    token, plain = issue(bob, "read")
    client.get("/api/v1/summary", **bearer(plain))
    token.refresh_from_db()
    assert token.last_used_at is not None


def test_session_post_without_csrf_is_refused(private, bob):
    client = Client(enforce_csrf_checks=True)
    client.force_login(bob)
    response = client.post(
        "/api/v1/tokens", {"name": "x", "scopes": ["read"]}, content_type="application/json"
    )
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    client.get("/")  # sets the csrftoken cookie
    csrf = client.cookies["csrftoken"].value
    response = client.post(
        "/api/v1/tokens",
        {"name": "x", "scopes": ["read"]},
        content_type="application/json",
        HTTP_X_CSRFTOKEN=csrf,
    )
    assert response.status_code == 201, response.content


def test_openapi_documents_auth_errors_once(client, db):
    import json

    text = client.get("/api/v1/openapi.json").content.decode()
    schema = json.loads(text)
    create = schema["paths"]["/api/v1/tokens"]["post"]["responses"]
    assert {"201", "401", "403", "413", "422"} <= set(create)
    # No code twice in one object (Swagger UI refuses a schema with duplicate keys).
    pairs_seen: list[list[str]] = []
    json.loads(text, object_pairs_hook=lambda pairs: pairs_seen.append([k for k, _ in pairs]) or {})
    assert all(len(keys) == len(set(keys)) for keys in pairs_seen)
