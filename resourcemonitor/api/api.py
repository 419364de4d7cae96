"""The REST API, version 1: one NinjaAPI, its routers, and errors that are always JSON."""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse
from ninja import NinjaAPI

from resourcemonitor.api import devices, events, summary
from resourcemonitor.api.auth import read_access

logger = logging.getLogger(__name__)

api = NinjaAPI(
    title="Resource Monitor API",
    version="1",
    description=(
        "Read the live state of every monitored device. Open to anyone when the server "
        "runs with RESMON_PUBLIC_DASHBOARD=1; otherwise log in (session cookie) first."
    ),
    urls_namespace="api-v1",
    auth=read_access,
)
api.add_router("", devices.router)
api.add_router("", events.router)
api.add_router("", summary.router)


@api.exception_handler(Exception)
def unexpected_error(request: HttpRequest, exc: Exception) -> HttpResponse:
    # A bug must still answer in JSON: clients (and the dashboard) parse every reply.
    logger.exception("Unhandled error in %s %s", request.method, request.path)
    return api.create_response(
        request, {"detail": "Internal server error; the details are in the server log."}, status=500
    )
