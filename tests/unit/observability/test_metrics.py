"""GET /metrics: valid exposition, the right numbers, O(devices), and who may scrape."""

from __future__ import annotations

import gzip
import time
from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from resourcemonitor.api.models import ApiToken
from resourcemonitor.inventory.models import Device, Kind
from resourcemonitor.monitoring import metrics
from resourcemonitor.monitoring.models import Heartbeat
from resourcemonitor.monitoring.storage import Batch, SampleRow, write_batch
from tests.unit.api.helpers import set_state
from tests.unit.observability.conftest import promtool_check


def scrape(client, **headers) -> str:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return response.content.decode()


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample as {(name, frozenset(labels)): value}, through prometheus-client's parser."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(found, name: str, **labels) -> float | None:
    return found.get((name, frozenset(labels.items())))


def test_device_status_latency_and_counts(client, public, network):
    set_state(network.core, "up", latency_ms=12.5)
    set_state(network.dist, "down", latency_ms=None)
    set_state(network.access, "degraded", latency_ms=400.0)
    set_state(network.phone, "unreachable", latency_ms=None)
    set_state(network.pc, "up", checked_ago=3600)  # stale: shown as unknown
    # server: never checked, no state at all → unknown

    found = samples(scrape(client))

    assert value(found, "resmon_device_up", device="lon-core-1", kind="router", site="London") == 1
    assert value(found, "resmon_device_up", device="lon-dist-1", kind="switch", site="London") == 0
    assert value(found, "resmon_device_up", device="lon-acc-1", kind="switch", site="London") == 1
    assert value(found, "resmon_device_up", device="lon-pc-1", kind="pc", site="London") == 0
    assert value(found, "resmon_device_status", device="lon-dist-1", status="down") == 1
    assert value(found, "resmon_device_status", device="lon-pc-1", status="unknown") == 1
    assert value(found, "resmon_device_status", device="lon-pc-1", status="up") is None
    assert value(found, "resmon_device_latency_seconds", device="lon-core-1") == 0.0125
    assert value(found, "resmon_device_latency_seconds", device="lon-acc-1") == 0.4
    assert value(found, "resmon_device_latency_seconds", device="lon-dist-1") is None
    assert value(found, "resmon_devices", status="up") == 1
    assert value(found, "resmon_devices", status="unknown") == 2
    assert value(found, "resmon_devices", status="down") == 1
    assert value(found, "resmon_devices", status="maintenance") == 0


def test_latency_histogram_from_rollups_and_failures_by_class(client, public, network):
    now_ms = int(time.time() * 1000)
    rows = [
        SampleRow(now_ms - 5000, network.core.id, True, 800, None),  # 0.8 ms → le 0.001
        SampleRow(now_ms - 4000, network.core.id, True, 30_000, None),  # 30 ms → le 0.05
        SampleRow(now_ms - 3000, network.dist.id, True, 120_000_000, None),  # 120 s → +Inf
        SampleRow(now_ms - 2000, network.dist.id, False, None, "timeout"),
        SampleRow(now_ms - 1000, network.access.id, False, None, "timeout"),
        SampleRow(now_ms - 500, network.access.id, False, None, "http_503"),
        SampleRow(now_ms - 120_000, network.access.id, False, None, "refused"),  # too old
    ]
    write_batch(Batch(samples=rows))

    found = samples(scrape(client))

    bucket = "resmon_check_latency_seconds_bucket"
    assert value(found, bucket, kind="router", le="0.001") == 1
    assert value(found, bucket, kind="router", le="0.02") == 1
    assert value(found, bucket, kind="router", le="0.05") == 2
    assert value(found, bucket, kind="router", le="+Inf") == 2
    assert value(found, "resmon_check_latency_seconds_count", kind="router") == 2
    assert value(found, "resmon_check_latency_seconds_sum", kind="router") == pytest.approx(0.0308)
    assert value(found, bucket, kind="switch", le="60") == 0
    assert value(found, bucket, kind="switch", le="+Inf") == 1
    failures = "resmon_check_failures_last_minute"
    assert value(found, failures, error="timeout") == 2
    assert value(found, failures, error="http_503") == 1
    assert value(found, failures, error="refused") is None


def test_per_device_histograms_only_when_asked(client, public, network, settings):
    now_ms = int(time.time() * 1000)
    write_batch(Batch(samples=[SampleRow(now_ms - 1000, network.core.id, True, 800, None)]))
    assert 'device="lon-core-1",le=' not in scrape(client)
    settings.RESMON_METRICS_DEVICE_HISTOGRAMS = True
    found = samples(scrape(client))
    assert value(found, "resmon_check_latency_seconds_bucket", device="lon-core-1", le="0.001") == 1


