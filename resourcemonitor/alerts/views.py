"""The incidents and channels pages: server-rendered shells, the incident list polls JSON."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.db import transaction
from django.db.models import Avg, Count, F, Q, Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from resourcemonitor.alerts.forms import ChannelForm, ChannelRoutingForm
from resourcemonitor.alerts.models import Channel, Incident
from resourcemonitor.api.auth import has_role, role_required

QUALITY_DAYS = 30


def _config(request: HttpRequest) -> dict[str, Any]:
    return {
        "api": reverse("api-v1:api-root"),
        "loginUrl": settings.LOGIN_URL,
        "canAck": has_role(request.user, "operator"),
        "pollMs": 5000,
    }


def alert_quality(*, days: int = QUALITY_DAYS) -> dict[str, Any]:
    """Is alerting worth trusting: pages per incident, flaps, time to ack and resolve."""
    since = timezone.now() - timedelta(days=days)
    recent = Incident.objects.filter(opened_at__gte=since)
    totals = recent.aggregate(
        incidents=Count("id", distinct=True),
        notified=Count("id", filter=Q(notified_at__isnull=False), distinct=True),
        suppressed=Count("id", filter=~Q(suppressed_reason=""), distinct=True),
        flaps=Sum("flap_count"),
        mtta=Avg(F("acknowledged_at") - F("opened_at")),
        mttr=Avg(F("resolved_at") - F("opened_at")),
    )
    sent = recent.aggregate(n=Count("notifications", filter=Q(notifications__status="sent")))["n"]
    noisy = list(
        recent.values("device_id", "device__name")
        .annotate(incidents=Count("id", distinct=True), flaps=Sum("flap_count"))
        .order_by("-incidents", "-flaps", "device__name")[:5]
    )

    def seconds(value: Any) -> float | None:
        return value.total_seconds() if isinstance(value, timedelta) else None

    return {
        "days": days,
        "incidents": totals["incidents"] or 0,
        "notified": totals["notified"] or 0,
        "suppressed": totals["suppressed"] or 0,
        "flaps": totals["flaps"] or 0,
        "sent": sent or 0,
        "per_incident": (sent / totals["notified"]) if totals["notified"] else 0.0,
        "mtta_s": seconds(totals["mtta"]),
        "mttr_s": seconds(totals["mttr"]),
        "noisy": noisy,
    }


@require_GET
def incidents(request: HttpRequest) -> HttpResponse:
    if not (settings.RESMON_PUBLIC_DASHBOARD or request.user.is_authenticated):
        return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
    context = {"config": _config(request), "quality": alert_quality()}
    return render(request, "alerts/incidents.html", context)


@role_required("operator")
@require_http_methods(["GET", "POST"])
def channels(request: HttpRequest) -> HttpResponse:
    form = ChannelForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():  # the channel and its site/tag filters, or nothing
            channel = form.save()
        messages.success(request, f"Channel {channel.name!r} added.")
        return redirect("alerts:channels")
    rows = Channel.objects.prefetch_related("sites", "tags").annotate(
        sent=Count("notifications", filter=Q(notifications__status="sent")),
        failed=Count("notifications", filter=Q(notifications__status="failed")),
    )
    status = 422 if request.method == "POST" else 200
    context = {"config": _config(request), "form": form, "channels": rows}
    return render(request, "alerts/channels.html", context, status=status)


@role_required("operator")
@require_http_methods(["GET", "POST"])
def channel_edit(request: HttpRequest, channel_id: int) -> HttpResponse:
    """Change a channel in place (its notifications and counters stay with it). Only
    admins see and change the target: it carries the channel's secrets."""
    channel = get_object_or_404(Channel, pk=channel_id)
    form_class = ChannelForm if has_role(request.user, "admin") else ChannelRoutingForm
    form = form_class(request.POST or None, instance=channel)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            channel = form.save()
        messages.success(request, f"Channel {channel.name!r} saved.")
        return redirect("alerts:channels")
    status = 422 if request.method == "POST" else 200
    context = {"config": _config(request), "form": form, "channel": channel}
    return render(request, "alerts/channel_edit.html", context, status=status)


@role_required("operator")
@require_POST
def channel_test(request: HttpRequest, channel_id: int) -> HttpResponse:
    channel = get_object_or_404(Channel, pk=channel_id)
    error = channel.send(
        title="Resource Monitor test notification",
        body=f"A test from {request.user.get_username()}: this channel works.",
    )
    if error is None:
        messages.success(request, f"Test sent to {channel.name!r}.")
    else:
        messages.error(request, f"Test to {channel.name!r} failed: {error}")
    return redirect("alerts:channels")


@role_required("operator")
@require_POST
def channel_delete(request: HttpRequest, channel_id: int) -> HttpResponse:
    channel = get_object_or_404(Channel, pk=channel_id)
    channel.delete()
    messages.success(request, f"Channel {channel.name!r} deleted.")
    return redirect("alerts:channels")
