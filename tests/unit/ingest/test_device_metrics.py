"""Per-device metrics: stored by HTTP ingest and MQTT telemetry, read by the API, pruned
with raw samples, and exported on /metrics only for the fixed names."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from resourcemonitor.api.models import ApiToken
from resourcemonitor.inventory.models import CheckMethod, Device
from resourcemonitor.monitoring import retention
from resourcemonitor.monitoring.ingest import record_telemetry
from resourcemonitor.monitoring.metricstore import (
    EXPORTED,
    MetricRow,
    latest_exported,
    metrics_for_device,
    write_metrics,
)
from resourcemonitor.monitoring.models import DeviceMetric, DeviceMetricLatest

pytestmark = pytest.mark.django_db


@pytest.fixture
def sensor(db) -> Device:
    return Device.objects.create(
        name="lon-sensor-1", address="10.0.0.9", check_method=CheckMethod.PUSH
    )


@pytest.fixture
def pinged(db) -> Device:
    return Device.objects.create(name="lon-core-1", address="10.0.0.1")


@pytest.fixture
def public(settings):
    """Read endpoints (and /metrics) need no login, as in the demo."""
    settings.RESMON_PUBLIC_DASHBOARD = True
    return settings


@pytest.fixture
def token(alice) -> str:
    _, plain = ApiToken.issue(user=alice, name="sensors", scopes=["ingest"])
    return plain


def ingest(client, token, payload):
    return client.post(
        "/api/v1/ingest",
        json.dumps(payload),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )


def metrics_url(device_id: int, **params: str) -> str:
    query = "&".join(f"{key}={value}" for key, value in params.items())
    return f"/api/v1/devices/{device_id}/metrics" + (f"?{query}" if query else "")


def test_http_ingest_stores_a_reports_metrics_at_its_time(client, token, sensor):
    at = timezone.now().replace(microsecond=0) - timedelta(minutes=5)
    reply = ingest(
        client,
        token,
        {
            "device": sensor.name,
            "ok": True,
            "ts": at.isoformat(),
            "metrics": {"cpu_percent": 12.5, "clients": 7},
        },
    )
    assert reply.status_code == 200, reply.content
    assert reply.json()["metrics"] == 2
    rows = sorted(DeviceMetric.objects.values_list("t", "device_id", "name", "value"))
    t_ms = int(at.timestamp() * 1000)
    assert rows == [(t_ms, sensor.id, "clients", 7.0), (t_ms, sensor.id, "cpu_percent", 12.5)]
    # The same report again (a retried request): no second row, no error.
    assert (
        ingest(
            client,
            token,
            {
                "device": sensor.name,
                "ok": True,
                "ts": at.isoformat(),
                "metrics": {"cpu_percent": 99.0},
            },
        ).status_code
        == 200
    )
    assert DeviceMetric.objects.get(name="cpu_percent").value == 12.5


def test_telemetry_is_stored_for_any_known_enabled_device(sensor, pinged):
    now = timezone.now()
    paused = Device.objects.create(name="paused", address="10.0.0.3", enabled=False)
    stored, unknown = record_telemetry(
        [
            (pinged.name, now, {"cpu_percent": 40.0, "memory_percent": 55.0}),
            (sensor.id, now, {"uptime_s": 3600.0}),
            ("nobody", now, {"cpu_percent": 1.0}),
            (paused.name, now, {"cpu_percent": 1.0}),
        ]
    )
    assert stored == 3
    assert sorted(map(str, unknown)) == ["nobody", "paused"]
    assert DeviceMetric.objects.filter(device=pinged).count() == 2


def test_api_returns_series_by_name_oldest_first(client, public, pinged):
    now_ms = int(time.time() * 1000)
    write_metrics(
        [
            MetricRow(now_ms - 120_000, pinged.id, "cpu_percent", 10.0),
            MetricRow(now_ms - 60_000, pinged.id, "cpu_percent", 20.0),
            MetricRow(now_ms - 60_000, pinged.id, "in_bps", 8000.0),
            MetricRow(now_ms - 7_200_000, pinged.id, "cpu_percent", 99.0),  # before start
        ]
    )
    reply = client.get(metrics_url(pinged.id))
    assert reply.status_code == 200, reply.content
    body = reply.json()
    assert body["device"] == pinged.id and body["truncated"] is False
    assert [s["name"] for s in body["series"]] == ["cpu_percent", "in_bps"]
    assert [v for _, v in body["series"][0]["points"]] == [10.0, 20.0]
    assert body["series"][0]["points"][0][0].endswith("Z")

    only = client.get(metrics_url(pinged.id, name="in_bps")).json()
    assert [s["name"] for s in only["series"]] == ["in_bps"]
    newest = client.get(metrics_url(pinged.id, limit="1")).json()
    assert newest["truncated"] is True
    assert sum(len(s["points"]) for s in newest["series"]) == 1
    assert metrics_for_device(pinged.id, 0, now_ms, limit=10)[0][2] == 99.0


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start": "2025-01-02T00:00:00Z", "end": "2025-01-01T00:00:00Z"}, "start"),
        ({"start": "2025-01-01T00:00:00Z", "end": "2025-01-09T00:00:00Z"}, "start"),
        ({"start": "yesterday"}, "start"),
        ({"limit": "0"}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"name": "x" * 101}, "name"),
    ],
)
def test_bad_parameters_are_422_json(client, public, pinged, params, field):
    reply = client.get(metrics_url(pinged.id, **params))
    assert reply.status_code == 422, reply.content
    assert field in json.dumps(reply.json())


def test_unknown_device_is_404_and_the_schema_lists_the_endpoint(client, public):
    reply = client.get(metrics_url(999_999))
    assert reply.status_code == 404
    assert "detail" in reply.json()
    schema = client.get("/api/v1/openapi.json").json()
    operation = schema["paths"]["/api/v1/devices/{device_id}/metrics"]["get"]
    assert {p["name"] for p in operation["parameters"]} >= {"start", "end", "name", "limit"}
    assert set(operation["responses"]) >= {"200", "404", "422"}


def test_metrics_are_pruned_with_raw_samples(pinged, settings):
    settings.RESMON_RETENTION_RAW_DAYS = 7
    now = timezone.now()
    now_ms = int(now.timestamp() * 1000)
    write_metrics(
        [
            MetricRow(now_ms - 8 * 86_400_000, pinged.id, "cpu_percent", 1.0),
            MetricRow(now_ms - 86_400_000, pinged.id, "cpu_percent", 2.0),
        ]
    )
    report = retention.prune(now=now)
    assert report.metrics == 1
    assert list(DeviceMetric.objects.values_list("value", flat=True)) == [2.0]
    assert list(DeviceMetricLatest.objects.values_list("value", flat=True)) == [2.0]
    write_metrics([MetricRow(now_ms - 9 * 86_400_000, pinged.id, "uptime_s", 5.0)])
    retention.prune(now=now)  # a latest value past retention goes too
    assert not DeviceMetricLatest.objects.filter(name="uptime_s").exists()


def test_only_the_fixed_names_reach_slash_metrics(client, public, pinged, sensor):
    now_ms = int(time.time() * 1000)
    write_metrics(
        [
            MetricRow(now_ms - 30_000, pinged.id, "cpu_percent", 10.0),
            MetricRow(now_ms - 10_000, pinged.id, "cpu_percent", 25.0),  # the latest wins
            MetricRow(now_ms - 10_000, pinged.id, "in_bps", 8000.0),
            MetricRow(now_ms - 10_000, sensor.id, "free_text_name", 1.0),
            MetricRow(now_ms - 3_600_000, sensor.id, "cpu_percent", 90.0),  # too old
        ]
    )
    # A late, older row (MQTT may deliver out of order) does not replace the latest value.
    write_metrics([MetricRow(now_ms - 20_000, pinged.id, "cpu_percent", 15.0)])
    families = latest_exported()
    assert families == {
        "resmon_device_cpu_ratio": [("lon-core-1", 0.25)],
        "resmon_device_receive_bytes_per_second": [("lon-core-1", 1000.0)],
    }
    text = client.get("/metrics").content.decode()
    found = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert found[("resmon_device_cpu_ratio", (("device", "lon-core-1"),))] == 0.25
    assert "free_text_name" not in text
    for family, _, _ in EXPORTED.values():
        assert f"# TYPE {family} gauge" in text
