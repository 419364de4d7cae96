"""Bad input the alerting relies on being refused: each names its field, nothing is saved."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError

from resourcemonitor.alerts.models import Channel
from resourcemonitor.inventory.models import Device, MaintenanceWindow

pytestmark = pytest.mark.django_db


def test_maintenance_window_ending_before_it_starts():
    start = datetime(2026, 3, 1, 22, 0, tzinfo=UTC)
    window = MaintenanceWindow(
        name="backwards", starts_at=start, ends_at=start - timedelta(hours=1)
    )
    with pytest.raises(ValidationError) as info:
        window.full_clean()
    assert list(info.value.message_dict) == ["ends_at"]
    assert not MaintenanceWindow.objects.exists()


def test_dependency_cycle_is_refused_and_the_old_parent_kept(network):
    core = Device.objects.get(pk=network.core.pk)
    core.parent = network.access  # core → dist → access → core
    with pytest.raises(ValidationError) as info:
        core.full_clean()
    assert "parent" in info.value.message_dict
    assert Device.objects.get(pk=core.pk).parent_id is None


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"target": "json//missing-colon"}, "target"),
        ({"target": "json://127.0.0.1/x", "severities": ["urgent"]}, "severities"),
        ({"target": "json://127.0.0.1/x", "device_kinds": ["toaster"]}, "device_kinds"),
        ({"kind": "email", "target": ""}, "target"),
    ],
)
def test_channel_fields(fields, field):
    with pytest.raises(ValidationError) as info:
        Channel(name="c", **fields).full_clean()
    assert field in info.value.message_dict
