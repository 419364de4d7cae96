"""GET /api/v1/summary/groups: each site, and each kind in it, against its SLO."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from resourcemonitor.inventory.models import Device
from resourcemonitor.monitoring import slo
from resourcemonitor.monitoring.models import GroupSlo
from tests.unit.slo.helpers import write

URL = "/api/v1/summary/groups"


def _checks(network, now) -> None:
    """Ten minutes of checks, whole minutes before the current one: the pc fails half."""
    Device.objects.update(created_at=now - timedelta(days=1))
    start = now.replace(second=0, microsecond=0) - timedelta(minutes=10)
    moments = [start + timedelta(seconds=30 * k) for k in range(20)]
    for device in (network.core, network.dist, network.phone, network.server):
        write(device, [(moment, True) for moment in moments])
    write(network.pc, [(moment, k % 2 == 0) for k, moment in enumerate(moments)])


def test_each_site_and_kind_counts_its_devices_checks_as_one_stream(client, public, network):
    now = timezone.now()
    _checks(network, now)
    body = client.get(URL, {"window": "1h"}).json()
    assert body["window"] == "1h"
    groups = {(group["site"], group["kind"]): group for group in body["groups"]}
    assert set(groups) == {
        ("London", None),
        ("London", "router"),
        ("London", "switch"),
        ("London", "phone"),
        ("London", "pc"),
        ("Paris", None),
        ("Paris", "server"),
    }
    london = groups[("London", None)]
    assert (london["devices"], london["checks"], london["failed"]) == (5, 80, 10)
    assert london["sli"] == 100.0 * 70 / 80
    assert london["group"] == "site:London"
    assert london["defined"] is False
    assert london["target"] == slo.DEFAULT_TARGET
    assert groups[("London", "pc")]["sli"] == 50.0
    assert groups[("London", "pc")]["group"] == "site:London,kind:pc"
    assert groups[("Paris", None)]["sli"] == 100.0
    # The same figures as the SLO API's own group report for that selector.
    report = slo.group_report("site:London", "1h", now)
    assert (report["checks"], report["failed"]) == (london["checks"], london["failed"])
    assert london["budget_remaining_pct"] == report["budget_remaining_pct"]


def test_a_defined_group_slo_gives_its_target_and_name(client, public, network):
    now = timezone.now()
    _checks(network, now)
    GroupSlo.objects.create(name="London access", site=network.london, kind="pc", target=40.0)
    body = client.get(URL, {"window": "1h"}).json()
    pcs = next(g for g in body["groups"] if g["site"] == "London" and g["kind"] == "pc")
    assert (pcs["defined"], pcs["name"], pcs["target"]) == (True, "London access", 40.0)
    assert pcs["sli"] >= pcs["target"]


def test_no_checks_yet_is_not_measured(client, public, network):
    body = client.get(URL).json()
    assert body["window"] == "30d"
    assert all(group["sli"] is None and group["checks"] == 0 for group in body["groups"])


def test_a_bad_window_is_422(client, public, network):
    response = client.get(URL, {"window": "2d"})
    assert response.status_code == 422
    assert response["Content-Type"].startswith("application/json")
