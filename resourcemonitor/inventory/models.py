"""What the team runs: devices, where they are, how to check them."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


class Kind(models.TextChoices):
    ROUTER = "router", "Router"
    SWITCH = "switch", "Switch"
    FIREWALL = "firewall", "Firewall"
    ACCESS_POINT = "access_point", "Access point"
    PHONE = "phone", "Phone"
    PC = "pc", "PC"
    SERVER = "server", "Server"
    OTHER = "other", "Other"


class CheckMethod(models.TextChoices):
    TCP = "tcp", "TCP connect"
    HTTP = "http", "HTTP(S) GET"
    ICMP = "icmp", "ICMP echo"
    SNMP = "snmp", "SNMP get"
    FEED = "feed", "JSON device feed"
    # Pushed over HTTP or MQTT; down when nothing arrives for longer than the interval.
    PUSH = "push", "Push (HTTP/MQTT heartbeat)"


class SnmpVersion(models.TextChoices):
    V2C = "2c", "SNMP v2c"
    V3 = "3", "SNMP v3"


class SnmpAuthProtocol(models.TextChoices):
    MD5 = "md5", "MD5"
    SHA = "sha", "SHA-1"
    SHA256 = "sha256", "SHA-256"


class SnmpPrivProtocol(models.TextChoices):
    DES = "des", "DES"
    AES = "aes", "AES-128"


class Site(models.Model):
    """A place devices live in: a data centre, an office, a campus."""

    name = models.CharField(max_length=100, unique=True)
    description = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Tag(models.Model):
    """A free label for grouping devices across sites and kinds."""

    name = models.SlugField(max_length=64, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Feed(models.Model):
    """A JSON device feed: one URL returning many devices' statuses.

    The shape is the original exercise's: ``[{"id", "name", "ip_address", "status"}]``
    with ``status`` a boolean. The collector polls it and creates or updates one
    ``Device`` per entry, keyed by the feed and the entry's id.
    """

    url = models.URLField(max_length=500, unique=True)
    interval_s = models.FloatField(
        default=30.0, validators=[MinValueValidator(1.0), MaxValueValidator(86400.0)]
    )
    timeout_s = models.FloatField(
        default=5.0, validators=[MinValueValidator(0.1), MaxValueValidator(120.0)]
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_polled_at = models.DateTimeField(null=True, blank=True)
    last_ok_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    device_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["url"]

    def __str__(self) -> str:
        return self.url


def _default_interval() -> float:
    return float(settings.RESMON_DEFAULT_INTERVAL_S)


def _default_timeout() -> float:
    return float(settings.RESMON_DEFAULT_TIMEOUT_S)


def _default_fail_threshold() -> int:
    return int(settings.RESMON_DEFAULT_FAIL_THRESHOLD)


class Device(models.Model):
    """One networked thing we check: a router, a switch, a phone, a server.

    The check fields say how the collector probes it; ``parent`` is the device it
    depends on (when the parent is down, this one is ``unreachable``, not ``down``).
    """

    name = models.CharField(max_length=200, unique=True)
    address = models.CharField(max_length=255, help_text="IP address or host name")
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.OTHER)
    site = models.ForeignKey(
        Site, null=True, blank=True, on_delete=models.SET_NULL, related_name="devices"
    )
    tags = models.ManyToManyField(Tag, blank=True, related_name="devices")
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children"
    )
    enabled = models.BooleanField(default=True, help_text="Paused devices are not checked")

    check_method = models.CharField(
        max_length=10, choices=CheckMethod.choices, default=CheckMethod.TCP
    )
    check_port = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(65535)]
    )
    check_path = models.CharField(max_length=500, default="/health", blank=True)
    check_tls = models.BooleanField(default=False, help_text="Use HTTPS for HTTP checks")
    check_expect_status = models.PositiveIntegerField(
        default=200, validators=[MinValueValidator(100), MaxValueValidator(599)]
    )
    check_body_match = models.CharField(
        max_length=200, blank=True, help_text="HTTP checks fail unless the body contains this"
    )
    check_interval_s = models.FloatField(
        default=_default_interval, validators=[MinValueValidator(0.5), MaxValueValidator(86400)]
    )
    check_timeout_s = models.FloatField(
        default=_default_timeout, validators=[MinValueValidator(0.1), MaxValueValidator(120)]
    )
    fail_threshold = models.PositiveSmallIntegerField(
        default=_default_fail_threshold,
        validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text="Consecutive failed checks before the device is down",
    )
    recover_threshold = models.PositiveSmallIntegerField(
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text="Consecutive good checks before a down device is up again",
    )
    latency_threshold_ms = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.0)],
        help_text="Answers slower than this make the device degraded",
    )
    slo_target = models.FloatField(
        default=99.9,
        validators=[MinValueValidator(0.001), MaxValueValidator(99.999)],
        help_text="Availability target in percent",
    )

    # SNMP (check_method=snmp). The v3 keys are stored in plain text for now.
    snmp_version = models.CharField(
        max_length=2, choices=SnmpVersion.choices, default=SnmpVersion.V2C
    )
    snmp_community = models.CharField(
        max_length=100, default="public", blank=True, help_text="SNMP v2c community"
    )
    snmp_v3_user = models.CharField(max_length=100, blank=True)
    snmp_v3_auth_protocol = models.CharField(
        max_length=6, choices=SnmpAuthProtocol.choices, default=SnmpAuthProtocol.SHA
    )
    snmp_v3_auth_key = models.CharField(
        max_length=200, blank=True, help_text="Empty: no authentication (noAuthNoPriv)"
    )
    snmp_v3_priv_protocol = models.CharField(
        max_length=6, choices=SnmpPrivProtocol.choices, default=SnmpPrivProtocol.AES
    )
    snmp_v3_priv_key = models.CharField(
        max_length=200, blank=True, help_text="Empty: no privacy (authNoPriv)"
    )
    snmp_v3_context = models.CharField(
        max_length=100, blank=True, help_text="SNMP v3 context name; usually empty"
    )

    feed = models.ForeignKey(
        Feed, null=True, blank=True, on_delete=models.CASCADE, related_name="devices"
    )
    external_id = models.CharField(
        max_length=100, blank=True, help_text="The device's id in its feed"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        # The dashboard's changes-only poll asks for devices edited since its last poll,
        # and for the check intervals in use (their stale windows) with the device count.
        indexes = [
            models.Index(fields=["updated_at"], name="device_updated_at"),
            models.Index(fields=["check_interval_s"], name="device_check_interval"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["feed", "external_id"],
                condition=models.Q(feed__isnull=False),
                name="device_unique_feed_external_id",
            )
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.check_method in {CheckMethod.TCP} and not self.check_port:
            raise ValidationError({"check_port": "A TCP check needs a port."})
        if self.check_method == CheckMethod.FEED and self.feed_id is None:
            raise ValidationError({"feed": "A feed device needs its feed."})
        if self.check_method == CheckMethod.SNMP:
            self._clean_snmp()
        if (
            self.check_timeout_s
            and self.check_interval_s
            and (self.check_timeout_s > self.check_interval_s)
        ):
            raise ValidationError(
                {"check_timeout_s": "The timeout must not be longer than the interval."}
            )
        self._clean_parent()

    def _clean_snmp(self) -> None:
        if self.snmp_version == SnmpVersion.V2C and not self.snmp_community:
            raise ValidationError({"snmp_community": "SNMP v2c needs a community."})
        if self.snmp_version == SnmpVersion.V3:
            if not self.snmp_v3_user:
                raise ValidationError({"snmp_v3_user": "SNMP v3 needs a user name."})
            for field in ("snmp_v3_auth_key", "snmp_v3_priv_key"):
                key = getattr(self, field)
                if key and len(key) < 8:  # RFC 3414: shorter keys are refused by agents
                    raise ValidationError({field: "At least 8 characters."})
            if self.snmp_v3_priv_key and not self.snmp_v3_auth_key:
                raise ValidationError({"snmp_v3_auth_key": "Privacy needs authentication too."})

    def _clean_parent(self) -> None:
        # Walk up the chain: a device may not (indirectly) depend on itself.
        seen = {self.pk} if self.pk else set()
        parent = self.parent
        while parent is not None:
            if parent.pk in seen:
                raise ValidationError({"parent": "This parent would make a dependency cycle."})
            seen.add(parent.pk)
            parent = parent.parent


class Recurrence(models.TextChoices):
    NONE = "", "Once"
    DAILY = "daily", "Every day"
    WEEKLY = "weekly", "Every week"


RECURRENCE_PERIOD = {
    Recurrence.DAILY: timedelta(days=1),
    Recurrence.WEEKLY: timedelta(days=7),
}


class MaintenanceWindowQuerySet(models.QuerySet["MaintenanceWindow"]):
    def may_be_active(self, at: datetime) -> MaintenanceWindowQuerySet:
        """Windows that could cover ``at``: started, and not ended for good.

        Recurring windows still need :meth:`MaintenanceWindow.is_active` to check the
        occurrence; this narrows the rows in SQL first.
        """
        once = models.Q(recurrence=Recurrence.NONE, starts_at__lte=at, ends_at__gt=at)
        recurring = (
            ~models.Q(recurrence=Recurrence.NONE)
            & models.Q(starts_at__lte=at)
            & (models.Q(until__isnull=True) | models.Q(until__gt=at))
        )
        return self.filter(once | recurring)


class MaintenanceWindow(models.Model):
    """Planned work: notifications are suppressed and the time is excluded from SLOs.

    It covers the listed devices, every device of the listed sites and tags, and every
    device of the listed kinds. A recurring window repeats ``[starts_at, ends_at)`` every
    day or week until ``until`` (for ever when empty). Times are UTC.
    """

    name = models.CharField(max_length=200)
    reason = models.CharField(max_length=500, blank=True)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    recurrence = models.CharField(
        max_length=10, choices=Recurrence.choices, default=Recurrence.NONE, blank=True
    )
    until = models.DateTimeField(null=True, blank=True, help_text="Last repetition ends here")
    devices = models.ManyToManyField(Device, blank=True, related_name="maintenance_windows")
    sites = models.ManyToManyField(Site, blank=True, related_name="maintenance_windows")
    tags = models.ManyToManyField(Tag, blank=True, related_name="maintenance_windows")
    kinds = models.JSONField(default=list, blank=True, help_text="Device kinds covered")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = MaintenanceWindowQuerySet.as_manager()

    class Meta:
        ordering = ["-starts_at"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            raise ValidationError({"ends_at": "The window must end after it starts."})
        period = RECURRENCE_PERIOD.get(Recurrence(self.recurrence or ""))
        if period and self.starts_at and self.ends_at and self.ends_at - self.starts_at > period:
            raise ValidationError(
                {"ends_at": f"A {self.recurrence} window cannot last longer than {period}."}
            )
        if self.until and self.starts_at and self.until <= self.starts_at:
            raise ValidationError({"until": "The repetition must end after the first start."})
        bad_kinds = [kind for kind in self.kinds or [] if kind not in Kind.values]
        if not isinstance(self.kinds, list) or bad_kinds:
            raise ValidationError({"kinds": f"Unknown device kinds: {bad_kinds or self.kinds}"})

    def occurrence_at(self, at: datetime) -> tuple[datetime, datetime] | None:
        """The ``(start, end)`` of the occurrence covering ``at``, or None."""
        if at < self.starts_at:
            return None
        period = RECURRENCE_PERIOD.get(Recurrence(self.recurrence or ""))
        if period is None:
            return (self.starts_at, self.ends_at) if at < self.ends_at else None
        if self.until is not None and at >= self.until:
            return None
        start = self.starts_at + period * ((at - self.starts_at) // period)
        end = start + (self.ends_at - self.starts_at)
        if self.until is not None:
            end = min(end, self.until)
        return (start, end) if start <= at < end else None

    def is_active(self, at: datetime) -> bool:
        return self.occurrence_at(at) is not None
