"""POST /api/v1/ingest: push devices report their own results (one, or a batch).

The body is parsed and validated here by hand (``monitoring.ingest.parse_payload``), not
by a ninja schema, so every bad input gets one JSON answer naming the field
(``{"detail": ..., "field": "items[3].latency_ms"}``), including a body that is not JSON.

Auth: an API token with the ``ingest`` scope (``Authorization: Bearer rmt_…``), or a
logged-in operator's session with a CSRF token (``api.auth.TokenOrSession``). Never the
public dashboard's anonymous reader.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from ninja import Router

from resourcemonitor.api.auth import TokenOrSession
from resourcemonitor.monitoring.ingest import IngestError, parse_payload, record_reports
from resourcemonitor.security import check_ingest_rate

router = Router(tags=["ingest"])


def _error(status: int, field: str, detail: str) -> HttpResponse:
    body = json.dumps({"detail": f"{field}: {detail}", "field": field})
    return HttpResponse(body, status=status, content_type="application/json")


@router.post(
    "/ingest",
    auth=TokenOrSession(scope="ingest"),
    summary="Report results of push devices",
    description=(
        'One report `{"device": name or id, "ok": bool, "latency_ms": number?, "ts": '
        'ISO 8601?, "metrics": {name: number}?, "error": text?}`, or a batch '
        '`{"items": [...]}` of at most 1000. All or nothing: a bad report rejects the '
        "batch with a 4xx naming the field. Only devices with check method `push`."
    ),
    response={
        200: dict[str, Any],
        400: dict[str, str],
        404: dict[str, str],
        429: dict[str, str],
    },
)
def ingest(request: HttpRequest) -> HttpResponse:
    try:
        raw = request.body
    except RequestDataTooBig:
        return _error(413, "body", "too large")
    if not raw:
        return _error(400, "body", "empty: send a JSON report or batch")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        return _error(400, "body", f"not valid JSON ({exc})"[:200])
    try:
        reports = parse_payload(data)
        token = getattr(getattr(request, "auth", None), "token", None)  # ninja sets .auth
        if token is not None:
            # Each report costs one unit, so a batch is no way around the limit.
            check_ingest_rate(token.pk, cost=float(len(reports)))
        batch = isinstance(data, list) or (isinstance(data, dict) and "items" in data)
        result = record_reports(reports=reports, batch=batch)
    except IngestError as exc:
        return _error(exc.status, exc.field, exc.message)
    body = {
        "accepted": result.accepted,
        "samples": result.samples,
        "duplicates": result.duplicates,
        "out_of_order": result.out_of_order,
        "events": result.events,
        "metrics": result.metrics,
        "statuses": result.statuses,
    }
    return HttpResponse(json.dumps(body), content_type="application/json")
