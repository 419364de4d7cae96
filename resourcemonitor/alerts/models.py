"""Incidents, channels and the notification outbox.

The worker (``resmon alerts``) turns collector ``Event`` rows into ``Incident`` rows and
queues one ``Notification`` per matching ``Channel``; senders claim outbox rows with a
conditional UPDATE, so several may run and none sends twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import models
from django.utils import timezone

from resourcemonitor.inventory.models import Device, Kind, Site, Tag


class Severity(models.TextChoices):
    CRITICAL = "critical", "Critical (page)"
    WARNING = "warning", "Warning (ticket)"


class Problem(models.TextChoices):
    DOWN = "down", "Down"
    DEGRADED = "degraded", "Degraded"
    SLO_BURN = "slo_burn", "SLO burn"


PROBLEM_SEVERITY = {
    Problem.DOWN: Severity.CRITICAL,
    Problem.DEGRADED: Severity.WARNING,
}


class IncidentQuerySet(models.QuerySet["Incident"]):
    def open(self) -> IncidentQuerySet:
        return self.filter(resolved_at__isnull=True)

    def listing(self) -> IncidentQuerySet:
        return self.select_related("device", "device__site", "acknowledged_by").order_by(
            "-opened_at", "-id"
        )


class Incident(models.Model):
    """One device problem, from the state change that opened it to its recovery.

    At most one open incident per device and problem (a partial unique constraint), so a
    device that fails again while its recovery is still on hold reopens the same incident
    (a flap) instead of paging again. ``notified_at`` is set when the first problem
    notification was queued; only notified incidents get their resolution sent.
    """

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="incidents")
    problem = models.CharField(max_length=12, choices=Problem.choices, default=Problem.DOWN)
    severity = models.CharField(max_length=10, choices=Severity.choices)
    title = models.CharField(max_length=300)
    summary = models.CharField(max_length=1000, blank=True)
    # Devices behind this one (its descendants), counted when it was notified.
    affected_count = models.PositiveIntegerField(default=0)
    opened_at = models.DateTimeField(default=timezone.now, db_index=True)
    notify_at = models.DateTimeField(null=True, blank=True, db_index=True)
    notified_at = models.DateTimeField(null=True, blank=True)
    last_notified_at = models.DateTimeField(null=True, blank=True)
    flap_count = models.PositiveIntegerField(default=0)
    flap_notified_at = models.DateTimeField(null=True, blank=True)
    recovering_since = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    ack_note = models.CharField(max_length=500, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # Why it closed without a page, e.g. "parent core-1 is down".
    suppressed_reason = models.CharField(max_length=300, blank=True)

    objects = IncidentQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["device", "problem"],
                condition=models.Q(resolved_at__isnull=True),
                name="incident_one_open_per_device_problem",
            )
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.title}"

    @property
    def state(self) -> str:
        if self.resolved_at:
            return "resolved"
        if self.acknowledged_at:
            return "acknowledged"
        return "open"

    def log(self, kind: str, message: str, at: datetime | None = None) -> IncidentUpdate:
        return IncidentUpdate.objects.create(
            incident=self, kind=kind, message=message[:500], at=at or timezone.now()
        )

    def seconds_to_ack(self) -> float | None:
        if self.acknowledged_at is None:
            return None
        return (self.acknowledged_at - self.opened_at).total_seconds()

    def seconds_to_resolve(self) -> float | None:
        if self.resolved_at is None:
            return None
        return (self.resolved_at - self.opened_at).total_seconds()


class IncidentUpdate(models.Model):
    """One line of an incident's timeline: opened, flapped, notified, acked, resolved."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="updates")
    at = models.DateTimeField(default=timezone.now)
    kind = models.CharField(max_length=20)
    message = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.incident_id} {self.kind} at {self.at:%H:%M:%S}"


def validate_apprise_url(url: str) -> None:
    import apprise  # imported here: the web and tests that never notify skip its plugins

    if not apprise.Apprise().add(url):
        raise ValidationError(
            "Not a notification URL apprise supports (e.g. json://host/path, "
            "slack://…, discord://…); see https://github.com/caronc/apprise/wiki."
        )


class ChannelKind(models.TextChoices):
    APPRISE = "apprise", "Apprise URL (webhook, Slack, Teams, Discord, Telegram, …)"
    # Mail goes through Django's own mail settings (EMAIL_HOST, …), not apprise's mailto://,
    # so one SMTP configuration serves the whole product and tests use Django's outbox.
    EMAIL = "email", "Email (Django's mail settings)"


