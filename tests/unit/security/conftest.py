from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from resourcemonitor.api.models import ApiToken


@pytest.fixture
def private(settings):
    settings.RESMON_PUBLIC_DASHBOARD = False
    return settings


def bearer(plain: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {plain}"}


def issue(user: User, *scopes: str, name: str = "t") -> tuple[ApiToken, str]:
    return ApiToken.issue(user=user, name=name, scopes=list(scopes))


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # PBKDF2's deliberate slowness costs ~1 s per user on this machine; these tests are
    # about who gets in, not about the hash.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
