"""``resmon alerts``: events → incidents → outbox → channels.

The loop is made of small single-step methods that tests call directly (like
healthchecks' ``sendalerts``). Several workers may run against one database: events and
outbox rows are claimed with a conditional UPDATE, so none is handled or sent twice.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import time
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, transaction
from django.db.models import F
from django.utils import timezone

from resourcemonitor.alerts import services
from resourcemonitor.alerts.models import (
    Delivery,
    Incident,
    Notification,
    NotificationKind,
    Problem,
)
from resourcemonitor.monitoring.models import DeviceState, Event, Heartbeat
from resourcemonitor.monitoring.status import Status

logger = logging.getLogger(__name__)

# A claim older than this belongs to a sender that died mid-send: the row is retried.
SEND_LEASE_S = 300.0
HEARTBEAT_EVERY_S = 5.0


class Command(BaseCommand):
    help = "Turn state changes into incidents and deliver their notifications."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--once", action="store_true", help="one pass, then exit")
        parser.add_argument(
            "--sleep", type=float, default=0.5, help="pause between idle passes (s)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not 0.01 <= options["sleep"] <= 60:
            raise CommandError(f"--sleep must be from 0.01 to 60 seconds (got {options['sleep']})")
        self.stopping = False
        self.instance = f"alerts@{socket.gethostname()}:{os.getpid()}"

        def request_stop(signum: int, frame: object) -> None:
            self.stopping = True

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        last_beat = 0.0
        while not self.stopping:
            if time.monotonic() - last_beat > HEARTBEAT_EVERY_S:
                Heartbeat.beat(component="alerts", instance=self.instance)
                last_beat = time.monotonic()
            try:
                busy = self.tick()
            except DatabaseError:
                # Storage away or locked for too long: log, pause, try again (the rows
                # are claimed in transactions, so nothing half-done is left behind).
                logger.exception("alerts: database error; retrying in 2 s")
                if options["once"]:
                    raise
                time.sleep(2.0)
                continue
            if options["once"]:
                break
            if not busy:
                time.sleep(max(0.05, options["sleep"]))

    # --- one pass ---------------------------------------------------------------------

    def tick(self, *, max_steps: int = 200) -> int:
        """One bounded pass over every step; returns how much work it did."""
        done = 0
        for _ in range(max_steps):
            if not self.process_one_event():
                break
            done += 1
        done += self.open_due_degraded()
        done += self.evaluate_burn_rates()
        done += self.notify_due_incidents()
        done += self.resolve_due_incidents()
        done += self.renotify_due_incidents()
        for _ in range(max_steps):
            if not self.send_one_notification():
                break
            done += 1
        return done

    def _now(self) -> datetime:
        return timezone.now()

    # --- steps ------------------------------------------------------------------------

    def process_one_event(self) -> bool:
        """Claim the oldest unprocessed event and fold it into incidents."""
        event_id = (
            Event.objects.filter(processed_at=None)
            .order_by("at", "id")
            .values_list("id", flat=True)
            .first()
        )
        if event_id is None:
            return False
        now = self._now()
        with transaction.atomic():
            claimed = Event.objects.filter(id=event_id, processed_at=None).update(processed_at=now)
            if claimed:
                event = Event.objects.select_related("device").get(id=event_id)
                services.handle_event(event=event, now=now)
        return True

    def open_due_degraded(self) -> int:
        """Degraded for longer than RESMON_ALERT_DEGRADED_AFTER_S: now it is an incident."""
        now = self._now()
        cutoff = now - timedelta(seconds=settings.RESMON_ALERT_DEGRADED_AFTER_S)
        busy = Incident.objects.open().filter(problem__in=[Problem.DOWN, Problem.DEGRADED])
        states = (
            DeviceState.objects.filter(status=Status.DEGRADED, since__lte=cutoff)
            .exclude(device__in=busy.values("device"))
            .select_related("device")[:100]
        )
        opened = 0
        for state in states:
            with transaction.atomic():
                services.open_incident(
                    device=state.device,
                    problem=Problem.DEGRADED,
                    message=state.last_error or f"degraded since {state.since:%H:%M:%S} UTC",
                    now=now,
                )
            opened += 1
        return opened

    def evaluate_burn_rates(self, *, force: bool = False) -> int:
        """SLO burn-rate alerts, every RESMON_ALERT_BURN_EVERY_S (a scan of rollups)."""
        every = settings.RESMON_ALERT_BURN_EVERY_S
        if every <= 0 and not force:
            return 0
        now = self._now()
        last = getattr(self, "_last_burn_check", None)
        if not force and last is not None and (now - last).total_seconds() < every:
            return 0
        self._last_burn_check = now
        from resourcemonitor.monitoring.slo import burn_rates

        rates = burn_rates(device_ids=None, windows=list(services.BURN_WINDOWS), now=now)
        with transaction.atomic():
            counts = services.apply_burn_rates(rates=rates, now=now)
        return sum(counts.values())

    def notify_due_incidents(self) -> int:
        now = self._now()
        done = 0
        due = Incident.objects.open().filter(notify_at__lte=now).select_related("device")[:100]
        for incident in due:
            with transaction.atomic():
                # Claim it: another worker may be looking at the same incident.
                if not Incident.objects.filter(pk=incident.pk, notify_at=incident.notify_at).update(
                    notify_at=now + timedelta(seconds=SEND_LEASE_S)
                ):
                    continue
                services.notify_due(incident=incident, now=now)
            done += 1
        return done

    def resolve_due_incidents(self) -> int:
        """Recoveries that held for RESMON_ALERT_RESOLVE_HOLD_S (and no longer flapping)."""
        now = self._now()
        cutoff = now - timedelta(seconds=settings.RESMON_ALERT_RESOLVE_HOLD_S)
        flapping = DeviceState.objects.filter(flapping=True).values("device")
        due = (
            Incident.objects.open()
            .filter(recovering_since__lte=cutoff)
            .exclude(device__in=flapping)
            .select_related("device")[:100]
        )
        done = 0
        for incident in due:
            with transaction.atomic():
                if not Incident.objects.filter(
                    pk=incident.pk, resolved_at=None, recovering_since=incident.recovering_since
                ).update(resolved_at=now):
                    continue
                services.resolve(incident=incident, now=now)
            done += 1
        return done

    def renotify_due_incidents(self) -> int:
        """Long, unacknowledged incidents are sent again every RESMON_ALERT_RENOTIFY_S."""
        interval = settings.RESMON_ALERT_RENOTIFY_S
        if interval <= 0:
            return 0
        now = self._now()
        cutoff = now - timedelta(seconds=interval)
        due = Incident.objects.open().filter(
            notified_at__isnull=False,
            acknowledged_at__isnull=True,
            recovering_since__isnull=True,
            last_notified_at__lte=cutoff,
        )[:100]
        done = 0
        for incident in due:
            with transaction.atomic():
                if not Incident.objects.filter(
                    pk=incident.pk, last_notified_at=incident.last_notified_at
                ).update(last_notified_at=now):
                    continue
                if services.in_maintenance(device=incident.device, at=now) is None:
                    services.enqueue(incident=incident, kind=NotificationKind.RENOTIFY, now=now)
            done += 1
        return done

    def send_one_notification(self) -> bool:
        """Claim one due outbox row with a conditional UPDATE, send it, record the outcome."""
        now = self._now()
        row_id = (
            Notification.objects.due(now, SEND_LEASE_S)
            .order_by("next_attempt_at", "id")
            .values_list("id", flat=True)
            .first()
        )
        if row_id is None:
            return False
        # Conditional: only while it is still due. The winner's UPDATE makes it not due
        # (status sending, fresh claim), so a second sender's UPDATE matches no row.
        claimed = (
            Notification.objects.due(now, SEND_LEASE_S)
            .filter(id=row_id)
            .update(
                status=Delivery.SENDING,
                claimed_at=now,
                claimed_by=getattr(self, "instance", "alerts")[:100],
                attempts=F("attempts") + 1,
            )
        )
        if not claimed:
            return True  # another sender won it; there may be more work
        notification = Notification.objects.select_related("channel").get(id=row_id)
        error = notification.channel.send(title=notification.title, body=notification.body)
        done = self._now()
        if error is None:
            Notification.objects.filter(id=notification.pk).update(
                status=Delivery.SENT, sent_at=done, last_error=""
            )
            return True
        attempts = notification.attempts
        if attempts >= settings.RESMON_ALERT_MAX_ATTEMPTS:
            status, next_at = Delivery.FAILED, done
        else:
            delay = min(
                settings.RESMON_ALERT_RETRY_MAX_S,
                settings.RESMON_ALERT_RETRY_BASE_S * 2 ** (attempts - 1),
            )
            status, next_at = Delivery.PENDING, done + timedelta(seconds=delay)
        Notification.objects.filter(id=notification.pk).update(
            status=status, next_attempt_at=next_at, last_error=error[:300]
        )
        logger.warning(
            "notification %s to %s failed (attempt %s): %s",
            notification.pk,
            notification.channel.name,
            attempts,
            error,
        )
        return True
