"""What the collector learns: current state, raw samples, rollups, events, heartbeats."""

from __future__ import annotations

import os
import socket
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from resourcemonitor.inventory.models import Device
from resourcemonitor.monitoring.status import Status


class DeviceState(models.Model):
    """The one current state of a device, updated in place by the collector's writer.

    ``changed_at`` moves only when something a person would notice changes (status,
    flapping, error), so the dashboard can fetch "what changed since" cheaply.
    """

    device = models.OneToOneField(
        Device, primary_key=True, on_delete=models.CASCADE, related_name="state"
    )
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.UNKNOWN)
    since = models.DateTimeField(default=timezone.now)
    last_check_at = models.DateTimeField(null=True, blank=True)
    last_ok_at = models.DateTimeField(null=True, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    consecutive_successes = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=300, blank=True)
    flapping = models.BooleanField(default=False)
    changed_at = models.DateTimeField(default=timezone.now, db_index=True)
    # The last 21 checks' outcomes (0 ok, 1 slow, 2 failed), oldest first: the flap
    # detector's memory, so a collector restart or a push device's next report goes on
    # from it instead of starting blind.
    flap_history = models.CharField(max_length=21, blank=True, default="")

    def __str__(self) -> str:
        return f"{self.device_id}: {self.status}"


class Sample(models.Model):
    """One check result. Raw, kept for days; the hot write path goes through storage.py.

    Not managed by Django's migrations: on SQLite the table is WITHOUT ROWID with a
    time-first key (``t``, ``device_id``), which keeps ingest fast and a row near 20 bytes.
    ``t`` is milliseconds since the Unix epoch, UTC. ``latency_us`` is microseconds.
    """

    pk = models.CompositePrimaryKey("t", "device")
    t = models.BigIntegerField()
    device = models.ForeignKey(Device, on_delete=models.DO_NOTHING, db_constraint=False)
    ok = models.BooleanField()
    latency_us = models.IntegerField(null=True)
    error = models.CharField(max_length=100, null=True)  # noqa: DJ001 (NULL = no error, 1 byte)

    class Meta:
        managed = False
        db_table = "monitoring_sample"

    def __str__(self) -> str:
        return f"{self.device_id}@{self.t}: {'ok' if self.ok else self.error}"


class DeviceMetric(models.Model):
    """One named number a device reported or a probe measured (CPU %, octet rates, uptime).

    Written by HTTP/MQTT ingest (a report's ``metrics``, MQTT telemetry) and the collector's
    SNMP probe (``monitoring.metricstore``); pruned with the raw samples
    (``RESMON_RETENTION_RAW_DAYS``). Not managed by Django: like ``Sample``, a time-first key
    without a rowid on SQLite (about 36 bytes a row, 24 more for the ``(device_id, t)``
    index of the per-device reads; measured at 360,000 rows; migration 0006). ``t`` is
    milliseconds since the Unix epoch, UTC.
    """

    pk = models.CompositePrimaryKey("t", "device", "name")
    t = models.BigIntegerField()
    device = models.ForeignKey(Device, on_delete=models.DO_NOTHING, db_constraint=False)
    name = models.CharField(max_length=100)
    value = models.FloatField()

    class Meta:
        managed = False
        db_table = "monitoring_devicemetric"

    def __str__(self) -> str:
        return f"{self.device_id}@{self.t}: {self.name}={self.value:g}"


class DeviceMetricLatest(models.Model):
    """The newest value of each exported metric name per device, for /metrics.

    Upserted next to every ``DeviceMetric`` row whose name /metrics exports
    (``metricstore.EXPORTED``: a fixed handful), so a scrape reads at most that many rows a
    device instead of scanning the recent history.
    """

    pk = models.CompositePrimaryKey("device", "name")
    # No index of its own: the primary key starts with the device.
    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="+", db_index=False)
    name = models.CharField(max_length=100)
    t = models.BigIntegerField()
    value = models.FloatField()

    def __str__(self) -> str:
        return f"{self.device_id}: {self.name}={self.value:g}"


# Latency histogram buckets (upper bounds, milliseconds), log-spaced so percentiles
# survive aggregation across rollups. The last bucket is everything slower.
LATENCY_BUCKETS_MS: tuple[float, ...] = (
    1,
    2,
    5,
    10,
    20,
    50,
    100,
    200,
    500,
    1000,
    2000,
    5000,
    10000,
    30000,
    60000,
)
HISTOGRAM_COLUMNS = tuple(f"h{i}" for i in range(len(LATENCY_BUCKETS_MS) + 1))


