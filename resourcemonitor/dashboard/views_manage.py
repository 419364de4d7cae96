"""Self-service pages: add, edit, pause and delete devices and maintenance windows.

Operators only (the role helper in resourcemonitor/api/auth.py); every change is one
transaction, so a failed save leaves nothing half-written (a device without its tags, a
window without its devices).
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.db import transaction
from django.db.models import Count
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from resourcemonitor.api.auth import role_required
from resourcemonitor.dashboard.forms import DeviceForm, MaintenanceWindowForm
from resourcemonitor.inventory.models import Device, MaintenanceWindow

OPERATOR = "operator"


def _edit(
    request: HttpRequest,
    form_class: type[ModelForm],
    instance: Any,
    *,
    title: str,
    cancel_url: str,
    done_url: str,
    **save_kwargs: Any,
) -> HttpResponse:
    form = form_class(request.POST or None, instance=instance)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            saved = form.save(commit=False)
            for name, value in save_kwargs.items():
                setattr(saved, name, value)
            saved.save()
            form.save_m2m()
        messages.success(request, f"Saved “{saved}”.")
        return redirect(done_url)
    status = 400 if request.method == "POST" else 200
    context = {"form": form, "title": title, "cancel_url": cancel_url, "instance": instance}
    return render(request, "dashboard/manage_form.html", context, status=status)


def _device_url(device: Device) -> str:
    return f"{reverse('dashboard:index')}?device={device.pk}"


@role_required(OPERATOR)
@require_http_methods(["GET", "POST"])
def device_add(request: HttpRequest) -> HttpResponse:
    device = Device()
    response = _edit(
        request,
        DeviceForm,
        device,
        title="Add a device",
        cancel_url=reverse("dashboard:index"),
        done_url=reverse("dashboard:index"),
    )
    if device.pk and response.status_code == 302:
        return redirect(_device_url(device))
    return response


@role_required(OPERATOR)
@require_http_methods(["GET", "POST"])
def device_edit(request: HttpRequest, device_id: int) -> HttpResponse:
    device = get_object_or_404(Device, pk=device_id)
    return _edit(
        request,
        DeviceForm,
        device,
        title=f"Edit {device.name}",
        cancel_url=_device_url(device),
        done_url=_device_url(device),
    )


@role_required(OPERATOR)
@require_POST
def device_pause(request: HttpRequest, device_id: int) -> HttpResponse:
    """Pause checks, or resume them (``enabled`` in the form: "0" or "1")."""
    device = get_object_or_404(Device, pk=device_id)
    enabled = request.POST.get("enabled")
    if enabled not in {"0", "1"}:
        messages.error(request, "Pause or resume: the form sent no valid choice.")
        return redirect(_device_url(device))
    device.enabled = enabled == "1"
    device.save(update_fields=["enabled", "updated_at"])
    messages.success(request, f"{'Resumed' if device.enabled else 'Paused'} checks of “{device}”.")
    return redirect(_device_url(device))


@role_required(OPERATOR)
@require_http_methods(["GET", "POST"])
def device_delete(request: HttpRequest, device_id: int) -> HttpResponse:
    device: Any = get_object_or_404(
        Device.objects.annotate(children_count=Count("children")), pk=device_id
    )
    if request.method == "POST":
        name = device.name
        device.delete()
        messages.success(request, f"Deleted “{name}” and its history.")
        return redirect("dashboard:index")
    return render(
        request,
        "dashboard/manage_delete.html",
        {
            "object": device,
            "what": "device",
            "consequence": (
                f"Its state, samples and events go with it. "
                f"{device.children_count} device(s) depending on it will have no parent."
            ),
            "cancel_url": _device_url(device),
        },
    )


@role_required(OPERATOR)
@require_http_methods(["GET"])
def maintenance_list(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    windows = list(
        MaintenanceWindow.objects.annotate(device_count=Count("devices", distinct=True))
        .prefetch_related("sites", "tags")
        .order_by("-starts_at")[:500]
    )
    for window in windows:
        window.active_now = window.is_active(now)  # type: ignore[attr-defined]
    return render(request, "dashboard/maintenance_list.html", {"windows": windows})


@role_required(OPERATOR)
@require_http_methods(["GET", "POST"])
def maintenance_add(request: HttpRequest) -> HttpResponse:
    back = reverse("dashboard:maintenance")
    return _edit(
        request,
        MaintenanceWindowForm,
        MaintenanceWindow(),
        title="Plan maintenance",
        cancel_url=back,
        done_url=back,
        created_by=request.user,
    )


@role_required(OPERATOR)
@require_http_methods(["GET", "POST"])
def maintenance_edit(request: HttpRequest, window_id: int) -> HttpResponse:
    window = get_object_or_404(MaintenanceWindow, pk=window_id)
    back = reverse("dashboard:maintenance")
    return _edit(
        request,
        MaintenanceWindowForm,
        window,
        title=f"Edit {window.name}",
        cancel_url=back,
        done_url=back,
    )


@role_required(OPERATOR)
@require_http_methods(["GET", "POST"])
def maintenance_delete(request: HttpRequest, window_id: int) -> HttpResponse:
    window = get_object_or_404(MaintenanceWindow, pk=window_id)
    if request.method == "POST":
        name = window.name
        window.delete()
        messages.success(request, f"Deleted maintenance window “{name}”.")
        return redirect("dashboard:maintenance")
    return render(
        request,
        "dashboard/manage_delete.html",
        {
            "object": window,
            "what": "maintenance window",
            "consequence": "Notifications for its devices are no longer suppressed during it.",
            "cancel_url": reverse("dashboard:maintenance"),
        },
    )
