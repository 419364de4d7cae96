"""The dashboard page: a server-rendered shell whose JavaScript polls the API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET

from resourcemonitor.api.auth import role_of
from resourcemonitor.api.listing import DeviceFilter, list_devices
from resourcemonitor.api.models import Role
from resourcemonitor.api.summary import status_summary
from resourcemonitor.inventory.models import CheckMethod, Kind
from resourcemonitor.monitoring.status import STATUS_META, status_meta_json

# The first paint lists this many problems; the script takes over with the full list.
FIRST_PAINT_PROBLEMS = 50
POLL_MS = 2000
MODULES = [
    f"dashboard/js/{name}.js"
    for name in ("api", "dom", "drawer", "charts", "format", "poll", "store", "views", "structure")
]
# The device table's columns: the sort key views.js knows, and the header.
TABLE_COLUMNS = [
    ("name", "Device"),
    ("status", "Status"),
    ("site", "Site"),
    ("kind", "Kind"),
    ("address", "Address"),
    ("latency", "Latency"),
    ("since", "Since"),
    ("error", "Last error"),
]
# A full reload now and then catches what "changed since" cannot see (deleted devices,
# results replayed late from a collector's spool).
FULL_REFRESH_MS = 5 * 60 * 1000


def readable_text_colour(background: str) -> str:
    """Black or white, whichever reads better on ``background`` (#rrggbb)."""
    red, green, blue = (int(background[i : i + 2], 16) / 255 for i in (1, 3, 5))

    def linear(channel: float) -> float:
        return channel / 12.92 if channel <= 0.03928 else ((channel + 0.055) / 1.055) ** 2.4

    luminance = 0.2126 * linear(red) + 0.7152 * linear(green) + 0.0722 * linear(blue)
    return "#111" if luminance > 0.35 else "#fff"


@require_GET
@cache_control(public=True, max_age=300)
def status_css(request: HttpRequest) -> HttpResponse:
    """The status colours as CSS custom properties, from STATUS_META (their one definition).

    ``--st-<status>`` and ``--st-<status>-fg`` on :root, ``--c``/``--c-fg`` on every
    element with a ``data-status`` and ``--last`` on every ``data-last-status``, so the
    stylesheet never names a colour twice.
    """
    root = []
    rules = []
    for status, meta in STATUS_META.items():
        root.append(f"  --st-{status}: {meta.colour};")
        root.append(f"  --st-{status}-fg: {readable_text_colour(meta.colour)};")
        rules.append(
            f'[data-status="{status}"] {{ --c: var(--st-{status}); '
            f"--c-fg: var(--st-{status}-fg); }}"
        )
        # Stale devices show as unknown, tinted with what they were last seen as.
        rules.append(f'[data-last-status="{status}"] {{ --last: var(--st-{status}); }}')
    css = ":root {\n" + "\n".join(root) + "\n}\n" + "\n".join(rules) + "\n"
    return HttpResponse(css, content_type="text/css; charset=utf-8")


def _optional_url(name: str) -> str | None:
    """A page another part of the product adds, or None while it does not exist."""
    try:
        return reverse(name)
    except NoReverseMatch:
        return None


def _can_read(request: HttpRequest) -> bool:
    return bool(settings.RESMON_PUBLIC_DASHBOARD or request.user.is_authenticated)


def duration(seconds: float) -> str:
    """4 m 12 s, 3 h 5 m, 2 d 4 h: the same words as the script's formatDuration()."""
    total = max(0, int(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} m"
    if minutes:
        return f"{minutes} m {secs} s"
    return f"{secs} s"


def _problem_row(item: dict[str, Any], now: datetime) -> dict[str, Any]:
    meta = STATUS_META[item["status"]]
    since = parse_datetime(item["since"]) if item["since"] else None
    return {
        **item,
        "status_label": meta.label,
        "status_icon": meta.icon,
        "kind_label": Kind(item["kind"]).label if item["kind"] in Kind.values else item["kind"],
        "since_text": duration((now - since).total_seconds()) if since else "",
    }


@require_GET
def index(request: HttpRequest) -> HttpResponse:
    if not _can_read(request):
        return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
    now = timezone.now()
    summary = status_summary(now)
    problems = list_devices(DeviceFilter(problems=True), now=now, limit=FIRST_PAINT_PROBLEMS)
    statuses = [
        {
            "value": str(status),
            "label": meta.label,
            "icon": meta.icon,
            "count": summary["counts"][str(status)],
            "problem": meta.problem,
        }
        for status, meta in sorted(STATUS_META.items(), key=lambda pair: pair[1].rank)
    ]
    config: dict[str, Any] = {
        "api": reverse("api-v1:api-root"),
        "pollMs": POLL_MS,
        "fullRefreshMs": FULL_REFRESH_MS,
        "statusMeta": status_meta_json(),
        "statusOrder": [status["value"] for status in statuses],
        "kinds": dict(Kind.choices),
        "checkMethods": dict(CheckMethod.choices),
        "loginUrl": settings.LOGIN_URL,
        "faviconUrl": reverse("dashboard:favicon"),
        "incidentsUrl": _optional_url("alerts:incidents"),
    }
    can_edit = role_of(request.user) in {Role.OPERATOR, Role.ADMIN}
    if can_edit:
        config["manage"] = {
            "edit": reverse("dashboard:device-edit", args=[0]),
            "pause": reverse("dashboard:device-pause", args=[0]),
            "delete": reverse("dashboard:device-delete", args=[0]),
        }
    context = {
        "can_edit": can_edit,
        "modules": MODULES,
        "table_columns": TABLE_COLUMNS,
        "config": config,
        "statuses": statuses,
        "summary": summary,
        "collector": summary["collector"],
        "problems": [_problem_row(item, now) for item in problems.items],
        "problem_count": problems.count,
    }
    return render(request, "dashboard/index.html", context)


_FAVICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">'
    '<rect width="32" height="32" rx="7" fill="#1f2a37"/>'
    '<path d="M4 17h6l3-8 5 15 3-7h7" fill="none" stroke="{line}" stroke-width="2.6" '
    'stroke-linecap="round" stroke-linejoin="round"/>{badge}</svg>'
)
_FAVICON_BADGE = (
    '<circle cx="22" cy="10" r="10" fill="{colour}" stroke="#fff" stroke-width="1.5"/>'
    '<text x="22" y="14.5" font-size="{size}" font-family="Arial,sans-serif" '
    'font-weight="700" text-anchor="middle" fill="#fff">{text}</text>'
)


@require_GET
@cache_control(public=True, max_age=86400)
def favicon(request: HttpRequest) -> HttpResponse:
    """The icon with the number of problems on it (``?problems=N``), for the tab bar."""
    try:
        problems = max(0, min(int(request.GET.get("problems", "0")), 10**9))
    except ValueError:
        problems = 0
    badge = ""
    if problems:
        text = str(problems) if problems < 100 else "99+"
        size = {1: 13, 2: 11}.get(len(text), 8)
        badge = _FAVICON_BADGE.format(colour=STATUS_META["down"].colour, size=size, text=text)
    line = STATUS_META["down"].colour if problems else STATUS_META["up"].colour
    svg = _FAVICON.format(line=line, badge=badge)
    return HttpResponse(svg, content_type="image/svg+xml")
