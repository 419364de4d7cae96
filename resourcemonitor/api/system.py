"""The monitor's own components (GET /api/v1/system) and the web's readiness (/readyz).

Every process reports a ``Heartbeat`` row (collectors every 5 s, each web worker every
``RESMON_WEB_HEARTBEAT_S``, ingesters, the simulator when it has a database); this reads
them back for the system page and ``resmon system``.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from ninja import Router

from resourcemonitor import __version__
from resourcemonitor.monitoring.models import Heartbeat

logger = logging.getLogger(__name__)

router = Router(tags=["system"])

# Components silent for longer than this are left off the page (a restarted process has
# a new instance name; its old row is history, not a component).
SHOWN_FOR = timedelta(hours=1)
# The component name of the dead-man's switch's claim row (see monitoring.selfmon).
DEADMAN_COMPONENT = "deadman"
# Numbers a component may report in its heartbeat info, shown when present.
RATE_KEYS = ("checks_per_s", "messages_per_s", "requests_per_s", "samples_per_s")


def _number(info: dict[str, Any], *keys: str) -> float | None:
    for key in keys:
        value = info.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def component_row(beat: Heartbeat, now: datetime) -> dict[str, Any]:
    """One heartbeat as the system page shows it."""
    info = beat.info if isinstance(beat.info, dict) else {}
    age = max(0.0, (now - beat.last_seen_at).total_seconds())
    errors = info.get("recent_errors")
    return {
        "component": beat.component,
        "instance": beat.instance,
        "version": beat.version,
        "started_at": beat.started_at.isoformat(),
        "last_seen_at": beat.last_seen_at.isoformat(),
        "age_s": round(age, 1),
        "alive": age <= settings.RESMON_HEARTBEAT_STALE_S and not info.get(Heartbeat.STOPPED),
        "stopped": bool(info.get(Heartbeat.STOPPED)),
        "rate_per_s": _number(info, *RATE_KEYS),
        "lag_p99_ms": _number(info, "lag_p99_ms"),
        "spool": _number(info, "spool_depth", "held_batches"),
        "queue_depth": _number(info, "queue_depth", "pending"),
        "errors_total": _number(info, "errors_total", "bad_total"),
        "last_error": str(info.get("last_error") or ""),
        "recent_errors": [str(error) for error in errors][-5:] if isinstance(errors, list) else [],
        "info": info,
    }


def system_status(now: datetime | None = None) -> dict[str, Any]:
    """Every component seen within the last hour, live ones first; one query."""
    now = now or timezone.now()
    beats = Heartbeat.objects.filter(last_seen_at__gte=now - SHOWN_FOR).order_by(
        "component", "instance"
    )
    rows = [component_row(beat, now) for beat in beats]
    deadman = next((row for row in rows if row["component"] == DEADMAN_COMPONENT), None)
    components = [row for row in rows if row["component"] != DEADMAN_COMPONENT]
    components.sort(key=lambda row: (not row["alive"], row["component"], row["instance"]))
    alive_collectors = sum(
        1 for row in components if row["component"] == "collector" and row["alive"]
    )
    return {
        "now": now.isoformat(),
        "version": __version__,
        "stale_after_s": settings.RESMON_HEARTBEAT_STALE_S,
        "collectors_alive": alive_collectors,
        "components": components,
        "deadman": {
            "configured": bool(settings.RESMON_DEADMAN_URL),
            "last_ping_at": deadman["last_seen_at"] if deadman else None,
            "last_result": deadman["info"].get("result") if deadman else None,
        },
    }


@router.get("/system", summary="The monitor's own components, from their heartbeats")
def system(request: HttpRequest) -> dict[str, Any]:
    return system_status()


# -- /readyz -----------------------------------------------------------------------------

# Once every migration is applied it stays so until the next deploy restarts us: a
# positive answer is kept this long, so a 10 s readiness probe does not reread the
# migration files each time (a negative answer is never kept).
READY_CACHE_S = 60.0
_ready_lock = threading.Lock()
_ready_until = 0.0


def unapplied_migrations() -> list[str]:
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return [f"{migration.app_label}.{migration.name}" for migration, _ in plan]


def reset_ready_cache() -> None:
    global _ready_until
    with _ready_lock:
        _ready_until = 0.0


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """200 when this web process can serve: storage answers and every migration is
    applied; 503 with the reason otherwise (for load balancers and orchestrators:
    ``/healthz`` says "alive", this says "ready to take traffic")."""
    global _ready_until
    if time.monotonic() < _ready_until:
        return JsonResponse({"ready": True, "version": __version__, "cached": True})
    try:
        pending = unapplied_migrations()
    except DatabaseError as exc:
        logger.warning("readyz: database check failed: %s", exc)
        return JsonResponse(
            {"ready": False, "database": "error", "error": str(exc)[:200]}, status=503
        )
    if pending:
        return JsonResponse(
            {
                "ready": False,
                "database": "ok",
                "error": f"{len(pending)} migration(s) not applied; run `resmon migrate`",
                "unapplied": pending[:20],
            },
            status=503,
        )
    with _ready_lock:
        _ready_until = time.monotonic() + READY_CACHE_S
    return JsonResponse({"ready": True, "version": __version__, "cached": False})
