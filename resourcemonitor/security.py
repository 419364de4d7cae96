"""Security middleware and helpers: CSP, body size, login lock-out, ingest rate limits.

* :class:`SecurityHeadersMiddleware` puts a strict Content-Security-Policy on every
  response (no inline script, no inline style, no framing) and answers a request whose
  declared body is over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` with 413 before any view reads it.
* :func:`login` is the login page (``/login/``) for every user; the admin's own login
  (``/admin/login/``) stays for staff.
* :class:`LoginThrottleMiddleware` refuses login POSTs (on both login pages) for a user
  name or client address that failed too often (``RESMON_LOGIN_MAX_FAILURES`` within
  ``RESMON_LOGIN_WINDOW_S`` locks for ``RESMON_LOGIN_LOCKOUT_S``). The counts live in the database
  (:class:`~resourcemonitor.api.models.LoginThrottle`), so all gunicorn workers share them.
  Failures are counted by Django's ``user_login_failed`` signal, whatever the login form.
* :func:`check_ingest_rate` is the per-token ingest limit for the ingest endpoint: a
  token bucket of ``RESMON_INGEST_RATE_PER_S`` requests a second with a burst of twice
  that. It lives in process memory, so with N web workers a token may get up to N times
  the rate; it exists to stop a runaway client, not to meter.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.contrib.auth.views import LoginView
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.urls import reverse
from django.utils import timezone
from ninja.errors import HttpError

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        # Swagger UI and the admin draw a few icons from data: URIs.
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


class SecurityHeadersMiddleware:
    """The CSP header on every response; 413 for a declared body over the limit."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        too_big = self._body_too_big(request)
        response = too_big or self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        return response

    @staticmethod
    def _body_too_big(request: HttpRequest) -> HttpResponse | None:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = request.META.get("CONTENT_LENGTH") or "0"
        try:
            length = int(raw)
        except ValueError:
            return JsonResponse({"detail": "Content-Length is not a number"}, status=400)
        if limit is not None and length > limit:
            return JsonResponse(
                {"detail": f"request body too large: {length} bytes, the limit is {limit}"},
                status=413,
            )
        return None


def client_address(request: HttpRequest) -> str:
    # REMOTE_ADDR only: X-Forwarded-For is whatever the client says unless a proxy we
    # trust rewrites it, and a lock-out keyed on it could be dodged at will.
    return str(request.META.get("REMOTE_ADDR") or "unknown")


def _login_keys(username: str | None, address: str) -> list[str]:
    keys = [f"ip:{address}"]
    if username:
        keys.append(f"user:{username.strip().lower()}")
    return keys


def _window() -> timedelta:
    return timedelta(seconds=settings.RESMON_LOGIN_WINDOW_S)


def _lockout() -> timedelta:
    return timedelta(seconds=settings.RESMON_LOGIN_LOCKOUT_S)


def login(request: HttpRequest) -> HttpResponseBase:
    """/login/: the admin's login form for every user, not only staff (the admin's own
    login refuses a viewer or operator without ``is_staff``)."""
    from django.contrib.admin import site

    view = LoginView.as_view(
        template_name="admin/login.html",
        redirect_authenticated_user=True,
        extra_context={**site.each_context(request), "app_path": request.get_full_path()},
    )
    return view(request)


class LoginThrottleMiddleware:
    """Refuse login POSTs while the user name or client address is locked out (429)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self._login_paths: frozenset[str] | None = None

    def login_paths(self) -> frozenset[str]:
        if self._login_paths is None:
            self._login_paths = frozenset({reverse("admin:login"), reverse("login")})
        return self._login_paths

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method == "POST" and request.path in self.login_paths():
            from resourcemonitor.api.models import LoginThrottle

            keys = _login_keys(request.POST.get("username"), client_address(request))
            until = LoginThrottle.locked(keys)
            if until is not None:
                wait = max(1, int((until - timezone.now()).total_seconds()))
                response = HttpResponse(
                    f"Too many failed logins. Try again in {wait} seconds.\n",
                    status=429,
                    content_type="text/plain; charset=utf-8",
                )
                response["Retry-After"] = str(wait)
                return response
        return self.get_response(request)


@receiver(user_login_failed, dispatch_uid="resmon-login-failed")
def _count_login_failure(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **_: Any
) -> None:
    from resourcemonitor.api.models import LoginThrottle

    address = client_address(request) if request is not None else "unknown"
    now = timezone.now()
    username = credentials.get("username")
    limits = {
        f"ip:{address}": settings.RESMON_LOGIN_MAX_FAILURES_PER_ADDRESS,
    }
    if username:
        limits[f"user:{str(username).strip().lower()}"] = settings.RESMON_LOGIN_MAX_FAILURES
    for key, limit in limits.items():
        LoginThrottle.record_failure(
            key, limit=limit, window=_window(), lockout=_lockout(), now=now
        )


@receiver(user_logged_in, dispatch_uid="resmon-logged-in")
def _clear_login_failures(sender: Any, request: HttpRequest | None, user: Any, **_: Any) -> None:
    from resourcemonitor.api.models import LoginThrottle

    LoginThrottle.clear(f"user:{user.get_username().strip().lower()}")


class TokenBucket:
    """``rate`` per second, up to ``burst`` at once; thread-safe (gthread workers)."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._level: dict[Any, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: Any, cost: float = 1.0, now: float | None = None) -> float:
        """0.0 when allowed (and taken); otherwise the seconds to wait before retrying."""
        now = time.monotonic() if now is None else now
        with self._lock:
            level, at = self._level.get(key, (self.burst, now))
            level = min(self.burst, level + (now - at) * self.rate)
            if level >= cost:
                self._level[key] = (level - cost, now)
                return 0.0
            self._level[key] = (level, now)
            return (cost - level) / self.rate


_ingest_buckets: dict[tuple[float, float], TokenBucket] = {}


def check_ingest_rate(token_id: int, cost: float = 1.0) -> None:
    """Raise a 429 (with the wait in its message) when the token is over its ingest rate.

    Call it first thing in the ingest endpoint: ``check_ingest_rate(request.auth.token.pk)``.
    """
    rate = settings.RESMON_INGEST_RATE_PER_S
    key = (rate, rate * 2)
    bucket = _ingest_buckets.get(key)
    if bucket is None:
        bucket = _ingest_buckets.setdefault(key, TokenBucket(rate, rate * 2))
    wait = bucket.take(token_id, cost)
    if wait:
        raise HttpError(429, f"ingest rate limit for this token: retry in {wait:.1f} s")