class Rollup(models.Model):
    """Per-device aggregates over a fixed UTC bucket: a minute, an hour or a day.

    ``resolution`` is the bucket length in seconds (60, 3600 or 86400) and ``bucket`` its
    start, epoch seconds. Maintained incrementally by the writer (additive columns, so an
    upsert merges; ``monitoring.rollups``), never by scanning raw history on a page load:
    a minute's hour row is written with it, in one transaction, so an hour row is the sum
    of its minutes; the collector's writer writes a day row once the day has closed, as the
    sum of its hours (push ingest writes it with every sample). Minute rows are kept for
    weeks, hour and day rows for months (``monitoring.retention``).
    """

    pk = models.CompositePrimaryKey("device", "resolution", "bucket")
    # No index of its own: the primary key starts with the device. No foreign key in
    # PostgreSQL either (migration 0009: its check cost a fifth of the write path); Django
    # still deletes a device's rollups with it.
    device = models.ForeignKey(
        Device, on_delete=models.CASCADE, db_index=False, db_constraint=False
    )
    resolution = models.PositiveIntegerField()
    bucket = models.BigIntegerField()
    count = models.PositiveIntegerField(default=0)
    ok_count = models.PositiveIntegerField(default=0)
    latency_count = models.PositiveIntegerField(default=0)
    latency_sum_ms = models.FloatField(default=0.0)
    latency_min_ms = models.FloatField(null=True)
    latency_max_ms = models.FloatField(null=True)
    h0 = models.PositiveIntegerField(default=0)
    h1 = models.PositiveIntegerField(default=0)
    h2 = models.PositiveIntegerField(default=0)
    h3 = models.PositiveIntegerField(default=0)
    h4 = models.PositiveIntegerField(default=0)
    h5 = models.PositiveIntegerField(default=0)
    h6 = models.PositiveIntegerField(default=0)
    h7 = models.PositiveIntegerField(default=0)
    h8 = models.PositiveIntegerField(default=0)
    h9 = models.PositiveIntegerField(default=0)
    h10 = models.PositiveIntegerField(default=0)
    h11 = models.PositiveIntegerField(default=0)
    h12 = models.PositiveIntegerField(default=0)
    h13 = models.PositiveIntegerField(default=0)
    h14 = models.PositiveIntegerField(default=0)
    h15 = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["resolution", "bucket"], name="rollup_res_bucket")]

    def __str__(self) -> str:
        return f"{self.device_id}/{self.resolution}s@{self.bucket}"


class EventQuerySet(models.QuerySet["Event"]):
    def recent(self, limit: int = 50) -> EventQuerySet:
        return self.select_related("device").order_by("-at", "-id")[:limit]


class Event(models.Model):
    """A state change of a device: from one status to another, with the reason."""

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(default=timezone.now)
    from_status = models.CharField(max_length=12, choices=Status.choices)
    to_status = models.CharField(max_length=12, choices=Status.choices)
    message = models.CharField(max_length=300, blank=True)
    # Set by the alert worker that claimed this event with a conditional UPDATE
    # (filter(processed_at=None).update(...)), so several workers never handle it twice.
    processed_at = models.DateTimeField(null=True, blank=True, db_index=True)

    objects = EventQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(fields=["device", "-at"], name="event_device_at"),
            models.Index(fields=["-at"], name="event_at"),
        ]

    def __str__(self) -> str:
        return f"{self.device_id} {self.from_status}→{self.to_status} at {self.at:%Y-%m-%d %H:%M}"


class HeartbeatQuerySet(models.QuerySet["Heartbeat"]):
    def running(self) -> HeartbeatQuerySet:
        """Without the components that said, in their last beat, that they stopped."""
        return self.exclude(info__has_key=Heartbeat.STOPPED)

    def alive(self, component: str | None = None) -> HeartbeatQuerySet:
        cutoff = timezone.now() - timedelta(seconds=settings.RESMON_HEARTBEAT_STALE_S)
        qs = self.running().filter(last_seen_at__gte=cutoff)
        return qs.filter(component=component) if component else qs