def test_collector_and_component_metrics_from_heartbeats(client, public, db):
    Heartbeat.beat(
        component="collector",
        instance="collector@a:1",
        info={
            "checks_total": 1234,
            "checks_per_s": 99.5,
            "lag_p50_ms": 2.0,
            "lag_p99_ms": 250.0,
            "write_ms": 4.5,
            "queue_depth": 17,
            "spool_batches": 3,
            "spool_bytes": 40960,
            "spool_oldest_s": 12.5,
            "errors_total": 5,
        },
    )
    old = Heartbeat.beat(component="collector", instance="collector@b:2", info={})
    Heartbeat.objects.filter(pk=old.pk).update(last_seen_at=timezone.now() - timedelta(minutes=5))
    gone = Heartbeat.beat(component="collector", instance="collector@c:3", info={})
    Heartbeat.objects.filter(pk=gone.pk).update(last_seen_at=timezone.now() - timedelta(hours=2))

    found = samples(scrape(client))

    assert value(found, "resmon_component_up", component="collector", instance="collector@a:1") == 1
    assert value(found, "resmon_component_up", component="collector", instance="collector@b:2") == 0
    assert (
        value(found, "resmon_component_up", component="collector", instance="collector@c:3") is None
    )
    # the parser strips _total from counter families' names but not from samples
    assert value(found, "resmon_collector_checks_total", instance="collector@a:1") == 1234
    assert value(found, "resmon_collector_errors_total", instance="collector@a:1") == 5
    assert value(found, "resmon_collector_checks_per_second", instance="collector@a:1") == 99.5
    assert (
        value(found, "resmon_collector_schedule_lag_p99_seconds", instance="collector@a:1") == 0.25
    )
    assert (
        value(found, "resmon_collector_write_duration_seconds", instance="collector@a:1") == 0.0045
    )
    assert value(found, "resmon_collector_spool_batches", instance="collector@a:1") == 3
    assert value(found, "resmon_collector_spool_bytes", instance="collector@a:1") == 40960
    assert (
        value(found, "resmon_collector_spool_oldest_age_seconds", instance="collector@a:1") == 12.5
    )
    assert value(found, "resmon_collector_queue_depth", instance="collector@a:1") == 17


def test_ingester_metrics_from_heartbeats(client, public, db):
    Heartbeat.beat(
        component="ingester",
        instance="ingester@a:1",
        info={"received_total": 10, "bad_total": 2, "pending": 4, "connected": True},
    )
    found = samples(scrape(client))
    assert value(found, "resmon_ingester_messages_received_total", instance="ingester@a:1") == 10
    assert value(found, "resmon_ingester_bad_messages_total", instance="ingester@a:1") == 2
    assert value(found, "resmon_ingester_pending_results", instance="ingester@a:1") == 4
    assert value(found, "resmon_ingester_connected", instance="ingester@a:1") == 1
    body = client.get("/api/v1/system").json()
    assert body["components"][0]["queue_depth"] == 4
    assert body["components"][0]["errors_total"] == 2


def test_web_request_latency_is_recorded_by_route(client, public, db):
    client.get("/healthz")
    client.get("/")
    client.get("/api/v1/devices/999999")
    client.get("/no/such/page")
    found = samples(scrape(client))
    count = "resmon_http_request_duration_seconds_count"
    assert value(found, count, handler="/healthz", method="GET", code="2xx") >= 1
    assert value(found, count, handler="/", method="GET", code="2xx") >= 1
    assert value(found, count, handler="/api/v1/devices/<device_id>", method="GET", code="4xx") >= 1
    assert value(found, count, handler="unmatched", method="GET", code="4xx") >= 1
    # by route pattern, not by raw path: no series per device id
    keys = [labels for name, labels in found if name == count]
    assert not any("999999" in str(labels) for labels in keys)


def test_label_values_are_escaped(client, public, db):
    Device.objects.create(name='odd "name"\\with\nnewline', address="127.0.0.9", kind=Kind.OTHER)
    text = scrape(client)
    found = samples(text)
    assert (
        value(found, "resmon_device_status", device='odd "name"\\with\nnewline', status="unknown")
        == 1
    )


@pytest.mark.skipif(promtool_check("") is None, reason="promtool is not installed")
def test_promtool_accepts_the_exposition(client, public, network):
    set_state(network.core, "up", latency_ms=12.5)
    now_ms = int(time.time() * 1000)
    write_batch(
        Batch(
            samples=[
                SampleRow(now_ms - 1000, network.core.id, True, 800, None),
                SampleRow(now_ms - 900, network.dist.id, False, None, "timeout"),
            ]
        )
    )
    Heartbeat.beat(component="collector", instance="collector@a:1", info={"checks_total": 3})
    Heartbeat.beat(component="web", instance="web@a:2", info={})
    Heartbeat.beat(
        component="ingester",
        instance="ingester@a:3",
        info={"received_total": 1, "connected": False},
    )
    client.get("/healthz")
    result = promtool_check(scrape(client))
    assert result is not None
    assert result.returncode == 0, result.stdout + result.stderr


