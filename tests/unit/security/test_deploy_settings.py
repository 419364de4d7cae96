"""`resmon check --deploy` is clean with the documented production variables, and not without."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PRODUCTION = {
    "RESMON_SECRET_KEY": "k" * 20 + "-a-long-random-production-secret-with-variety-0123456789",
    "RESMON_SECURE_COOKIES": "1",
    "RESMON_HSTS_SECONDS": "31536000",
    "RESMON_HSTS_INCLUDE_SUBDOMAINS": "1",
    "RESMON_HSTS_PRELOAD": "1",
    "RESMON_SSL_REDIRECT": "1",
    "RESMON_ALLOWED_HOSTS": "monitor.example.net",
}


def _check(tmp_path: Path, extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RESMON_", "DJANGO_"))}
    env.pop("DATABASE_URL", None)
    env.update({"RESMON_DATA_DIR": str(tmp_path), **extra})
    return subprocess.run(
        [sys.executable, "-m", "resourcemonitor", "check", "--deploy", "--fail-level", "WARNING"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_settings_pass_check_deploy(tmp_path):
    result = _check(tmp_path, PRODUCTION)
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_without_them_check_deploy_names_each_gap(tmp_path):
    result = _check(tmp_path, {"RESMON_SECRET_KEY": PRODUCTION["RESMON_SECRET_KEY"]})
    assert result.returncode != 0
    # HSTS, the https redirect, and the session and CSRF cookies' Secure flag.
    for code in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert code in result.stderr, code


def test_a_bad_value_is_a_one_line_error(tmp_path):
    result = _check(tmp_path, {**PRODUCTION, "RESMON_HSTS_SECONDS": "a year"})
    assert result.returncode == 2
    assert "RESMON_HSTS_SECONDS='a year'" in result.stderr
    assert "Traceback" not in result.stderr
