from __future__ import annotations

import shutil
import subprocess

import pytest

# Headless Chromium for the system page's browser test.
from tests.chromium import browser  # noqa: F401


@pytest.fixture
def public(settings):
    """The demo's setting: read endpoints (and /metrics) need no login."""
    settings.RESMON_PUBLIC_DASHBOARD = True
    return settings


def promtool_check(text: str) -> subprocess.CompletedProcess[str] | None:
    """``promtool check metrics`` on ``text``; None when promtool is not installed."""
    promtool = shutil.which("promtool")
    if promtool is None:
        return None
    return subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )


@pytest.fixture(autouse=True)
def fresh_slo_cache():
    """SLO lines are cached per process; each test starts from its own database."""
    from resourcemonitor.monitoring.metrics import reset_slo_cache

    reset_slo_cache()
    yield
    reset_slo_cache()