def test_anonymous_scrape_is_refused_without_public_dashboard(client, db, settings):
    settings.RESMON_PUBLIC_DASHBOARD = False
    response = client.get("/metrics")
    assert response.status_code == 401
    assert "Bearer" in response.json()["detail"]


def test_scrape_with_a_read_token(client, alice, settings):
    settings.RESMON_PUBLIC_DASHBOARD = False
    _, plain = ApiToken.issue(user=alice, name="prometheus", scopes=["read"])
    scrape(client, HTTP_AUTHORIZATION=f"Bearer {plain}")
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer rmt_wrong")
    assert response.status_code == 401


def test_post_is_refused(client, public, db):
    assert client.post("/metrics").status_code == 405


def test_large_scrapes_are_gzipped_when_accepted(client, public, db):
    Device.objects.bulk_create(
        Device(name=f"dev-{index:05d}", address=f"127.1.{index // 250}.{index % 250 + 1}")
        for index in range(400)
    )
    response = client.get("/metrics", HTTP_ACCEPT_ENCODING="gzip")
    assert response["Content-Encoding"] == "gzip"
    text = gzip.decompress(response.content).decode()
    assert 'resmon_device_status{device="dev-00399",status="unknown"} 1' in text


def test_queries_do_not_grow_with_devices(client, public, db, django_assert_max_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries_for_a_fresh_scrape() -> int:
        metrics.reset_slo_cache()
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/metrics").status_code == 200
        return len(captured)

    Heartbeat.beat(component="collector", instance="collector@a:1", info={})
    Device.objects.bulk_create(
        Device(name=f"dev-{index:05d}", address="127.1.0.1") for index in range(5)
    )
    few = queries_for_a_fresh_scrape()
    Device.objects.bulk_create(
        Device(name=f"dev-{index:05d}", address="127.1.0.1") for index in range(5, 300)
    )
    assert queries_for_a_fresh_scrape() == few
    # Between SLO refreshes a scrape is a handful of queries.
    with django_assert_max_num_queries(6):
        client.get("/metrics")


def test_render_at_10000_devices_is_fast(db, settings):
    # The per-scrape part; SLO figures are cached for minutes (measured in docs/operations.md).
    settings.RESMON_METRICS_SLO_CACHE_S = 0
    now = timezone.now()
    Device.objects.bulk_create(
        Device(name=f"dev-{index:05d}", address=f"127.2.{index // 250}.{index % 250 + 1}")
        for index in range(10_000)
    )
    from resourcemonitor.monitoring.models import DeviceState

    DeviceState.objects.bulk_create(
        DeviceState(device_id=device_id, status="up", last_check_at=now, latency_ms=3.0)
        for device_id in Device.objects.values_list("id", flat=True)
    )
    started = time.perf_counter()
    text = metrics.render(now=now)
    elapsed = time.perf_counter() - started
    assert text.count("resmon_device_up{") == 10_000
    # Generous for a shared 2-core machine; measured figure in docs/operations.md.
    assert elapsed < 1.5, elapsed


def test_slo_and_budget_gauges(client, public, network):
    from resourcemonitor.monitoring.models import GroupSlo

    GroupSlo.objects.create(name="London routers", site=network.london, kind="router", target=99.0)
    # Whole minutes before this one: the SLO window ends where the current minute starts.
    minute_ms = (int(time.time()) // 60 - 3) * 60_000
    rows = [
        SampleRow(
            minute_ms + index * 600,
            network.core.id,
            index != 0,
            1000 if index else None,
            None if index else "timeout",
        )
        for index in range(100)
    ]
    write_batch(Batch(samples=rows))

    found = samples(scrape(client))

    assert value(
        found, "resmon_device_sli_ratio", device="lon-core-1", window="30d"
    ) == pytest.approx(0.99)
    assert value(found, "resmon_device_slo_target_ratio", device="lon-core-1") == pytest.approx(
        0.999
    )
    # 1 failure of 100 checks against a 0.1 % budget: overspent 10x
    assert value(
        found, "resmon_device_error_budget_remaining_ratio", device="lon-core-1", window="30d"
    ) == pytest.approx(-9.0)
    assert (
        value(found, "resmon_device_sli_ratio", device="par-srv-1", window="30d") is None
    )  # not measured
    assert value(
        found, "resmon_slo_sli_ratio", slo="London routers", window="30d"
    ) == pytest.approx(0.99)
    assert value(found, "resmon_slo_target_ratio", slo="London routers") == pytest.approx(0.99)
    assert value(
        found, "resmon_slo_error_budget_remaining_ratio", slo="London routers", window="30d"
    ) == pytest.approx(0.0)


def test_slo_figures_are_cached_and_can_be_switched_off(client, public, network, settings):
    found = samples(scrape(client))
    assert value(found, "resmon_device_slo_target_ratio", device="lon-core-1") is not None
    settings.RESMON_METRICS_SLO_CACHE_S = 0
    metrics.reset_slo_cache()
    assert "resmon_device_slo_target_ratio" not in scrape(client)
