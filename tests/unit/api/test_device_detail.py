"""GET /api/v1/devices/{id}, /samples and /latency."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from resourcemonitor.api.schemas import DeviceDetail
from resourcemonitor.monitoring.models import Event, Rollup
from resourcemonitor.monitoring.rollups import RollupBuffer
from resourcemonitor.monitoring.storage import Batch, SampleRow, write_batch
from tests.unit.api.helpers import insert_samples, set_state


def test_detail(client, public, network):
    set_state(network.dist, "down", last_error="No answer within 2 s")
    for minute in range(25):
        Event.objects.create(
            device=network.dist,
            at=timezone.now() - timedelta(minutes=60 - minute),
            from_status="up" if minute % 2 == 0 else "down",
            to_status="down" if minute % 2 == 0 else "up",
            message=f"change {minute}",
        )
    response = client.get(f"/api/v1/devices/{network.dist.pk}")
    assert response.status_code == 200
    body = response.json()
    DeviceDetail.model_validate(body)
    assert body["name"] == "lon-dist-1"
    assert body["status"] == "down"
    assert body["last_error"] == "No answer within 2 s"
    assert body["parent_name"] == "lon-core-1"
    assert body["children_count"] == 1
    assert body["slo_target"] == 99.9
    assert body["check"] == {
        "method": "http",
        "port": 8080,
        "path": "/health",
        "tls": False,
        "expect_status": 200,
        "body_match": "",
        "interval_s": 10.0,
        "timeout_s": 2.0,
        "fail_threshold": 3,
        "recover_threshold": 1,
        "latency_threshold_ms": None,
    }
    events = body["recent_events"]
    assert len(events) == 20
    assert events[0]["message"] == "change 24"  # newest first
    assert events[0]["device_name"] == "lon-dist-1"


def test_detail_of_device_without_state(client, public, network):
    body = client.get(f"/api/v1/devices/{network.server.pk}").json()
    assert body["status"] == "unknown"
    assert body["stale"] is False
    assert body["recent_events"] == []


def test_detail_stale(client, public, network):
    set_state(network.core, "up", checked_ago=600)
    body = client.get(f"/api/v1/devices/{network.core.pk}").json()
    assert (body["status"], body["stale"], body["last_known_status"]) == ("unknown", True, "up")


@pytest.mark.parametrize("suffix", ["", "/samples", "/latency"])
def test_unknown_device_is_json_404(client, public, network, suffix):
    response = client.get(f"/api/v1/devices/999999{suffix}")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}


def test_non_numeric_id_is_422_or_404(client, public, network):
    response = client.get("/api/v1/devices/abc")
    assert response.status_code in {404, 422}
    assert response["Content-Type"].startswith("application/json")


class TestSamples:
    def url(self, device) -> str:
        return f"/api/v1/devices/{device.pk}/samples"

    def test_default_is_last_hour_oldest_first(self, client, public, network):
        now_ms = int(timezone.now().timestamp() * 1000)
        insert_samples(
            [
                (now_ms - 7200_000, network.core.pk, True, 1000, None),  # 2 h ago: outside
                (now_ms - 1800_000, network.core.pk, False, None, "timeout"),
                (now_ms - 60_000, network.core.pk, True, 1500, None),
                (now_ms - 60_000, network.pc.pk, True, 1500, None),  # another device
            ]
        )
        response = client.get(self.url(network.core))
        assert response.status_code == 200
        body = response.json()
        assert body["truncated"] is False
        assert body["items"] == [
            {
                "t": body["items"][0]["t"],
                "ok": False,
                "latency_ms": None,
                "error": "timeout",
            },
            {"t": body["items"][1]["t"], "ok": True, "latency_ms": 1.5, "error": None},
        ]
        assert body["items"][0]["t"] < body["items"][1]["t"]
        assert body["items"][0]["t"].endswith("Z")

    def test_range_and_limit_keep_the_newest(self, client, public, network):
        base_ms = 1_700_000_000_000
        insert_samples(
            [(base_ms + i * 1000, network.core.pk, True, 100 * i, None) for i in range(10)]
        )
        body = client.get(
            self.url(network.core),
            {"start": "1700000000", "end": "2023-11-14T22:13:30Z", "limit": 3},
        ).json()
        assert body["truncated"] is True
        assert [item["latency_ms"] for item in body["items"]] == [0.7, 0.8, 0.9]
        assert body["start"] == "2023-11-14T22:13:20.000Z"

    @pytest.mark.parametrize(
        ("params", "field"),
        [
            ({"start": "2025-01-02T00:00:00Z", "end": "2025-01-01T00:00:00Z"}, "start"),
            ({"start": "2025-01-01T00:00:00Z", "end": "2025-01-01T00:00:00Z"}, "start"),
            ({"start": "2025-01-01T00:00:00Z", "end": "2025-01-09T00:00:00Z"}, "start"),
            ({"start": "not-a-time"}, "start"),
            ({"end": "2025-02-30T00:00:00Z"}, "end"),
            ({"limit": "0"}, "limit"),
            ({"limit": "10001"}, "limit"),
            ({"start": "1e400"}, "start"),
        ],
    )
    def test_bad_parameters(self, client, public, network, params, field):
        response = client.get(self.url(network.core), params)
        assert response.status_code == 422
        assert any(error["loc"][-1] == field for error in response.json()["detail"])

    def test_unencoded_plus_in_offset_is_understood(self, client, public, network):
        # "+00:00" typed into a URL arrives as " 00:00".
        response = client.get(
            self.url(network.core)
            + "?start=2025-01-01T00:00:00+00:00&end=2025-01-01T01:00:00%2B00:00"
        )
        assert response.status_code == 200
        assert response.json()["start"] == "2025-01-01T00:00:00.000Z"


class TestLatency:
    def test_minutes_from_rollups_and_those_the_writer_still_holds(self, client, public, network):
        now_s = int(timezone.now().timestamp())
        minute = now_s - now_s % 60
        # Ten minutes ago: closed, in the minute rollups.
        Rollup.objects.create(
            device=network.core,
            resolution=60,
            bucket=minute - 600,
            count=6,
            ok_count=5,
            latency_count=5,
            latency_sum_ms=10.0,
            latency_min_ms=1.0,
            latency_max_ms=4.0,
        )
        # This minute: written as the collector writes it, its rollup still in the
        # writer's memory (not in the table). The chart's right edge must show it.
        buffer = RollupBuffer()
        batch = Batch(
            samples=[
                SampleRow(minute * 1000, network.core.pk, False, None, "timeout"),
                SampleRow(minute * 1000 + 1, network.core.pk, False, None, "timeout"),
            ]
        )
        write_batch(batch, rollups=buffer)
        assert not Rollup.objects.filter(device=network.core, bucket=minute).exists()
        # Outside the window, another resolution, another device: all ignored.
        Rollup.objects.create(device=network.core, resolution=60, bucket=minute - 7200, count=1)
        Rollup.objects.create(device=network.core, resolution=3600, bucket=minute - 660, count=9)
        Rollup.objects.create(device=network.pc, resolution=60, bucket=minute - 600, count=9)

        response = client.get(f"/api/v1/devices/{network.core.pk}/latency")
        assert response.status_code == 200
        body = response.json()
        assert body["resolution_s"] == 60
        points = body["items"]
        assert len(points) == 2
        assert points[0]["count"] == 6 and points[0]["ok"] == 5
        assert points[0]["latency_avg_ms"] == 2.0
        assert points[0]["latency_max_ms"] == 4.0
        assert points[1]["count"] == 2 and points[1]["ok"] == 0
        assert points[1]["latency_avg_ms"] is None  # every check failed: no latency
        assert points[0]["t"] < points[1]["t"]

    def test_minutes_parameter(self, client, public, network):
        now_s = int(timezone.now().timestamp())
        minute = now_s - now_s % 60
        Rollup.objects.create(device=network.core, resolution=60, bucket=minute - 600, count=1)
        url = f"/api/v1/devices/{network.core.pk}/latency"
        assert len(client.get(url, {"minutes": 5}).json()["items"]) == 0
        assert len(client.get(url, {"minutes": 15}).json()["items"]) == 1

    @pytest.mark.parametrize("minutes", ["0", "1441", "x"])
    def test_bad_minutes(self, client, public, network, minutes):
        response = client.get(f"/api/v1/devices/{network.core.pk}/latency", {"minutes": minutes})
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"][-1] == "minutes"
