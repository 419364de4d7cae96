"""The system page: the monitor's own components, from their heartbeats.

A server-rendered first paint; ``static/dashboard/js/system.js`` then polls
``GET /api/v1/system`` and redraws the table.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from resourcemonitor.api.system import system_status

POLL_MS = 5000


@require_GET
def system(request: HttpRequest) -> HttpResponse:
    if not (settings.RESMON_PUBLIC_DASHBOARD or request.user.is_authenticated):
        return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
    status = system_status()
    config: dict[str, Any] = {
        "api": reverse("api-v1:api-root"),
        "pollMs": POLL_MS,
        "staleAfterS": settings.RESMON_HEARTBEAT_STALE_S,
        "loginUrl": settings.LOGIN_URL,
    }
    return render(
        request,
        "dashboard/system.html",
        {"config": config, "status": status, "components": status["components"]},
    )
