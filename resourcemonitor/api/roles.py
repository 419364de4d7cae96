"""The role groups (viewer, operator, admin) and the Django permissions each one holds.

Role checks in code use group membership (see auth.py); these permissions are for the
Django admin, so an operator sees and edits there what the API lets them do. Synced after
every ``migrate``, so models added later (incidents, channels) join the right groups.
"""

from __future__ import annotations

from typing import Any

# App labels whose models viewers and operators see (tokens and lock-outs: admins only).
PRODUCT_APPS = ("inventory", "monitoring", "alerts")
# What an operator may change beyond reading: the inventory's devices (the self-service
# pages add, edit, pause and delete them), maintenance windows and incidents (ack).
# Sites, tags, feeds, channels, tokens and users stay with admins.
OPERATOR_CODENAMES = frozenset(
    {
        "add_maintenancewindow",
        "change_maintenancewindow",
        "delete_maintenancewindow",
        "add_device",
        "change_device",
        "delete_device",
        "change_incident",
    }
)


def sync_role_groups(*, group_model: Any, permission_model: Any) -> None:
    """Create the three groups and give each its permissions (idempotent)."""
    product = permission_model.objects.filter(content_type__app_label__in=PRODUCT_APPS)
    viewer = list(product.filter(codename__startswith="view_"))
    operator = viewer + list(product.filter(codename__in=OPERATOR_CODENAMES))
    everything = list(permission_model.objects.all())
    for name, permissions in (("viewer", viewer), ("operator", operator), ("admin", everything)):
        group, _ = group_model.objects.get_or_create(name=name)
        group.permissions.set(permissions)


def sync_after_migrate(sender: Any, **kwargs: Any) -> None:
    from django.contrib.auth.models import Group, Permission

    sync_role_groups(group_model=Group, permission_model=Permission)
