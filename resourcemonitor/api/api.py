"""The REST API, version 1: one NinjaAPI, its routers, and errors that are always JSON."""

from __future__ import annotations

import logging

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse

from resourcemonitor.api import (
    devices,
    events,
    incidents,
    ingest,
    metrics_series,
    slo,
    summary,
    system,
    timetravel,
    tokens,
)
from resourcemonitor.api.auth import SecuredNinjaAPI, read_access

logger = logging.getLogger(__name__)

api = SecuredNinjaAPI(
    title="Resource Monitor API",
    version="1",
    description=(
        "Read the live state of every monitored device. Open to anyone when the server "
        "runs with RESMON_PUBLIC_DASHBOARD=1; otherwise log in (session cookie) first, "
        "or send an API token: `Authorization: Bearer rmt_...`. Writes always need one."
    ),
    urls_namespace="api-v1",
    auth=read_access,
)
# Before devices: its fixed path must win over /devices/{device_id}.
api.add_router("", timetravel.router)
api.add_router("", devices.router)
api.add_router("", metrics_series.router)
api.add_router("", events.router)
api.add_router("", summary.router)
api.add_router("", ingest.router)
api.add_router("", tokens.router)
api.add_router("", system.router)
api.add_router("", slo.router)
api.add_router("", incidents.router)


@api.exception_handler(RequestDataTooBig)
def body_too_big(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
    # A chunked body has no Content-Length for the middleware to refuse up front.
    return api.create_response(request, {"detail": "request body too large"}, status=413)


@api.exception_handler(Exception)
def unexpected_error(request: HttpRequest, exc: Exception) -> HttpResponse:
    # A bug must still answer in JSON: clients (and the dashboard) parse every reply.
    logger.exception("Unhandled error in %s %s", request.method, request.path)
    return api.create_response(
        request, {"detail": "Internal server error; the details are in the server log."}, status=500
    )
