"""The status vocabulary, defined once (like NetBox's choices.py).

Templates, the API, the dashboard's JavaScript (through the API) and /metrics all read
labels, colours, icons and the problem order from here.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import models


class Status(models.TextChoices):
    UP = "up", "Up"
    DEGRADED = "degraded", "Degraded"
    DOWN = "down", "Down"
    UNREACHABLE = "unreachable", "Unreachable"
    UNKNOWN = "unknown", "Unknown"
    MAINTENANCE = "maintenance", "Maintenance"


@dataclass(frozen=True)
class StatusMeta:
    label: str
    colour: str
    # A glyph that reads without colour: status is never shown by colour alone.
    icon: str
    # Lower sorts first: problems before healthy devices.
    rank: int
    problem: bool
    # The value exported as resmon_device_up in /metrics.
    metric_value: int


STATUS_META: dict[str, StatusMeta] = {
    Status.DOWN: StatusMeta("Down", "#d62728", "✖", 0, True, 0),
    Status.UNREACHABLE: StatusMeta("Unreachable", "#8c564b", "⊘", 1, True, 0),
    Status.DEGRADED: StatusMeta("Degraded", "#e8a400", "▲", 2, True, 1),
    Status.UNKNOWN: StatusMeta("Unknown", "#7f7f7f", "?", 3, False, 0),
    Status.MAINTENANCE: StatusMeta("Maintenance", "#1f77b4", "⚙", 4, False, 1),
    Status.UP: StatusMeta("Up", "#2ca02c", "●", 5, False, 1),
}

PROBLEM_STATUSES = frozenset(s for s, meta in STATUS_META.items() if meta.problem)


def status_meta_json() -> dict[str, dict[str, object]]:
    """The table above as plain data for the page's JavaScript."""
    return {
        str(status): {
            "label": meta.label,
            "colour": meta.colour,
            "icon": meta.icon,
            "rank": meta.rank,
            "problem": meta.problem,
        }
        for status, meta in STATUS_META.items()
    }
