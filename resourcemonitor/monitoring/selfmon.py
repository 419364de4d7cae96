"""The web process watches itself: its heartbeat and the dead-man's switch.

Each web worker runs one daemon thread (started by ``resourcemonitor.wsgi``, so tests and
management commands never start it) that every ``RESMON_WEB_HEARTBEAT_S``:

1. writes a ``Heartbeat`` (component ``web``) with the requests it answered, so the system
   page shows every web worker like every collector;
2. when ``RESMON_DEADMAN_URL`` is set, pings it (HTTP GET) at most every
   ``RESMON_DEADMAN_INTERVAL_S`` across all workers and hosts — one of them claims each
   ping with a conditional UPDATE on a shared row, like an alert worker claims an event —
   but only while a collector is reporting: the switch says "the monitor is monitoring",
   so an external service (healthchecks.io, Dead Man's Snitch, Cronitor…) raises the alarm
   when the web, the database or every collector is down.

A thread rather than a middleware: an idle web (no one looking at the page) must beat too.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection
from django.utils import timezone

from resourcemonitor import __version__
from resourcemonitor.monitoring.models import Heartbeat

log = logging.getLogger(__name__)

DEADMAN_INSTANCE = "deadman"
DEADMAN_COMPONENT = "deadman"
DEADMAN_TIMEOUT_S = 10.0
# A claim is due a little before the full interval: beats are not perfectly periodic, and
# a ping 54 s after the last one is better than one 69 s after it.
CLAIM_SLACK = 0.9

_requests_total = 0
_started_pid: int | None = None
_deferred = False
_start_lock = threading.Lock()


def note_request() -> None:
    """Count one answered request (called by the request-metrics middleware)."""
    global _requests_total
    _requests_total += 1  # under the GIL; an occasional lost increment is harmless


def requests_total() -> int:
    return _requests_total


Fetch = Callable[[str, float], int]


def http_get(url: str, timeout_s: float) -> int:
    """GET ``url``; the HTTP status (raises ``OSError`` on network errors)."""
    request = urllib.request.Request(
        url, headers={"User-Agent": f"resourcemonitor/{__version__} (dead-man's switch)"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            response.read(1024)
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def claim_deadman_ping(now: datetime, interval_s: float) -> bool:
    """True for exactly one caller per interval, across every process sharing storage."""
    Heartbeat.objects.get_or_create(
        instance=DEADMAN_INSTANCE,
        defaults={
            "component": DEADMAN_COMPONENT,
            "version": __version__,
            "started_at": now,
            "last_seen_at": now - timedelta(days=1),
            "info": {},
        },
    )
    cutoff = now - timedelta(seconds=interval_s * CLAIM_SLACK)
    claimed = Heartbeat.objects.filter(instance=DEADMAN_INSTANCE, last_seen_at__lte=cutoff).update(
        last_seen_at=now
    )
    return claimed == 1


def deadman_step(
    *,
    now: datetime | None = None,
    url: str | None = None,
    interval_s: float | None = None,
    fetch: Fetch = http_get,
) -> str | None:
    """Ping the dead-man's switch if it is this process's turn. Returns what happened
    (``ok``, ``http 500``, ``error: …``, ``skipped: …``) or None when nothing was due."""
    url = settings.RESMON_DEADMAN_URL if url is None else url
    if not url:
        return None
    now = now or timezone.now()
    interval_s = settings.RESMON_DEADMAN_INTERVAL_S if interval_s is None else interval_s
    if not claim_deadman_ping(now, interval_s):
        return None
    if not Heartbeat.objects.alive("collector").exists():
        result = "skipped: no collector reporting"
        log.warning("dead-man's switch not pinged: no collector is reporting")
    else:
        try:
            status = fetch(url, DEADMAN_TIMEOUT_S)
            result = "ok" if 200 <= status < 300 else f"http {status}"
        except (OSError, ValueError) as exc:
            result = f"error: {exc}"[:200]
        if result != "ok":
            log.warning("dead-man's switch ping failed: %s", result)
    Heartbeat.objects.filter(instance=DEADMAN_INSTANCE).update(
        info={"result": result, "at": now.isoformat()}
    )
    return result


class WebHeartbeat:
    """The web worker's reporting thread; ``step()`` is one beat (tests call it)."""

    def __init__(self, *, period_s: float | None = None, instance: str | None = None) -> None:
        self.period_s = settings.RESMON_WEB_HEARTBEAT_S if period_s is None else period_s
        self.instance = instance or f"web@{os.uname().nodename}:{os.getpid()}"
        self._last = (time.monotonic(), requests_total())
        self._stop = threading.Event()
        self.thread: threading.Thread | None = None

    def info(self) -> dict[str, Any]:
        now, total = time.monotonic(), requests_total()
        last_at, last_total = self._last
        self._last = (now, total)
        return {
            "requests_total": total,
            "requests_per_s": round((total - last_total) / max(now - last_at, 1e-6), 2),
            "pid": os.getpid(),
        }

    def step(self) -> None:
        try:
            Heartbeat.beat(component="web", instance=self.instance, info=self.info())
            deadman_step()
        except DatabaseError as exc:
            log.warning("web heartbeat failed: %s", exc)
        finally:
            # This thread's own connection: never keep a broken or idle one around.
            connection.close()

    def run(self) -> None:
        while not self._stop.is_set():
            close_old_connections()
            self.step()
            self._stop.wait(self.period_s)

    def start(self) -> None:
        self.thread = threading.Thread(target=self.run, name="resmon-web-heartbeat", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self.thread is not None:
            self.thread.join(timeout=5)


def serve_from_workers() -> None:
    """Called by ``resmon web`` in gunicorn's master before it imports the WSGI module:
    the master serves no request, so only its workers beat (from gunicorn's post_fork)."""
    global _deferred
    _deferred = True


def start_web_heartbeat(*, in_worker: bool = False) -> WebHeartbeat | None:
    """Start the thread once per process; off when the period is 0. ``resmon web`` starts
    it in each gunicorn worker; any other WSGI server starts it when importing
    ``resourcemonitor.wsgi``."""
    global _started_pid
    if settings.RESMON_WEB_HEARTBEAT_S <= 0 or (_deferred and not in_worker):
        return None
    with _start_lock:
        if _started_pid == os.getpid():
            return None
        _started_pid = os.getpid()
    beat = WebHeartbeat()
    beat.start()
    return beat
