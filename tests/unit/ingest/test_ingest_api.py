"""POST /api/v1/ingest: push devices go through the state machine; bad input is a 4xx."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from resourcemonitor.api.models import ApiToken
from resourcemonitor.inventory.models import CheckMethod, Device
from resourcemonitor.monitoring.ingest import MAX_BATCH, mark_silent_push_devices
from resourcemonitor.monitoring.models import DeviceState, Event, Sample
from resourcemonitor.monitoring.status import Status

URL = "/api/v1/ingest"


@pytest.fixture
def sensor(db) -> Device:
    return Device.objects.create(
        name="lon-sensor-1",
        address="10.0.0.9",
        check_method=CheckMethod.PUSH,
        check_interval_s=60,
        fail_threshold=2,
        recover_threshold=1,
    )


class TokenClient:
    """The test client with an ``ingest`` API token in every request."""

    def __init__(self, client, plain: str) -> None:
        self.client = client
        self.plain = plain

    def post(self, url, body, **extra):
        return self.client.post(url, body, HTTP_AUTHORIZATION=f"Bearer {self.plain}", **extra)


@pytest.fixture
def logged_in(client, alice):
    _, plain = ApiToken.issue(user=alice, name="sensors", scopes=["ingest"])
    return TokenClient(client, plain)


def post(client, payload, **extra):
    body = payload if isinstance(payload, str | bytes) else json.dumps(payload)
    return client.post(URL, body, content_type="application/json", **extra)


def test_needs_credentials_even_with_a_public_dashboard(client, sensor, settings):
    settings.RESMON_PUBLIC_DASHBOARD = True  # public reading never means public writing
    response = post(client, {"device": sensor.name, "ok": True})
    assert response.status_code == 401
    assert not Sample.objects.exists()


def test_a_token_without_the_ingest_scope_is_refused(client, alice, sensor):
    _, plain = ApiToken.issue(user=alice, name="reader", scopes=["read"])
    response = post(TokenClient(client, plain), {"device": sensor.name, "ok": True})
    assert response.status_code == 403
    assert not Sample.objects.exists()


def test_a_viewer_session_may_not_push(client, bob, sensor):
    client.force_login(bob)
    assert post(client, {"device": sensor.name, "ok": True}).status_code == 403


def test_one_good_report_makes_the_device_up(logged_in, sensor):
    response = post(logged_in, {"device": sensor.name, "ok": True, "latency_ms": 4.5})
    assert response.status_code == 200, response.content
    assert response.json()["statuses"] == {sensor.name: Status.UP}
    state = DeviceState.objects.get(device=sensor)
    assert (state.status, state.latency_ms) == (Status.UP, 4.5)
    sample = Sample.objects.get(device=sensor)
    assert (sample.ok, sample.latency_us) == (True, 4500)
    assert Event.objects.filter(device=sensor, to_status=Status.UP).count() == 1


def test_down_only_after_fail_threshold_reports(logged_in, sensor):
    now = timezone.now()
    items = [
        {"device": sensor.id, "ok": True, "ts": (now - timedelta(seconds=30)).isoformat()},
        {
            "device": sensor.id,
            "ok": False,
            "error": "fan failed",
            "ts": (now - timedelta(seconds=20)).isoformat(),
        },
    ]
    assert post(logged_in, {"items": items}).json()["statuses"] == {sensor.name: Status.UP}
    third = {
        "device": sensor.id,
        "ok": False,
        "error": "fan failed",
        "ts": (now - timedelta(seconds=10)).isoformat(),
    }
    assert post(logged_in, third).json()["statuses"] == {sensor.name: Status.DOWN}
    state = DeviceState.objects.get(device=sensor)
    assert state.last_error == "fan failed"
    assert Sample.objects.filter(device=sensor).count() == 3
    assert list(
        Event.objects.filter(device=sensor).values_list("to_status", flat=True).order_by("at")
    ) == [
        Status.UP,
        Status.DOWN,
    ]


def test_a_resent_batch_is_not_counted_twice(logged_in, sensor):
    ts = (timezone.now() - timedelta(seconds=5)).isoformat()
    report = {"device": sensor.name, "ok": False, "ts": ts}
    post(logged_in, report)
    again = post(logged_in, report).json()
    assert (again["samples"], again["duplicates"], again["out_of_order"]) == (0, 1, 1)
    assert DeviceState.objects.get(device=sensor).consecutive_failures == 1


def test_a_child_of_a_down_parent_is_unreachable(logged_in, sensor, network):
    DeviceState.objects.create(device=network.core, status=Status.DOWN)
    sensor.parent = network.core
    sensor.save()
    post(logged_in, {"items": [{"device": sensor.name, "ok": False}]})
    response = post(logged_in, {"device": sensor.name, "ok": False})
    assert response.json()["statuses"] == {sensor.name: Status.UNREACHABLE}


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ("not json", 400, "body"),
        ("", 400, "body"),
        ({"device": "lon-sensor-1", "ok": "yes"}, 422, "ok"),
        ({"device": "lon-sensor-1", "ok": True, "latency_ms": "fast"}, 422, "latency_ms"),
        ({"device": "no-such-device", "ok": True}, 404, "device"),
        (
            {"items": [{"device": "lon-sensor-1", "ok": True}, {"device": "ghost", "ok": True}]},
            404,
            "items[1].device",
        ),
        ({"device": "lon-core-1", "ok": True}, 409, "device"),
        ([{"device": "lon-sensor-1", "ok": True}] * (MAX_BATCH + 1), 413, "items"),
    ],
)
def test_bad_input_is_a_4xx_naming_the_field(logged_in, sensor, network, body, status, field):
    response = post(logged_in, body)
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    assert response.json()["field"] == field
    assert field in response.json()["detail"]
    assert not Sample.objects.exists()  # all or nothing


def test_query_count_does_not_grow_with_the_batch(logged_in, sensor, django_assert_max_num_queries):
    others = [
        Device.objects.create(name=f"sensor-{i}", address="10.0.0.1", check_method=CheckMethod.PUSH)
        for i in range(20)
    ]
    items = [{"device": d.name, "ok": True, "latency_ms": 1} for d in [sensor, *others]]
    with django_assert_max_num_queries(14):
        assert post(logged_in, {"items": items}).status_code == 200
    assert Sample.objects.count() == 21


def test_a_silent_push_device_goes_down_and_recovers_on_its_next_report(logged_in, sensor):
    post(logged_in, {"device": sensor.name, "ok": True})
    now = timezone.now()
    assert mark_silent_push_devices(now=now + timedelta(seconds=119)) == []  # 60 s × 2
    assert mark_silent_push_devices(now=now + timedelta(seconds=121)) == [sensor.name]
    state = DeviceState.objects.get(device=sensor)
    assert state.status == Status.DOWN
    assert state.last_error.startswith("no report for 12")
    assert Sample.objects.filter(device=sensor, ok=False, error="no_report").count() == 1
    assert mark_silent_push_devices(now=now + timedelta(seconds=300)) == []  # already down
    post(logged_in, {"device": sensor.name, "ok": True})
    assert DeviceState.objects.get(device=sensor).status == Status.UP


def test_a_push_device_that_never_reported_stays_unknown(sensor):
    assert mark_silent_push_devices(now=timezone.now() + timedelta(days=1)) == []


def test_a_body_over_the_size_limit_is_a_413_in_json(logged_in, sensor, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    item = {"device": sensor.name, "ok": True, "error": "x" * 100}
    response = post(logged_in, {"items": [item] * 200})
    assert response.status_code == 413
    assert response["Content-Type"].startswith("application/json")
    assert not Sample.objects.exists()


def test_a_token_over_its_ingest_rate_gets_429_and_nothing_is_stored(logged_in, sensor, settings):
    settings.RESMON_INGEST_RATE_PER_S = 1.0  # a burst of 2 reports, then 1 a second
    batch = {"items": [{"device": sensor.name, "ok": True} for _ in range(1)]}
    assert post(logged_in, batch).status_code == 200
    reports = [
        {
            "device": sensor.name,
            "ok": True,
            "ts": (timezone.now() + timedelta(seconds=i)).isoformat(),
        }
        for i in range(5)
    ]
    response = post(logged_in, {"items": reports})
    assert response.status_code == 429
    assert "rate limit" in response.json()["detail"]
    assert Sample.objects.filter(device=sensor).count() == 1


def test_a_push_device_flapping_over_separate_reports_is_flagged(logged_in, sensor):
    # One report per request, as a sensor pushes: the flap history must outlive a request.
    start = timezone.now() - timedelta(minutes=30)
    for i in range(24):
        report = {
            "device": sensor.id,
            "ok": (i // 2) % 2 == 0,  # two good, two bad, ...
            "ts": (start + timedelta(seconds=60 * i)).isoformat(),
        }
        assert post(logged_in, report).status_code == 200
    state = DeviceState.objects.get(device=sensor)
    assert state.flapping is True
    assert len(state.flap_history) == 21 and set(state.flap_history) == {"0", "2"}
