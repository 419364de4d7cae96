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
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
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

LOGIN_URL = "/admin/login/"

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = envbool("RESMON_SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

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

LOG_LEVEL = envstr("RESMON_LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
