"""``resmon prune``: apply the retention of each tier now (the collector also does it hourly)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone

from resourcemonitor.monitoring.retention import prune


class Command(BaseCommand):
    help = (
        "Delete raw samples, device metrics and rollups older than their retention "
        "(RESMON_RETENTION_RAW_DAYS, _MINUTE_DAYS, _HOUR_DAYS; a 1-day rollup goes with "
        "the last of its hours)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        report = prune(now=timezone.now())
        self.stdout.write(
            f"pruned {report.raw} raw samples, {report.minute} 1-minute, {report.hour} 1-hour "
            f"and {report.day} 1-day rollups, {report.metrics} device metrics"
        )
