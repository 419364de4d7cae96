"""/healthz: is this web process able to read storage? For load balancers and systemd."""

from __future__ import annotations

import logging
import time

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from resourcemonitor import __version__

logger = logging.getLogger(__name__)


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """200 while a trivial query answers; 503 otherwise. The collector's health is not
    the web's: a dead collector is shown on the dashboard, not by failing this check."""
    started = time.perf_counter()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        logger.warning("healthz: database check failed: %s", exc)
        return JsonResponse(
            {"ok": False, "database": "error", "error": str(exc)[:200], "version": __version__},
            status=503,
        )
    return JsonResponse(
        {
            "ok": True,
            "database": "ok",
            "database_ms": round((time.perf_counter() - started) * 1000, 2),
            "version": __version__,
        }
    )
