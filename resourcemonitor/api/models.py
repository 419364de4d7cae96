"""API tokens, login throttling and the role groups: who may get in, and how often."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from typing import Any, ClassVar

from django.conf import settings
from django.db import models
from django.db.models import F
from django.utils import timezone

# "rmt_" + 8-character lookup prefix + "_" + 43 characters of secret (256 bits).
TOKEN_MARK = "rmt_"
PREFIX_LENGTH = 8
# last_used_at is written at most this often per token: a busy ingest client must not
# turn every request into an extra UPDATE.
LAST_USED_GRANULARITY = timedelta(seconds=60)


class Scope(models.TextChoices):
    READ = "read", "Read"
    WRITE = "write", "Write (implies read)"
    INGEST = "ingest", "Ingest (push results only)"


class Role(models.TextChoices):
    """The three role groups, weakest first. A superuser is always ``admin``."""

    VIEWER = "viewer", "Viewer"
    OPERATOR = "operator", "Operator"
    ADMIN = "admin", "Admin"


ROLE_RANK = {Role.VIEWER: 1, Role.OPERATOR: 2, Role.ADMIN: 3}


def hash_secret(token: str) -> str:
    """sha256 of the whole token. Tokens carry 256 random bits, so a fast hash is enough:
    a slow password hash protects guessable secrets, and these are not guessable."""
    return hashlib.sha256(token.encode()).hexdigest()


def parse_scopes(raw: str | list[str] | tuple[str, ...]) -> list[str]:
    """``"read,write"`` or a list, validated, in canonical order; ValueError names a bad one."""
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    wanted = {item.strip().lower() for item in items if item.strip()}
    unknown = sorted(wanted - set(Scope.values))
    if unknown:
        raise ValueError(
            f"unknown scope {unknown[0]!r}: expected one or more of {', '.join(Scope.values)}"
        )
    if not wanted:
        raise ValueError(f"at least one scope is needed: {', '.join(Scope.values)}")
    return [scope for scope in Scope.values if scope in wanted]


class ApiTokenQuerySet(models.QuerySet["ApiToken"]):
    def active(self, now: datetime | None = None) -> ApiTokenQuerySet:
        now = now or timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now)
        )

    def visible_to(self, user: Any) -> ApiTokenQuerySet:
        """An admin sees every token; anyone else only their own."""
        from resourcemonitor.api.auth import role_of

        if role_of(user) == Role.ADMIN:
            return self.all()
        return self.filter(user=user)


class ApiToken(models.Model):
    """A credential for scripts and push clients, acting as its user within its scopes.

    Only a sha256 of the token is stored; the token itself is shown once, when created.
    ``prefix`` (not secret) finds the row, the hash comparison decides.
    """

    name = models.CharField(max_length=100)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    prefix = models.CharField(max_length=PREFIX_LENGTH, unique=True, editable=False)
    secret_hash = models.CharField(max_length=64, editable=False)
    scopes = models.CharField(
        max_length=40, help_text="Comma-separated: read, write (implies read), ingest"
    )
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    objects: ClassVar[ApiTokenQuerySet] = ApiTokenQuerySet.as_manager()  # type: ignore[assignment]

    class Meta:
        ordering: ClassVar = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({TOKEN_MARK}{self.prefix}…)"

    @classmethod
    def issue(
        cls,
        *,
        user: Any,
        name: str,
        scopes: list[str],
        expires_at: datetime | None = None,
    ) -> tuple[ApiToken, str]:
        """Create a token; returns the row and the plain token, which is never stored."""
        prefix = secrets.token_hex(PREFIX_LENGTH // 2)
        while cls.objects.filter(prefix=prefix).exists():  # 2^32 prefixes: rarely loops
            prefix = secrets.token_hex(PREFIX_LENGTH // 2)
        plain = f"{TOKEN_MARK}{prefix}_{secrets.token_urlsafe(32)}"
        token = cls.objects.create(
            user=user,
            name=name,
            prefix=prefix,
            secret_hash=hash_secret(plain),
            scopes=",".join(parse_scopes(scopes)),
            expires_at=expires_at,
        )
        return token, plain

    @classmethod
    def find(cls, plain: str, now: datetime | None = None) -> ApiToken | None:
        """The active token ``plain`` names, or None (wrong, revoked, expired, user inactive)."""
        if not plain.startswith(TOKEN_MARK) or len(plain) > 200:
            return None
        prefix = plain[len(TOKEN_MARK) : len(TOKEN_MARK) + PREFIX_LENGTH]
        token = cls.objects.active(now).select_related("user").filter(prefix=prefix).first()
        if token is None or not token.user.is_active:
            return None
        # Constant-time: the prefix is public, the rest must not leak through timing.
        if not hmac.compare_digest(token.secret_hash, hash_secret(plain)):
            return None
        return token

    @property
    def scope_list(self) -> list[str]:
        return [scope for scope in self.scopes.split(",") if scope]

    def allows(self, scope: str) -> bool:
        """write implies read; ingest is its own (a push client's token reads nothing)."""
        held = set(self.scope_list)
        return scope in held or (scope == Scope.READ and Scope.WRITE in held)

    @property
    def is_active(self) -> bool:
        now = timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    def revoke(self) -> bool:
        """Revoke once; False when it already was."""
        now = timezone.now()
        changed = ApiToken.objects.filter(pk=self.pk, revoked_at__isnull=True).update(
            revoked_at=now
        )
        if changed:
            self.revoked_at = now
        return bool(changed)

    def touch(self, now: datetime | None = None) -> None:
        """Record a use, at most once per LAST_USED_GRANULARITY (a conditional UPDATE)."""
        now = now or timezone.now()
        if self.last_used_at is not None and now - self.last_used_at < LAST_USED_GRANULARITY:
            return
        cutoff = now - LAST_USED_GRANULARITY
        ApiToken.objects.filter(pk=self.pk).filter(
            models.Q(last_used_at__isnull=True) | models.Q(last_used_at__lt=cutoff)
        ).update(last_used_at=now)
        self.last_used_at = now


class LoginThrottle(models.Model):
    """Failed logins per key (``user:<name>`` or ``ip:<address>``) in the current window.

    In the database, not in process memory, so every gunicorn worker (and every web
    host) counts the same failures.
    """

    key = models.CharField(max_length=200, unique=True)
    failures = models.PositiveIntegerField(default=0)
    window_start = models.DateTimeField(default=timezone.now)
    locked_until = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.key}: {self.failures} failures"

    @classmethod
    def locked(cls, keys: list[str], now: datetime | None = None) -> datetime | None:
        """The latest lock-out end among ``keys`` still in force, or None."""
        now = now or timezone.now()
        ends = cls.objects.filter(key__in=keys, locked_until__gt=now).values_list(
            "locked_until", flat=True
        )
        return max(ends, default=None)

    @classmethod
    def record_failure(
        cls, key: str, *, limit: int, window: timedelta, lockout: timedelta, now: datetime
    ) -> None:
        row, _ = cls.objects.get_or_create(key=key[:200], defaults={"window_start": now})
        if now - row.window_start > window:
            # A new window: count from one again (a conditional reset, so two workers
            # resetting at once do not lose each other's failure).
            cls.objects.filter(pk=row.pk, window_start=row.window_start).update(
                failures=0, window_start=now
            )
        cls.objects.filter(pk=row.pk).update(failures=F("failures") + 1)
        row.refresh_from_db()
        if row.failures >= limit:
            cls.objects.filter(pk=row.pk).update(locked_until=now + lockout)

    @classmethod
    def clear(cls, key: str) -> None:
        cls.objects.filter(key=key[:200]).delete()
