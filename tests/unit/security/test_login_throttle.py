"""Login lock-out on the admin login (our login page): counted in the database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from resourcemonitor.api.models import LoginThrottle

LOGIN = "/login/"


@pytest.fixture
def limits(settings):
    settings.RESMON_LOGIN_MAX_FAILURES = 3
    settings.RESMON_LOGIN_MAX_FAILURES_PER_ADDRESS = 10
    settings.RESMON_LOGIN_WINDOW_S = 600
    settings.RESMON_LOGIN_LOCKOUT_S = 900
    return settings


def _login(client: Client, username: str, password: str, address: str = "127.0.0.1"):
    return client.post(
        LOGIN, {"username": username, "password": password, "next": "/"}, REMOTE_ADDR=address
    )


def test_locked_after_n_failures_even_with_the_right_password(client, alice, limits):
    for _ in range(3):
        assert _login(client, "alice", "wrong").status_code == 200  # the form again
    response = _login(client, "alice", "alice-password-1")
    assert response.status_code == 429
    assert "Too many failed logins" in response.content.decode()
    assert 800 < int(response["Retry-After"]) <= 900
    assert "_auth_user_id" not in client.session


def test_lock_is_per_user_name(client, alice, bob, limits):
    for _ in range(3):
        _login(client, "alice", "wrong")
    assert _login(client, "bob", "bob-password-1").status_code == 302


def test_user_name_case_does_not_dodge_the_lock(client, alice, limits):
    for name in ("alice", "ALICE", "Alice"):
        _login(client, name, "wrong")
    assert _login(client, "alice", "alice-password-1").status_code == 429


def test_success_resets_the_count(client, alice, limits):
    for _ in range(2):
        _login(client, "alice", "wrong")
    assert _login(client, "alice", "alice-password-1").status_code == 302
    client.logout()
    for _ in range(2):
        _login(client, "alice", "wrong")
    assert _login(client, "alice", "alice-password-1").status_code == 302


def test_per_address_limit_across_user_names(client, alice, limits):
    for index in range(10):
        _login(client, f"guess{index}", "wrong", address="127.9.9.9")
    assert _login(client, "alice", "alice-password-1", address="127.9.9.9").status_code == 429
    assert _login(client, "alice", "alice-password-1", address="127.9.9.8").status_code == 302


def test_lock_expires(client, alice, limits):
    for _ in range(3):
        _login(client, "alice", "wrong")
    LoginThrottle.objects.update(locked_until=timezone.now() - timedelta(seconds=1))
    assert _login(client, "alice", "alice-password-1").status_code == 302


def test_failures_outside_the_window_start_over(db, limits):
    now = timezone.now()
    window, lockout = timedelta(seconds=600), timedelta(seconds=900)
    for _ in range(2):
        LoginThrottle.record_failure("user:x", limit=3, window=window, lockout=lockout, now=now)
    later = now + timedelta(seconds=601)
    LoginThrottle.record_failure("user:x", limit=3, window=window, lockout=lockout, now=later)
    row = LoginThrottle.objects.get(key="user:x")
    assert row.failures == 1 and row.locked_until is None


def test_the_admin_login_is_throttled_too(client, alice, limits):
    for _ in range(3):
        client.post("/admin/login/", {"username": "alice", "password": "wrong"})
    response = client.post("/admin/login/", {"username": "alice", "password": "alice-password-1"})
    assert response.status_code == 429


def test_login_page_admits_a_viewer_and_follows_next(client, bob):
    page = client.get("/login/?next=/api/v1/summary")
    assert page.status_code == 200 and b'name="password"' in page.content
    response = client.post(
        "/login/?next=/api/v1/summary",
        {"username": "bob", "password": "bob-password-1", "next": "/api/v1/summary"},
    )
    assert response.status_code == 302 and response["Location"] == "/api/v1/summary"
    outside = client.post(
        "/login/",
        {"username": "bob", "password": "bob-password-1", "next": "https://evil.example/"},
    )
    assert outside["Location"] == "/"