class Channel(models.Model):
    """Where notifications go, and which incidents it wants (empty filter: all).

    ``target`` is an apprise URL for ``apprise`` channels, or comma-separated
    addresses for ``email`` channels. Routing: every non-empty filter must match.
    """

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=10, choices=ChannelKind.choices, default=ChannelKind.APPRISE)
    target = models.CharField(max_length=1000)
    enabled = models.BooleanField(default=True)
    severities = models.JSONField(default=list, blank=True)
    device_kinds = models.JSONField(default=list, blank=True)
    sites = models.ManyToManyField(Site, blank=True, related_name="channels")
    tags = models.ManyToManyField(Tag, blank=True, related_name="channels")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        target = (self.target or "").strip()
        if self.kind == ChannelKind.EMAIL:
            addresses = self.email_addresses()
            if not addresses:
                raise ValidationError({"target": "An email channel needs at least one address."})
            for address in addresses:
                try:
                    validate_email(address)
                except ValidationError:
                    raise ValidationError(
                        {"target": f"Not an email address: {address!r}"}
                    ) from None
        else:
            try:
                validate_apprise_url(target)
            except ValidationError as exc:
                raise ValidationError({"target": exc.messages}) from None
        bad = [s for s in self.severities or [] if s not in Severity.values]
        if not isinstance(self.severities, list) or bad:
            raise ValidationError({"severities": f"Unknown severities: {bad or self.severities}"})
        bad = [k for k in self.device_kinds or [] if k not in Kind.values]
        if not isinstance(self.device_kinds, list) or bad:
            raise ValidationError({"device_kinds": f"Unknown device kinds: {bad}"})

    def redacted_target(self) -> str:
        """The target as pages show it: apprise's own privacy form (passwords, tokens and
        keys shortened or starred), without the query string, which can carry secrets."""
        if self.kind == ChannelKind.EMAIL:
            return self.target
        import apprise

        plugin = apprise.Apprise.instantiate(self.target)
        if not plugin:
            scheme = self.target.split("://", 1)[0]
            return f"{scheme}://…"
        return str(plugin.url(privacy=True)).split("?", 1)[0]

    def email_addresses(self) -> list[str]:
        return [a.strip() for a in (self.target or "").split(",") if a.strip()]

    def matches(
        self, *, severity: str, device: Device, site_ids: set[int], tag_ids: set[int]
    ) -> bool:
        """Routing. ``site_ids``/``tag_ids`` are this channel's (prefetched) filters."""
        if self.severities and severity not in self.severities:
            return False
        if self.device_kinds and device.kind not in self.device_kinds:
            return False
        if site_ids and device.site_id not in site_ids:
            return False
        if tag_ids:
            device_tags = {t.pk for t in device.tags.all()}
            if not device_tags & tag_ids:
                return False
        return True

    def send(self, *, title: str, body: str) -> str | None:
        """Deliver now. Returns None on success, else a short error for people."""
        body = body or title  # apprise refuses an empty body
        if self.kind == ChannelKind.EMAIL:
            from django.core.mail import send_mail

            try:
                send_mail(title, body, None, self.email_addresses(), fail_silently=False)
            except Exception as exc:  # SMTP and socket errors alike: retried by the outbox
                return f"mail: {exc}"[:300]
            return None
        import apprise

        sender = apprise.Apprise()
        if not sender.add(self.target):
            return "invalid apprise URL"
        with apprise.LogCapture(level=apprise.logging.WARNING) as output:
            ok = sender.notify(title=title, body=body)
            log = output.getvalue().strip() if hasattr(output, "getvalue") else ""
        if ok:
            return None
        return (log.splitlines()[-1] if log else "delivery failed")[:300]


class NotificationKind(models.TextChoices):
    PROBLEM = "problem", "Problem"
    FLAPPING = "flapping", "Flapping"
    ESCALATED = "escalated", "Escalated"
    RENOTIFY = "renotify", "Still open"
    RESOLVED = "resolved", "Resolved"


class Delivery(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class NotificationQuerySet(models.QuerySet["Notification"]):
    def due(self, now: datetime, lease_s: float) -> NotificationQuerySet:
        """Pending rows whose retry time came, or rows a dead sender left claimed."""
        stale = now - timedelta(seconds=lease_s)
        return self.filter(
            models.Q(status=Delivery.PENDING, next_attempt_at__lte=now)
            | models.Q(status=Delivery.SENDING, claimed_at__lt=stale)
        )


class Notification(models.Model):
    """The outbox: one message for one channel, delivered at most once by one sender.

    A sender claims a row with a conditional UPDATE (only if it is still pending, or
    its claim went stale), sends, then marks it sent; on failure it goes back to pending
    with an exponential back-off. Rows survive restarts: a sender that dies mid-send
    leaves a claim that expires after the lease and is retried (at least once, then).
    """

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="notifications")
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=10, choices=NotificationKind.choices)
    title = models.CharField(max_length=300)
    body = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=Delivery.choices, default=Delivery.PENDING)
    created_at = models.DateTimeField(default=timezone.now)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    attempts = models.PositiveIntegerField(default=0)
    claimed_at = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=100, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)

    objects = NotificationQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="notification_due")]

    def __str__(self) -> str:
        return f"{self.kind} → {self.channel_id}: {self.status}"


def channels_for(*, severity: str, device: Device, channels: Iterable[Channel]) -> list[Channel]:
    """The enabled channels whose routing matches (channels prefetched with sites/tags)."""
    chosen = []
    for channel in channels:
        if not channel.enabled:
            continue
        site_ids = {s.pk for s in channel.sites.all()}
        tag_ids = {t.pk for t in channel.tags.all()}
        if channel.matches(severity=severity, device=device, site_ids=site_ids, tag_ids=tag_ids):
            chosen.append(channel)
    return chosen
