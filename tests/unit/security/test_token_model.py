"""ApiToken: stored hashed, found by prefix, revocable, expiring, cheap to mark as used."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.utils import timezone

from resourcemonitor.api.models import ApiToken, parse_scopes

from .conftest import issue


def test_only_a_hash_is_stored(bob):
    token, plain = issue(bob, "read")
    assert plain.startswith(f"rmt_{token.prefix}_")
    assert len(plain) > 40
    token.refresh_from_db()
    assert token.secret_hash == hashlib.sha256(plain.encode()).hexdigest()
    stored = " ".join(str(value) for value in ApiToken.objects.values_list().get())
    assert plain not in stored
    assert plain.split("_")[-1] not in stored


def test_find_accepts_the_token_and_rejects_a_changed_one(bob):
    token, plain = issue(bob, "read")
    assert ApiToken.find(plain) == token
    assert ApiToken.find(plain[:-1] + ("A" if plain[-1] != "A" else "B")) is None
    assert ApiToken.find("rmt_") is None
    assert ApiToken.find("") is None
    assert ApiToken.find("x" * 10_000) is None


def test_revoked_expired_and_inactive_users_tokens_do_not_work(bob):
    revoked, revoked_plain = issue(bob, "read")
    assert revoked.revoke() is True
    assert revoked.revoke() is False
    assert ApiToken.find(revoked_plain) is None

    expired, expired_plain = ApiToken.issue(
        user=bob, name="old", scopes=["read"], expires_at=timezone.now() + timedelta(hours=1)
    )
    assert ApiToken.find(expired_plain) == expired
    assert ApiToken.find(expired_plain, now=timezone.now() + timedelta(hours=2)) is None

    _, active_plain = issue(bob, "read")
    bob.is_active = False
    bob.save()
    assert ApiToken.find(active_plain) is None


def test_write_implies_read_and_ingest_stands_alone(bob):
    writer, _ = issue(bob, "write")
    assert writer.allows("read") and writer.allows("write") and not writer.allows("ingest")
    pusher, _ = issue(bob, "ingest")
    assert pusher.allows("ingest") and not pusher.allows("read")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("ingest, read", ["read", "ingest"]), (["WRITE"], ["write"]), ("read,read", ["read"])],
)
def test_parse_scopes(raw, expected):
    assert parse_scopes(raw) == expected


@pytest.mark.parametrize(
    ("raw", "message"), [("admin", "unknown scope 'admin'"), (" , ", "at least one")]
)
def test_parse_scopes_names_the_problem(raw, message):
    with pytest.raises(ValueError, match=message):
        parse_scopes(raw)


def test_touch_writes_at_most_once_a_minute(bob, django_assert_num_queries):
    token, _ = issue(bob, "read")
    now = timezone.now()
    with django_assert_num_queries(1):
        token.touch(now)
    with django_assert_num_queries(0):
        token.touch(now + timedelta(seconds=30))
    token.refresh_from_db()
    assert token.last_used_at == now
    token.touch(now + timedelta(seconds=61))
    token.refresh_from_db()
    assert token.last_used_at == now + timedelta(seconds=61)
