"""GET /api/v1/slo, /api/v1/devices/{id}/slo, /history, /slo/burndown: figures and bad input."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from resourcemonitor.inventory.models import Device
from resourcemonitor.monitoring.models import GroupSlo
from tests.unit.slo.helpers import created, write


@pytest.fixture
def public(settings):
    settings.RESMON_PUBLIC_DASHBOARD = True
    return settings


@pytest.fixture
def checked(network):
    """lon-core-1 and lon-acc-1 checked every minute for the last 3 hours."""
    now = timezone.now().replace(second=0, microsecond=0)
    for device, failed_every in ((network.core, 0), (network.access, 10)):
        Device.objects.filter(pk=device.pk).update(check_interval_s=60.0)
        created(device, now - timedelta(hours=3))
        rows = [
            (now - timedelta(minutes=i), not (failed_every and i % failed_every == 0))
            for i in range(1, 181)
        ]
        write(device, rows)
    return network


def field_of(response) -> list:
    return [item["loc"][-1] for item in response.json()["detail"]]


def test_slo_report_lists_devices_worst_first(
    client, public, checked, django_assert_max_num_queries
):
    with django_assert_max_num_queries(26):
        response = client.get("/api/v1/slo", {"window": "24h"})
    assert response.status_code == 200
    body = response.json()
    assert body["window"] == "24h"
    assert body["count"] == 6
    first = body["items"][0]
    assert first["name"] == "lon-acc-1"
    assert first["checks"] == 180 and first["failed"] == 18
    assert first["sli"] == pytest.approx(90.0)
    assert first["coverage"] == 100.0
    assert set(first["burn_rates"]) == {"5m", "30m", "1h", "6h", "1d", "3d"}
    # Not measured sorts last.
    assert body["items"][-1]["sli"] is None


def test_query_count_does_not_grow_with_devices(client, public, checked):
    def queries() -> int:
        with CaptureQueriesContext(connection) as context:
            assert client.get("/api/v1/slo").status_code == 200
        return len(context.captured_queries)

    before = queries()
    for i in range(20):
        Device.objects.create(name=f"extra-{i}", address=f"127.30.0.{i}", kind="pc")
    # The count depends only on the windows' edges (which move with the clock), never on
    # the number of devices: 20 more devices may not add queries one by one.
    after = queries()
    assert after <= 26 and abs(after - before) <= 3


def test_group_filter_and_group_target(client, public, checked):
    response = client.get(
        "/api/v1/slo", {"window": "24h", "group": "site:London|kind:switch", "target": 95}
    )
    assert response.status_code == 200
    body = response.json()
    assert {item["name"] for item in body["items"]} == {"lon-dist-1", "lon-acc-1"}
    (group,) = body["groups"]
    assert group["target"] == 95.0
    assert (group["checks"], group["failed"]) == (180, 18)


def test_defined_group_slos_are_reported(client, public, checked):
    GroupSlo.objects.create(name="London routers", site=checked.london, kind="router", target=99.5)
    body = client.get("/api/v1/slo", {"window": "24h"}).json()
    (group,) = body["groups"]
    assert group["name"] == "London routers"
    assert group["group"] == "site:London,kind:router"
    assert group["sli"] == 100.0


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"window": "2w"}, "window"),
        ({"group": "colour:red"}, "group"),
        ({"group": "site:London", "target": 0}, "target"),
        ({"group": "site:London", "target": 100}, "target"),
        ({"group": "site:London", "target": "high"}, "target"),
        ({"target": 99}, "target"),
    ],
)
def test_slo_bad_input_is_a_422_naming_the_field(client, public, network, params, field):
    response = client.get("/api/v1/slo", params)
    assert response.status_code == 422
    assert field in field_of(response)


def test_device_slo_for_the_drawer(client, public, checked, django_assert_max_num_queries):
    with django_assert_max_num_queries(70):
        response = client.get(f"/api/v1/devices/{checked.access.pk}/slo")
    assert response.status_code == 200
    body = response.json()
    assert body["target"] == 99.9
    windows = {w["window"]: w for w in body["windows"]}
    assert set(windows) == {"1h", "24h", "7d", "30d", "month"}
    # The fixture wrote one check a minute up to the minute before "now"; should the clock
    # pass a minute boundary meanwhile, the 1 h window holds one check less.
    hour = (windows["1h"]["checks"], windows["1h"]["failed"])
    assert hour in {(60, 6), (59, 5)}
    assert windows["24h"]["budget_remaining_pct"] == pytest.approx(100 * (1 - 18 / 0.18))
    assert windows["24h"]["budget_remaining_min"] == pytest.approx(0.18 - 18)
    assert windows["1h"]["burn_rates"]["1h"] == pytest.approx(hour[1] / hour[0] / 0.001)
    assert client.get("/api/v1/devices/99999/slo").status_code == 404


def test_history_picks_the_tier_by_step(client, public, checked):
    url = f"/api/v1/devices/{checked.access.pk}/history"
    end = timezone.now()
    start = end - timedelta(hours=3, minutes=5)
    body = client.get(url, {"start": start.isoformat(), "end": end.isoformat(), "step": 600}).json()
    assert body["source"] == "1m"
    assert sum(p["checks"] for p in body["items"]) == 180
    assert sum(p["ok"] for p in body["items"]) == 162
    body = client.get(
        url, {"start": start.isoformat(), "end": end.isoformat(), "step": 3600}
    ).json()
    assert body["source"] == "1h"
    assert sum(p["checks"] for p in body["items"]) == 180
    body = client.get(url, {"start": start.isoformat(), "end": end.isoformat(), "step": 30}).json()
    assert body["source"] == "raw"
    assert sum(p["checks"] for p in body["items"]) == 180
    assert body["items"][0]["latency_avg_ms"] == pytest.approx(5.0)
    # Default: the finest step within 1,000 points (24 h → 120 s).
    body = client.get(url).json()
    assert body["step_s"] == 120 and len(body["items"]) <= 1000


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}, "start"),
        ({"start": "2026-01-01T00:00:00Z", "end": "2026-01-30T00:00:00Z", "step": 60}, "step"),
        ({"step": 0}, "step"),
        ({"start": "yesterday"}, "start"),
        ({"start": "2020-01-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"}, "start"),
    ],
)
def test_history_bad_input_is_a_422_naming_the_field(client, public, network, params, field):
    response = client.get(f"/api/v1/devices/{network.core.pk}/history", params)
    assert response.status_code == 422
    assert field in field_of(response)


def test_history_of_an_unknown_device_is_a_404(client, public, network):
    assert client.get("/api/v1/devices/99999/history").status_code == 404


def test_burndown_falls_with_failed_checks(client, public, checked):
    response = client.get(f"/api/v1/devices/{checked.access.pk}/slo/burndown", {"window": "24h"})
    assert response.status_code == 200
    series = response.json()
    assert series[0]["remaining_pct"] <= 100.0
    assert series[-1]["remaining_pct"] == pytest.approx(100 * (1 - 18 / 0.18))
    assert (
        client.get(f"/api/v1/devices/{checked.access.pk}/slo/burndown", {"window": "x"}).status_code
        == 422
    )


def test_needs_a_login_when_not_public(client, network):
    assert client.get("/api/v1/slo").status_code == 401


def test_in_the_openapi_schema(client, public):
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    assert "/api/v1/slo" in paths
    assert "/api/v1/devices/{device_id}/history" in paths
    assert "/api/v1/devices/{device_id}/slo" in paths
