"""Tokens and lock-outs in the admin: listed without secrets, revocable, clearable."""

from __future__ import annotations

from resourcemonitor.api.models import ApiToken, LoginThrottle

from .conftest import issue


def test_token_list_shows_no_secret_and_revokes(client, alice, bob, django_assert_max_num_queries):
    token, plain = issue(bob, "ingest", name="push agent")
    for _ in range(10):
        issue(bob, "read")
    client.force_login(alice)
    with django_assert_max_num_queries(12):
        page = client.get("/admin/api/apitoken/")
    html = page.content.decode()
    assert page.status_code == 200 and "push agent" in html
    assert plain not in html and token.secret_hash not in html
    change = client.get(f"/admin/api/apitoken/{token.pk}/change/").content.decode()
    assert token.secret_hash not in change
    assert client.get("/admin/api/apitoken/add/").status_code == 403
    response = client.post(
        "/admin/api/apitoken/",
        {"action": "revoke", "_selected_action": [token.pk]},
        follow=True,
    )
    assert "Revoked 1 token" in response.content.decode()
    assert ApiToken.find(plain) is None


def test_lockout_rows_can_be_cleared(client, alice, db):
    row = LoginThrottle.objects.create(key="user:bob", failures=9)
    client.force_login(alice)
    assert "user:bob" in client.get("/admin/api/loginthrottle/").content.decode()
    client.post(f"/admin/api/loginthrottle/{row.pk}/delete/", {"post": "yes"})
    assert not LoginThrottle.objects.exists()
