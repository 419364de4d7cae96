"""Settings for Resource Monitor, all of them from the environment.

Every value has a typed reader that fails loudly on a bad value (like healthchecks'
envbool/envint), so a typo in a unit file is an error at start, not a silent default.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent


def envstr(name: str, default: str) -> str:
    return os.environ.get(name, default)


def envbool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r}: expected true/false, yes/no, on/off or 1/0")


def envint(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r}: expected a whole number") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={raw!r}: must be at least {minimum}")
    return value


def envfloat(name: str, default: float, *, minimum: float | None = None) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r}: expected a number") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={raw!r}: must be at least {minimum}")
    return value


def envlist(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def database_from_url(url: str, data_dir: Path) -> dict[str, object]:
    """Turn DATABASE_URL into a Django DATABASES entry (sqlite:///path or postgres://...)."""
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        # sqlite:///relative.db and sqlite:////absolute/path.db, like dj-database-url.
        path = unquote(parsed.path[1:]) if parsed.path.startswith("/") else unquote(parsed.path)
        name = Path(path) if path else data_dir / "resmon.sqlite3"
        if not name.is_absolute():
            name = Path.cwd() / name
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(name),
            "OPTIONS": {
                # WAL lets the web read while the collector writes; NORMAL is durable
                # across a process crash (a power cut may lose the last commit).
                "init_command": (
                    "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL;"
                    "PRAGMA temp_store=MEMORY;PRAGMA cache_size=-32000;"
                ),
                "timeout": 20,
                "transaction_mode": "IMMEDIATE",
            },
            # Keep each web thread's connection between requests (as for PostgreSQL):
            # opening one (connect, the PRAGMAs above, Django's SQL functions) and
            # re-reading pages into its empty cache cost ~2.5 ms of a ~7.7 ms
            # changes-only poll at 10,000 devices (docs/scaling.md).
            "CONN_MAX_AGE": 60,
        }
    if parsed.scheme in {"postgres", "postgresql", "pgsql"}:
        options = {key: values[-1] for key, values in parse_qs(parsed.query).items()}
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parsed.path.lstrip("/")) or "resmon",
            "USER": unquote(parsed.username or ""),
            "PASSWORD": unquote(parsed.password or ""),
            "HOST": parsed.hostname or "",
            "PORT": str(parsed.port or ""),
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
            "OPTIONS": options,
        }
    raise ImproperlyConfigured(
        f"DATABASE_URL={url!r}: expected sqlite:///path/to/file.db or postgres://user@host/db"
    )


DATA_DIR = Path(envstr("RESMON_DATA_DIR", str(Path.cwd() / "data"))).resolve()


def _secret_key() -> str:
    key = os.environ.get("RESMON_SECRET_KEY") or os.environ.get("SECRET_KEY")
    if key:
        return key
    # The demo generates a key once into its data directory; production sets the env var.
    key_file = DATA_DIR / "secret_key"
    try:
        return key_file.read_text().strip()
    except FileNotFoundError:
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(50)
        key_file.write_text(key)
        key_file.chmod(0o600)
        return key


SECRET_KEY = _secret_key()
DEBUG = envbool("RESMON_DEBUG", False)
ALLOWED_HOSTS = envlist("RESMON_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = envlist("RESMON_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "ninja",
    "resourcemonitor.inventory",
    "resourcemonitor.monitoring",
    "resourcemonitor.alerts",
    "resourcemonitor.dashboard",
    "resourcemonitor.api",
]

MIDDLEWARE = [
    # First, so it times everything below it (resmon_http_request_duration_seconds).
    "resourcemonitor.api.metrics.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # CSP on every response, 413 for oversized bodies, login lock-out (security.py).
    "resourcemonitor.security.SecurityHeadersMiddleware",
    "resourcemonitor.security.LoginThrottleMiddleware",
]

