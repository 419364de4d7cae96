"""The SLO page (/slo/) and its CSV export (/slo.csv).

A server-rendered first paint of the SLO table; ``static/dashboard/js/slo.js`` then
re-reads ``GET /api/v1/slo`` when the window or group changes, filters rows, and draws a
budget burn-down chart for a row on demand.
"""

from __future__ import annotations

import csv
from typing import Any

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from resourcemonitor.api.slo import slo_table
from resourcemonitor.dashboard.views import duration
from resourcemonitor.monitoring import slo

POLL_MS = 60_000
CSV_COLUMNS = (
    "kind_of_row",
    "id",
    "name",
    "site",
    "kind",
    "window",
    "target",
    "sli",
    "coverage",
    "checks",
    "failed",
    "budget_remaining_pct",
    "budget_remaining_min",
    "exhausted_in_s",
    *(f"burn_{name}" for name in slo.BURN_WINDOWS),
)


def _can_read(request: HttpRequest) -> bool:
    return bool(settings.RESMON_PUBLIC_DASHBOARD or request.user.is_authenticated)


def _bad(field: str, message: str) -> JsonResponse:
    # The same shape as the API's 422s.
    detail = [{"type": "value_error", "loc": ["query", field], "msg": message}]
    return JsonResponse({"detail": detail}, status=422)


def _params(request: HttpRequest) -> tuple[str, str | None] | JsonResponse:
    window = request.GET.get("window", "30d")
    if window not in slo.WINDOW_NAMES:
        return _bad("window", f"unknown window; one of {', '.join(slo.WINDOW_NAMES)}")
    group = request.GET.get("group", "").strip() or None
    if group:
        try:
            slo.parse_group(group)
        except slo.GroupError as error:
            return _bad("group", str(error))
    return window, group


@require_GET
def slo_page(request: HttpRequest) -> HttpResponse:
    if not _can_read(request):
        return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
    params = _params(request)
    if isinstance(params, JsonResponse):
        return params
    window, group = params
    table = slo_table(window, group, None, timezone.now())
    for item in (*table["groups"], *table["items"]):
        seconds = item["exhausted_in_s"]
        item["exhausted_text"] = (
            "—" if seconds is None else "spent" if seconds <= 0 else duration(seconds)
        )
    config: dict[str, Any] = {
        "api": reverse("api-v1:api-root"),
        "csv": reverse("dashboard:slo-csv"),
        "pollMs": POLL_MS,
        "window": window,
        "group": group or "",
        "loginUrl": settings.LOGIN_URL,
    }
    context = {
        "config": config,
        "table": table,
        "windows": slo.WINDOW_NAMES,
        "window": window,
        "group": group or "",
    }
    return render(request, "dashboard/slo.html", context)


def _csv_row(kind: str, item: dict[str, Any], window: str) -> list[Any]:
    rates = item["burn_rates"]
    return [
        kind,
        item.get("id", ""),
        item["name"],
        item.get("site") or "",
        item.get("kind", ""),
        window,
        item["target"],
        item["sli"],
        item["coverage"],
        item["checks"],
        item["failed"],
        item["budget_remaining_pct"],
        item["budget_remaining_min"],
        item["exhausted_in_s"],
        *(rates.get(name) for name in slo.BURN_WINDOWS),
    ]


@require_GET
def slo_csv(request: HttpRequest) -> HttpResponse:
    """The SLO table as CSV: groups first, then devices worst first; empty cell = null."""
    if not _can_read(request):
        return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
    params = _params(request)
    if isinstance(params, JsonResponse):
        return params
    window, group = params
    table = slo_table(window, group, None, timezone.now())
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    stamp = timezone.now().strftime("%Y%m%dT%H%MZ")
    response["Content-Disposition"] = f'attachment; filename="slo-{window}-{stamp}.csv"'
    writer = csv.writer(response)
    writer.writerow(CSV_COLUMNS)
    for item in table["groups"]:
        writer.writerow(_csv_row("group", item, window))
    for item in table["items"]:
        writer.writerow(_csv_row("device", item, window))
    return response
