"""Admin for the inventory: sites, tags, feeds and devices.

The device list shows each device's current status from ``DeviceState`` in the same
query (``list_select_related``), so a page of devices costs a fixed number of queries.
``Device.clean()`` runs through the ModelForm's ``full_clean()``, so a dependency cycle
is a form error on ``parent``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.contrib import admin, messages
from django.core.exceptions import ObjectDoesNotExist
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html

from resourcemonitor.inventory.models import Device, Feed, Site, Tag
from resourcemonitor.monitoring.status import STATUS_META, Status


@admin.register(Site)
class SiteAdmin(admin.ModelAdmin):
    list_display = ("name", "description", "device_count")
    search_fields = ("name",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Site]:
        return super().get_queryset(request).annotate(device_total=Count("devices"))

    @admin.display(description="devices", ordering="device_total")
    def device_count(self, site: Site) -> int:
        return int(getattr(site, "device_total", 0))


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ("name", "device_count")
    search_fields = ("name",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Tag]:
        return super().get_queryset(request).annotate(device_total=Count("devices"))

    @admin.display(description="devices", ordering="device_total")
    def device_count(self, tag: Tag) -> int:
        return int(getattr(tag, "device_total", 0))


def _set_enabled(
    model_admin: admin.ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[Any], enabled: bool
) -> None:
    # update() skips auto_now, and the collector's inventory refresh looks at
    # updated_at for devices: set it by hand so a pause takes effect.
    fields: dict[str, Any] = {"enabled": enabled}
    if queryset.model is Device:
        fields["updated_at"] = timezone.now()
    count = queryset.update(**fields)
    noun = (
        queryset.model._meta.verbose_name
        if count == 1
        else queryset.model._meta.verbose_name_plural
    )
    verb = "Resumed" if enabled else "Paused"
    model_admin.message_user(request, f"{verb} {count} {noun}.", messages.SUCCESS)


@admin.action(description="Pause checks of the selected %(verbose_name_plural)s")
def pause(
    model_admin: admin.ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[Any]
) -> None:
    _set_enabled(model_admin, request, queryset, False)


@admin.action(description="Resume checks of the selected %(verbose_name_plural)s")
def resume(
    model_admin: admin.ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[Any]
) -> None:
    _set_enabled(model_admin, request, queryset, True)


@admin.register(Feed)
class FeedAdmin(admin.ModelAdmin):
    list_display = ("url", "enabled", "interval_s", "device_count", "last_ok_at", "last_error")
    list_filter = ("enabled",)
    search_fields = ("url",)
    readonly_fields = ("created_at", "last_polled_at", "last_ok_at", "last_error", "device_count")
    actions = (pause, resume)


class StatusFilter(admin.SimpleListFilter):
    """Filter by current status; a device with no state row yet counts as unknown."""

    title = "status"
    parameter_name = "status"

    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]
    ) -> list[tuple[str, str]]:
        return [(str(status), STATUS_META[status].label) for status in Status]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value is None:
            return queryset
        if value == Status.UNKNOWN:
            return queryset.filter(Q(state__status=value) | Q(state__isnull=True))
        return queryset.filter(state__status=value)


@admin.register(Device)
class DeviceAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "status",
        "address",
        "kind",
        "site",
        "parent",
        "check_summary",
        "tag_list",
        "enabled",
    )
    list_display_links = ("name",)

    class Media:
        # The status colours without inline styles (the CSP refuses them).
        css: ClassVar = {"all": ("/status.css", "inventory/admin.css")}

    # "state" is the reverse one-to-one from DeviceState: joined, not one query a row.
    list_select_related = ("site", "parent", "state")
    list_filter = (StatusFilter, "kind", "site", "check_method", "enabled", "tags")
    search_fields = ("name", "address")
    autocomplete_fields = ("parent", "site", "tags", "feed")
    # feed stays editable: Device.clean() reports "a feed device needs its feed" on it,
    # and Django's form cannot show an error on a field it does not have (a 500).
    readonly_fields = ("created_at", "updated_at")
    actions = (pause, resume)
    list_per_page = 100
    fieldsets = (
        (None, {"fields": ("name", "address", "kind", "site", "parent", "tags", "enabled")}),
        (
            "Check",
            {
                "fields": (
                    "check_method",
                    ("check_port", "check_tls"),
                    "check_path",
                    "check_expect_status",
                    "check_body_match",
                    ("check_interval_s", "check_timeout_s"),
                )
            },
        ),
        (
            "Thresholds and SLO",
            {
                "fields": (
                    "fail_threshold",
                    "recover_threshold",
                    "latency_threshold_ms",
                    "slo_target",
                )
            },
        ),
        (
            "Feed",
            {
                "classes": ("collapse",),
                "description": (
                    "Devices of a JSON feed are created and updated by the feed, keyed by "
                    "their external id."
                ),
                "fields": ("feed", "external_id", "created_at", "updated_at"),
            },
        ),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Device]:
        # One query for all the tags of a page, not one per row.
        return super().get_queryset(request).prefetch_related("tags")

    @admin.display(description="status", ordering="state__status")
    def status(self, device: Device) -> str:
        try:
            state = device.state
        except ObjectDoesNotExist:  # never checked yet
            status, flapping = Status.UNKNOWN, False
        else:
            status, flapping = Status(state.status), state.flapping
        meta = STATUS_META[status]
        return format_html(
            '<span class="resmon-status" data-status="{}">{} {}</span>{}',
            status,
            meta.icon,
            meta.label,
            " (flapping)" if flapping else "",
        )

    @admin.display(description="check")
    def check_summary(self, device: Device) -> str:
        port = f":{device.check_port}" if device.check_port else ""
        path = device.check_path if device.check_method == "http" else ""
        return f"{device.check_method}{port}{path} every {device.check_interval_s:g} s"

    @admin.display(description="tags")
    def tag_list(self, device: Device) -> str:
        return ", ".join(tag.name for tag in device.tags.all())
