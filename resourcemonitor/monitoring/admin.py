"""Read-only admin for what the collector writes: device states, events and heartbeats.

The collector owns these rows; an edit here would be overwritten on its next write, or
worse, race it. So the admin shows them and changes nothing.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from resourcemonitor.monitoring.models import DeviceState, Event, GroupSlo, Heartbeat, SloTarget


class ReadOnlyAdmin(admin.ModelAdmin):
    """View permission only: no add, change or delete, whoever asks."""

    # Counting a table of millions on every page load is the slow part; skip it.
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(DeviceState)
class DeviceStateAdmin(ReadOnlyAdmin):
    list_display = (
        "device",
        "status",
        "flapping",
        "since",
        "last_check_at",
        "latency_ms",
        "consecutive_failures",
        "last_error",
    )
    list_select_related = ("device",)
    list_filter = ("status", "flapping")
    search_fields = ("device__name", "device__address")
    ordering = ("device__name",)


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ("at", "device", "from_status", "to_status", "message")
    list_select_related = ("device",)
    list_filter = ("to_status",)
    search_fields = ("device__name",)
    ordering = ("-at", "-id")


@admin.register(Heartbeat)
class HeartbeatAdmin(ReadOnlyAdmin):
    list_display = ("instance", "component", "version", "started_at", "last_seen_at", "stale")
    list_filter = ("component",)
    search_fields = ("instance",)
    ordering = ("component", "instance")

    @admin.display(boolean=True, description="stale")
    def stale(self, heartbeat: Heartbeat) -> bool:
        return heartbeat.is_stale


@admin.register(SloTarget)
class SloTargetAdmin(admin.ModelAdmin):
    """Targets per kind, site or tag; editable (unlike the collector's records above)."""

    list_display = ("__str__", "scope", "kind", "object_id", "target")
    list_filter = ("scope",)


@admin.register(GroupSlo)
class GroupSloAdmin(admin.ModelAdmin):
    """Group SLOs: "99.5 % of checks of the London access switches succeed"."""

    list_display = ("name", "site", "kind", "tag", "target", "latency_threshold_ms")
    list_filter = ("kind",)
    search_fields = ("name",)
