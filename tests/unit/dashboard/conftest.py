from __future__ import annotations

import pytest


@pytest.fixture
def public(settings):
    """The demo's setting: the dashboard needs no login."""
    settings.RESMON_PUBLIC_DASHBOARD = True
    return settings
