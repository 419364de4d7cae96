"""GET /metrics (Prometheus text format) and the web's request-latency middleware.

The page has two halves: what storage says (devices, latency histogram, failures,
components: ``resourcemonitor.monitoring.metrics``) and this web process's own request
latency, kept by prometheus-client. Under gunicorn with several workers each worker
keeps its own numbers; ``resmon web`` sets ``PROMETHEUS_MULTIPROC_DIR`` so that every
worker writes them to shared files and any worker's /metrics answers for all of them
(prometheus-client's multiprocess mode). Elsewhere (tests, one process) the numbers stay
in memory.

Who may scrape: anyone with read access to the API (see ``api.auth``): a bearer API token
with the read scope (what Prometheus uses), a logged-in session, or anyone while
``RESMON_PUBLIC_DASHBOARD`` is on.
"""

from __future__ import annotations

import atexit
import gzip
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from ninja.errors import AuthorizationError
from prometheus_client import CollectorRegistry, Histogram, generate_latest, multiprocess, values

from resourcemonitor.api.auth import read_access
from resourcemonitor.monitoring import metrics as storage_metrics
from resourcemonitor.monitoring import selfmon

logger = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Below this a scrape is sent as it is; gzip costs more than it saves.
GZIP_MIN_BYTES = 16 * 1024
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Request latency of this process. In multiprocess mode prometheus-client writes it to
# mmap files under PROMETHEUS_MULTIPROC_DIR (decided when prometheus_client is imported).
LOCAL_REGISTRY = CollectorRegistry(auto_describe=True)
REQUEST_SECONDS = Histogram(
    "resmon_http_request_duration_seconds",
    "Time the web took to answer a request, by route, method and status class.",
    ["handler", "method", "code"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=LOCAL_REGISTRY,
)


def prepare_multiprocess() -> str:
    """Called by ``resmon web`` before gunicorn forks its workers: a fresh directory for
    the workers' metric files (unless PROMETHEUS_MULTIPROC_DIR is already set, in which
    case whoever set it empties it between runs), removed when the server exits."""
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        os.makedirs(path, exist_ok=True)
        return path
    path = tempfile.mkdtemp(prefix="resmon-metrics-")
    os.environ[MULTIPROC_ENV] = path
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def gunicorn_post_fork(server: Any, worker: Any) -> None:
    """In each new worker: start its heartbeat, and write metric values to the shared
    files. prometheus-client
    picks its value class when first imported, and the master imported it (through the
    URL checks) before the directory existed."""
    values.ValueClass = values.get_value_class()
    selfmon.start_web_heartbeat(in_worker=True)


def gunicorn_child_exit(server: Any, worker: Any) -> None:
    multiprocess.mark_process_dead(worker.pid)


def multiprocess_dir() -> str | None:
    path = os.environ.get(MULTIPROC_ENV)
    return path if path and os.path.isdir(path) else None


def process_metrics_text() -> str:
    """This process's (or, in multiprocess mode, every worker's) request latency."""
    path = multiprocess_dir()
    if path is None:
        return generate_latest(LOCAL_REGISTRY).decode()
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=path)
    return generate_latest(registry).decode()


def handler_label(request: HttpRequest) -> str:
    """The URL pattern that answered, never the raw path: one series per route, not per
    device id or typo. Static files (answered by WhiteNoise before URL routing) are
    "static"; paths no pattern matched are "unmatched"."""
    match = getattr(request, "resolver_match", None)
    if match is None or match.route is None:
        if request.path.startswith(settings.STATIC_URL):
            return "static"
        return "unmatched"
    return "/" + match.route.lstrip("^/").rstrip("$")


class RequestMetricsMiddleware:
    """Times every request into ``resmon_http_request_duration_seconds``."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        selfmon.note_request()
        try:
            REQUEST_SECONDS.labels(
                handler_label(request), request.method or "", f"{response.status_code // 100}xx"
            ).observe(time.perf_counter() - started)
        except Exception:  # metrics must never break a request
            logger.exception("could not record request metrics")
        return response


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    try:
        principal = read_access(request)
    except AuthorizationError as exc:
        return JsonResponse({"detail": str(exc.message)}, status=403)
    if principal is None:
        return JsonResponse(
            {
                "detail": "Authentication required: send 'Authorization: Bearer <API token "
                "with the read scope>' or log in."
            },
            status=401,
        )
    body = (storage_metrics.render() + process_metrics_text()).encode()
    response = HttpResponse(content_type=CONTENT_TYPE)
    if len(body) >= GZIP_MIN_BYTES and "gzip" in request.headers.get("Accept-Encoding", ""):
        body = gzip.compress(body, compresslevel=1)
        response["Content-Encoding"] = "gzip"
    response["Vary"] = "Accept-Encoding"
    response.content = body
    return response
