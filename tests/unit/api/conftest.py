from __future__ import annotations

import pytest


@pytest.fixture
def public(settings):
    """The demo's setting: the read API and dashboard need no login."""
    settings.RESMON_PUBLIC_DASHBOARD = True
    return settings
