"""Who may read the API: one auth class, so API tokens can join it later."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest
from ninja.security import APIKeyCookie


class ReadAccess(APIKeyCookie):
    """Anyone while ``RESMON_PUBLIC_DASHBOARD`` is on; otherwise a logged-in session user.

    Read endpoints only (there are no writes yet), so no CSRF check here: a write
    endpoint must use an auth that enforces it. API tokens (stored hashed) belong here
    too, as one more way to say yes in :meth:`__call__`.
    """

    def __init__(self) -> None:
        # Names the Django session cookie in the OpenAPI schema.
        self.param_name = settings.SESSION_COOKIE_NAME
        super().__init__(csrf=False)

    def __call__(self, request: HttpRequest) -> Any:
        if settings.RESMON_PUBLIC_DASHBOARD:
            return "public"
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            return user
        return None

    def authenticate(self, request: HttpRequest, key: str | None) -> Any:
        # Required by APIKeyCookie; __call__ above decides without it.
        return None


read_access = ReadAccess()