class Heartbeat(models.Model):
    """Each running component reports itself here every few seconds."""

    component = models.CharField(max_length=20)  # collector, web, simulator, ingester
    instance = models.CharField(max_length=200, unique=True)
    version = models.CharField(max_length=40, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now, db_index=True)
    info = models.JSONField(default=dict, blank=True)

    # Set in ``info`` by a component's last beat on a clean stop (SIGTERM, --once).
    STOPPED = "stopped"

    objects = HeartbeatQuerySet.as_manager()

    def __str__(self) -> str:
        return self.instance

    @classmethod
    def beat(
        cls, *, component: str, instance: str | None = None, info: dict[str, Any] | None = None
    ) -> Heartbeat:
        from resourcemonitor import __version__

        instance = instance or f"{component}@{socket.gethostname()}:{os.getpid()}"
        now = timezone.now()
        beat, _ = cls.objects.update_or_create(
            instance=instance,
            defaults={
                "component": component,
                "version": __version__,
                "last_seen_at": now,
                "info": info or {},
            },
            create_defaults={
                "component": component,
                "version": __version__,
                "started_at": now,
                "last_seen_at": now,
                "info": info or {},
            },
        )
        return beat

    @property
    def is_stale(self) -> bool:
        age = (timezone.now() - self.last_seen_at).total_seconds()
        return age > settings.RESMON_HEARTBEAT_STALE_S


# -- SLO definitions (see docs/slo.md) -------------------------------------------------


class SloTargetQuerySet(models.QuerySet["SloTarget"]):
    def as_lookup(self) -> dict[tuple[str, str], float]:
        """``{(scope, key): target}`` with key a kind value, a site id or a tag id (as str)."""
        lookup: dict[tuple[str, str], float] = {}
        for rule in self:
            key = rule.kind if rule.scope == SloTarget.Scope.KIND else str(rule.object_id)
            lookup[(rule.scope, key)] = rule.target
        return lookup


class SloTarget(models.Model):
    """An availability target for every device of one kind, site or tag.

    A device's own ``slo_target`` wins when it differs from the default (99.9); otherwise
    the strictest matching tag rule, then its site's rule, then its kind's rule apply.
    """

    class Scope(models.TextChoices):
        KIND = "kind", "Kind"
        SITE = "site", "Site"
        TAG = "tag", "Tag"

    scope = models.CharField(max_length=4, choices=Scope.choices)
    kind = models.CharField(max_length=20, blank=True, help_text="For scope=kind")
    object_id = models.PositiveIntegerField(
        null=True, blank=True, help_text="The site's or tag's id, for scope=site or tag"
    )
    target = models.FloatField(
        validators=[MinValueValidator(0.001), MaxValueValidator(99.999)],
        help_text="Availability target in percent",
    )

    objects = SloTargetQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["scope", "kind", "object_id"], name="slotarget_unique")
        ]

    def __str__(self) -> str:
        return f"{self.scope}:{self.kind or self.object_id} {self.target}%"


class GroupSlo(models.Model):
    """A group SLO: "99.5 % of the checks of the London access switches succeed".

    The group is every device matching all the given selectors (site, kind, tag; empty
    ones match everything). The optional latency SLO is "``latency_target`` % of checks
    answer within ``latency_threshold_ms``", which must be a histogram bucket bound.
    """

    name = models.CharField(max_length=200, unique=True)
    site = models.ForeignKey(
        "inventory.Site", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    kind = models.CharField(max_length=20, blank=True)
    tag = models.ForeignKey(
        "inventory.Tag", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    target = models.FloatField(
        default=99.9, validators=[MinValueValidator(0.001), MaxValueValidator(99.999)]
    )
    latency_threshold_ms = models.FloatField(null=True, blank=True)
    latency_target = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0.001), MaxValueValidator(99.999)]
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        threshold = self.latency_threshold_ms
        if threshold is not None and threshold not in LATENCY_BUCKETS_MS:
            raise ValidationError(
                {"latency_threshold_ms": f"Must be one of the bucket bounds {LATENCY_BUCKETS_MS}."}
            )
        if (threshold is None) != (self.latency_target is None):
            raise ValidationError({"latency_target": "Set both the threshold and the target."})

    def selector(self) -> str:
        """The same group as the API's ``group=`` parameter."""
        parts = []
        if self.site is not None:
            parts.append(f"site:{self.site.name}")
        if self.kind:
            parts.append(f"kind:{self.kind}")
        if self.tag is not None:
            parts.append(f"tag:{self.tag.name}")
        return ",".join(parts)
