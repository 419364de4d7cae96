"""``resmon prune``: apply the retention of each tier now (the collector also does it hourly)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone

from resourcemonitor.monitoring.retention import prune


class Command(BaseCommand):
    help = (
        "Delete raw samples and rollups older than their retention "
        "(RESMON_RETENTION_RAW_DAYS, _MINUTE_DAYS, _HOUR_DAYS)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        report = prune(now=timezone.now())
        self.stdout.write(
            f"pruned {report.raw} raw samples, {report.minute} 1-minute and "
            f"{report.hour} 1-hour rollups"
        )
