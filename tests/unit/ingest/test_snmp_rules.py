"""The SNMP probe's pure rules (reboots, counters, credentials) and Device's SNMP checks."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from resourcemonitor.inventory.models import CheckMethod, Device
from resourcemonitor.monitoring.probes.snmp import (
    TICKS_WRAP,
    counter_delta,
    credentials,
    uptime_went_back,
)


@pytest.mark.parametrize(
    ("previous", "current", "reboot"),
    [
        (500_000, 500_100, False),
        (500_000, 500_000, False),
        (500_000, 1_200, True),
        (TICKS_WRAP - 50, 30, False),  # the 32-bit TimeTicks wrap after ~497 days
    ],
)
def test_a_reboot_is_a_lower_uptime_but_not_a_wrap(previous, current, reboot):
    assert uptime_went_back(previous, current) is reboot


def test_counter_deltas():
    assert counter_delta(100, 350, is_32bit=False) == 250
    assert counter_delta(2**32 - 100, 50, is_32bit=True) == 150
    assert counter_delta(5_000, 10, is_32bit=False) is None  # a 64-bit reset: no rate


class V3:
    snmp_version = "3"
    snmp_v3_user = "ops"
    snmp_v3_auth_protocol = "sha"
    snmp_v3_auth_key = "auth-key-1"
    snmp_v3_priv_protocol = "aes"
    snmp_v3_priv_key = ""


def test_v3_without_a_privacy_key_is_auth_no_priv():
    data = credentials(V3())  # type: ignore[arg-type]
    assert data.userName == "ops"
    assert data.privacy_key is None and data.authentication_key == "auth-key-1"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"snmp_version": "2c", "snmp_community": ""}, "snmp_community"),
        ({"snmp_version": "3", "snmp_v3_user": ""}, "snmp_v3_user"),
        (
            {"snmp_version": "3", "snmp_v3_user": "u", "snmp_v3_auth_key": "short"},
            "snmp_v3_auth_key",
        ),
        (
            {"snmp_version": "3", "snmp_v3_user": "u", "snmp_v3_priv_key": "long-enough"},
            "snmp_v3_auth_key",
        ),
    ],
)
def test_device_snmp_settings_are_checked(db, fields, field):
    device = Device(name="sw", address="10.0.0.1", check_method=CheckMethod.SNMP, **fields)
    with pytest.raises(ValidationError) as caught:
        device.full_clean()
    assert field in caught.value.message_dict
