"""Tokens and login lock-outs in the admin: see, revoke, clear. Never a token's secret."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from resourcemonitor.api.models import ApiToken, LoginThrottle


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "prefix", "scopes", "created_at", "last_used_at", "active")
    list_filter = ("scopes",)
    search_fields = ("name", "user__username", "prefix")
    list_select_related = ("user",)
    readonly_fields = (
        "name",
        "user",
        "prefix",
        "scopes",
        "created_at",
        "last_used_at",
        "revoked_at",
        "expires_at",
    )
    exclude = ("secret_hash",)
    actions = ("revoke",)

    @admin.display(boolean=True)
    def active(self, token: ApiToken) -> bool:
        return token.is_active

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A token is shown once, at creation: `resmon tokens create` or POST /api/v1/tokens.
        return False

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        revoked = sum(token.revoke() for token in queryset)
        self.message_user(request, f"Revoked {revoked} token(s).", messages.SUCCESS)


@admin.register(LoginThrottle)
class LoginThrottleAdmin(admin.ModelAdmin):
    """Delete a row to lift a lock-out at once."""

    list_display = ("key", "failures", "window_start", "locked_until")
    search_fields = ("key",)
    readonly_fields = ("key", "failures", "window_start", "locked_until")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