ROOT_URLCONF = "resourcemonitor.urls"
WSGI_APPLICATION = "resourcemonitor.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASE_URL = envstr("DATABASE_URL", f"sqlite:///{DATA_DIR / 'resmon.sqlite3'}")
DATABASES = {"default": database_from_url(DATABASE_URL, DATA_DIR)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
# Only for `resmon collectstatic` (containers); the product serves static files from the
# app folders without it (WHITENOISE_USE_FINDERS below).
STATIC_ROOT = os.environ.get("RESMON_STATIC_ROOT") or None
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve straight from the app folders: the product needs no collectstatic step to run.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# /login/ (security.login) admits every user; /admin/login/ only staff.
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = envbool("RESMON_SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Behind HTTPS (see docs/operations.md, "Security"): HSTS, redirect to https (except the
# health and metrics probes, which load balancers and Prometheus call over plain HTTP),
# and trusting X-Forwarded-Proto from the TLS-terminating proxy.
SECURE_HSTS_SECONDS = envint("RESMON_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("RESMON_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = envbool("RESMON_HSTS_PRELOAD", False)
SECURE_SSL_REDIRECT = envbool("RESMON_SSL_REDIRECT", False)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
if envbool("RESMON_BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Request bodies (JSON, forms) over this are refused with 413 before a view reads them.
DATA_UPLOAD_MAX_MEMORY_SIZE = envint("RESMON_MAX_BODY_BYTES", 1024 * 1024, minimum=1024)

# Product settings ---------------------------------------------------------------
# The read-only dashboard and read API without a login (the demo turns this on).
RESMON_PUBLIC_DASHBOARD = envbool("RESMON_PUBLIC_DASHBOARD", False)
# A collector heartbeat older than this marks the web's view as stale.
RESMON_HEARTBEAT_STALE_S = envfloat("RESMON_HEARTBEAT_STALE_S", 30.0, minimum=1.0)
# Default check settings for new devices.
RESMON_DEFAULT_INTERVAL_S = envfloat("RESMON_DEFAULT_INTERVAL_S", 10.0, minimum=0.5)
RESMON_DEFAULT_TIMEOUT_S = envfloat("RESMON_DEFAULT_TIMEOUT_S", 2.0, minimum=0.1)
RESMON_DEFAULT_FAIL_THRESHOLD = envint("RESMON_DEFAULT_FAIL_THRESHOLD", 3, minimum=1)
# Collector tuning.
RESMON_COLLECTOR_CONCURRENCY = envint("RESMON_COLLECTOR_CONCURRENCY", 1000, minimum=1)
RESMON_BATCH_MAX = envint("RESMON_BATCH_MAX", 5000, minimum=1)
RESMON_BATCH_SECONDS = envfloat("RESMON_BATCH_SECONDS", 1.0, minimum=0.05)
RESMON_INVENTORY_REFRESH_S = envfloat("RESMON_INVENTORY_REFRESH_S", 5.0, minimum=0.5)
# Alerting (resmon alerts): how long a new incident waits before it is notified (so a
# child that failed just before its parent is suppressed), how long a recovery must hold
# before the incident resolves, degraded-for-how-long opens one, re-notify (0: never).
RESMON_ALERT_NOTIFY_DELAY_S = envfloat("RESMON_ALERT_NOTIFY_DELAY_S", 30.0, minimum=0.0)
RESMON_ALERT_RESOLVE_HOLD_S = envfloat("RESMON_ALERT_RESOLVE_HOLD_S", 60.0, minimum=0.0)
RESMON_ALERT_DEGRADED_AFTER_S = envfloat("RESMON_ALERT_DEGRADED_AFTER_S", 300.0, minimum=0.0)
RESMON_ALERT_RENOTIFY_S = envfloat("RESMON_ALERT_RENOTIFY_S", 14400.0, minimum=0.0)
# Outbox delivery: first retry after this, doubling up to the max, at most N attempts.
RESMON_ALERT_RETRY_BASE_S = envfloat("RESMON_ALERT_RETRY_BASE_S", 10.0, minimum=0.01)
RESMON_ALERT_RETRY_MAX_S = envfloat("RESMON_ALERT_RETRY_MAX_S", 3600.0, minimum=0.01)
RESMON_ALERT_MAX_ATTEMPTS = envint("RESMON_ALERT_MAX_ATTEMPTS", 12, minimum=1)
# SLO burn-rate alerts (Google SRE workbook, multi-window): page when the 1 h and 5 m burn
# rates are both over the first, or 6 h and 30 m over the second; ticket when 3 d and 6 h
# are over the third. Evaluated every RESMON_ALERT_BURN_EVERY_S (0: off).
RESMON_ALERT_BURN_PAGE_1H = envfloat("RESMON_ALERT_BURN_PAGE_1H", 14.4, minimum=0.0)
RESMON_ALERT_BURN_PAGE_6H = envfloat("RESMON_ALERT_BURN_PAGE_6H", 6.0, minimum=0.0)
RESMON_ALERT_BURN_TICKET_3D = envfloat("RESMON_ALERT_BURN_TICKET_3D", 1.0, minimum=0.0)
RESMON_ALERT_BURN_EVERY_S = envfloat("RESMON_ALERT_BURN_EVERY_S", 60.0, minimum=0.0)
# Push ingestion: the MQTT broker `resmon ingest-mqtt` subscribes to, and how often the
# collector looks for push devices that went silent (interval x fail threshold).
RESMON_MQTT_URL = envstr("RESMON_MQTT_URL", "mqtt://127.0.0.1:1883")
RESMON_PUSH_SILENCE_CHECK_S = envfloat("RESMON_PUSH_SILENCE_CHECK_S", 5.0, minimum=0.5)

# Retention per tier (days): raw samples, 1-minute and 1-hour rollups (resmon prune).
# SLO windows reach 31 days back (the calendar month) and read minutes at their edges,
# hence the minimum of 32 for both rollup tiers.
RESMON_RETENTION_RAW_DAYS = envint("RESMON_RETENTION_RAW_DAYS", 7, minimum=1)
RESMON_RETENTION_MINUTE_DAYS = envint("RESMON_RETENTION_MINUTE_DAYS", 35, minimum=32)
RESMON_RETENTION_HOUR_DAYS = envint("RESMON_RETENTION_HOUR_DAYS", 400, minimum=32)
# How often a collector (the first of the live ones) prunes history past its retention;
# 0 turns it off (run `resmon prune` from cron instead).
RESMON_PRUNE_EVERY_S = envfloat("RESMON_PRUNE_EVERY_S", 3600.0, minimum=0.0)
# Burn rates over windows of 1 h or less are 0 until this many checks failed in them
# (one lost probe in 5 minutes at a 60 s interval would otherwise be a 200x burn).
RESMON_SLO_BURN_MIN_FAILED = envint("RESMON_SLO_BURN_MIN_FAILED", 3, minimum=1)
# Login lock-out (security.py): this many failures for one user name (or per client
# address) within the window lock that name (address) out for the lock-out time.
RESMON_LOGIN_MAX_FAILURES = envint("RESMON_LOGIN_MAX_FAILURES", 5, minimum=1)
RESMON_LOGIN_MAX_FAILURES_PER_ADDRESS = envint(
    "RESMON_LOGIN_MAX_FAILURES_PER_ADDRESS", 50, minimum=1
)
RESMON_LOGIN_WINDOW_S = envfloat("RESMON_LOGIN_WINDOW_S", 900.0, minimum=1.0)
RESMON_LOGIN_LOCKOUT_S = envfloat("RESMON_LOGIN_LOCKOUT_S", 900.0, minimum=1.0)
# Ingest requests per second per API token (burst: twice this), per web worker.
RESMON_INGEST_RATE_PER_S = envfloat("RESMON_INGEST_RATE_PER_S", 50.0, minimum=0.1)

# Monitoring the monitor: a per-device latency histogram on /metrics (18 series a device,
# off by default: the per-kind histogram is always there), the web's heartbeat period, and
# a dead-man's switch URL that the web GETs every RESMON_DEADMAN_INTERVAL_S while a
# collector is reporting (empty: off).
RESMON_METRICS_DEVICE_HISTOGRAMS = envbool("RESMON_METRICS_DEVICE_HISTOGRAMS", False)
# SLO figures on /metrics are recomputed at most this often per web process (0: none).
RESMON_METRICS_SLO_CACHE_S = envfloat("RESMON_METRICS_SLO_CACHE_S", 300.0, minimum=0.0)
RESMON_WEB_HEARTBEAT_S = envfloat("RESMON_WEB_HEARTBEAT_S", 10.0, minimum=0.0)
RESMON_DEADMAN_URL = envstr("RESMON_DEADMAN_URL", "").strip()
RESMON_DEADMAN_INTERVAL_S = envfloat("RESMON_DEADMAN_INTERVAL_S", 60.0, minimum=1.0)
if RESMON_DEADMAN_URL and not RESMON_DEADMAN_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured(
        f"RESMON_DEADMAN_URL={RESMON_DEADMAN_URL!r}: expected an http:// or https:// URL"
    )
# json: one JSON object per line (for log shippers); plain: for a terminal.
RESMON_LOG_FORMAT = envstr("RESMON_LOG_FORMAT", "plain").strip().lower()
if RESMON_LOG_FORMAT not in {"plain", "json"}:
    raise ImproperlyConfigured(f"RESMON_LOG_FORMAT={RESMON_LOG_FORMAT!r}: expected plain or json")
# The collector's durable spool (RESMON_DATA_DIR/spool) for batches the database did not
# take: past this size the oldest whole batches are dropped, counted and logged. 0: no spool.
RESMON_SPOOL_MAX_MB = envint("RESMON_SPOOL_MAX_MB", 512, minimum=0)
# The collector's writer waits this long for a locked SQLite database, then spools.
RESMON_WRITER_BUSY_TIMEOUT_S = envfloat("RESMON_WRITER_BUSY_TIMEOUT_S", 5.0, minimum=0.1)
# Dynamic sharding (`resmon collect` without --shard): a collector whose heartbeat is older
# than this many heartbeat periods is dead and its devices move to the live ones.
RESMON_COLLECTOR_DEAD_BEATS = envfloat("RESMON_COLLECTOR_DEAD_BEATS", 1.5, minimum=1.0)
# How often each collector writes its heartbeat (and so how fast a dead one is noticed).
RESMON_COLLECTOR_HEARTBEAT_S = envfloat("RESMON_COLLECTOR_HEARTBEAT_S", 5.0, minimum=0.5)
# Reuse a full device list (no changed_since) built less than this many seconds ago in
# the same web process, so many clients asking at once cost one build; 0 turns it off.
# While one request rebuilds an expired list, the others get the expired one (up to twice
# this old) rather than wait. The dashboard's own polls ask for changes only, which are
# never cached. With 10,000 devices and 4 concurrent clients this is the difference
# between a p95 of ~720 ms and 14-35 ms (docs/scaling.md).
RESMON_LIST_CACHE_S = envfloat("RESMON_LIST_CACHE_S", 1.0, minimum=0.0)

LOG_LEVEL = envstr("RESMON_LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {"()": "resourcemonitor.logging.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": RESMON_LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
