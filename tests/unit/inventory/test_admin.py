"""The inventory and monitoring admin: pages load, lists are N+1 free, clean() is enforced."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from resourcemonitor.inventory.models import CheckMethod, Device, Feed, Site, Tag
from resourcemonitor.monitoring.models import DeviceState, Event, Heartbeat
from resourcemonitor.monitoring.status import Status
from tests.conftest import Network

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_for(client: Client, alice: User) -> Client:
    client.force_login(alice)
    return client


def add_devices(count: int, site: Site) -> None:
    """``count`` devices, each with a state, two tags and a parent: everything a row shows."""
    tags = [Tag.objects.create(name=f"t{index}") for index in range(2)]
    parent = Device.objects.create(name="root", address="10.0.0.1", check_port=22, site=site)
    for index in range(count):
        device = Device.objects.create(
            name=f"dev-{index:03}",
            address=f"10.0.1.{index}",
            check_method=CheckMethod.HTTP,
            check_port=8080,
            site=site,
            parent=parent,
        )
        device.tags.add(*tags)
        DeviceState.objects.create(device=device, status=Status.DOWN if index % 7 else Status.UP)


def test_device_changelist_queries_do_not_grow_with_rows(
    admin_client_for: Client, network: Network, django_assert_max_num_queries: Any
) -> None:
    add_devices(50, network.london)
    url = reverse("admin:inventory_device_changelist")
    # session, user, counts, the page with site/parent/state joined, tags prefetched, and
    # the site and tag filters: a fixed handful, whether the page has 5 rows or 100.
    with django_assert_max_num_queries(10):
        response = admin_client_for.get(url)
    assert response.status_code == 200
    body = response.content.decode()
    assert "dev-049" in body
    assert "Down" in body and "Up" in body
    assert "t0, t1" in body
    assert "Unknown" in body  # the network's devices have no state row yet


def test_device_changelist_filters_by_status_and_searches(
    admin_client_for: Client, network: Network
) -> None:
    DeviceState.objects.create(device=network.core, status=Status.DOWN)
    url = reverse("admin:inventory_device_changelist")
    down = admin_client_for.get(url, {"status": "down"}).context["cl"].result_list
    assert [device.name for device in down] == ["lon-core-1"]
    unknown = admin_client_for.get(url, {"status": "unknown"}).context["cl"].result_list
    assert len(unknown) == 5
    found = admin_client_for.get(url, {"q": "127.20.1"}).context["cl"].result_list
    assert [device.name for device in found] == ["par-srv-1"]


@pytest.mark.parametrize(
    "url_name",
    [
        "admin:inventory_site_changelist",
        "admin:inventory_tag_changelist",
        "admin:inventory_feed_changelist",
        "admin:inventory_device_changelist",
        "admin:inventory_device_add",
        "admin:inventory_site_add",
        "admin:monitoring_devicestate_changelist",
        "admin:monitoring_event_changelist",
        "admin:monitoring_heartbeat_changelist",
        "admin:monitoring_slotarget_changelist",
        "admin:monitoring_slotarget_add",
        "admin:monitoring_groupslo_changelist",
        "admin:monitoring_groupslo_add",
    ],
)
def test_admin_pages_load_for_alice(
    admin_client_for: Client, network: Network, url_name: str
) -> None:
    DeviceState.objects.create(device=network.core, status=Status.UP)
    Event.objects.create(device=network.core, from_status=Status.UNKNOWN, to_status=Status.UP)
    Heartbeat.beat(component="collector", instance="collector@test")
    Feed.objects.create(url="http://127.0.0.1:8001/devices")
    assert admin_client_for.get(reverse(url_name)).status_code == 200


def test_device_change_page_and_autocomplete_load(
    admin_client_for: Client, network: Network
) -> None:
    response = admin_client_for.get(reverse("admin:inventory_device_change", args=[network.pc.pk]))
    assert response.status_code == 200
    assert "Thresholds and SLO" in response.content.decode()
    response = admin_client_for.get(
        reverse("admin:autocomplete"),
        {"app_label": "inventory", "model_name": "device", "field_name": "parent", "term": "lon-d"},
    )
    assert [item["text"] for item in response.json()["results"]] == ["lon-dist-1"]


def test_bob_is_sent_to_the_login_page(client: Client, bob: User) -> None:
    client.force_login(bob)
    response = client.get(reverse("admin:inventory_device_changelist"))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_monitoring_rows_are_read_only(admin_client_for: Client, network: Network) -> None:
    state = DeviceState.objects.create(device=network.core, status=Status.UP)
    assert admin_client_for.get(reverse("admin:monitoring_devicestate_add")).status_code == 403
    change = reverse("admin:monitoring_devicestate_change", args=[state.pk])
    assert admin_client_for.post(change, {"status": "down"}).status_code == 403
    delete = reverse("admin:monitoring_devicestate_delete", args=[state.pk])
    assert admin_client_for.post(delete, {"post": "yes"}).status_code == 403
    state.refresh_from_db()
    assert state.status == Status.UP


def device_form(device: Device, **changes: Any) -> dict[str, Any]:
    """The POST body of the device change form, as the browser would send it."""
    data: dict[str, Any] = {
        "name": device.name,
        "address": device.address,
        "kind": device.kind,
        "site": device.site_id or "",
        "parent": device.parent_id or "",
        "tags": [tag.pk for tag in device.tags.all()],
        "check_method": device.check_method,
        "check_port": device.check_port or "",
        "check_path": device.check_path,
        "check_expect_status": device.check_expect_status,
        "check_body_match": device.check_body_match,
        "check_interval_s": device.check_interval_s,
        "check_timeout_s": device.check_timeout_s,
        "fail_threshold": device.fail_threshold,
        "recover_threshold": device.recover_threshold,
        "latency_threshold_ms": device.latency_threshold_ms or "",
        "slo_target": device.slo_target,
    }
    if device.enabled:
        data["enabled"] = "on"
    if device.check_tls:
        data["check_tls"] = "on"
    data.update(changes)
    return data


def test_a_dependency_cycle_is_a_form_error_on_parent(
    admin_client_for: Client, network: Network
) -> None:
    url = reverse("admin:inventory_device_change", args=[network.core.pk])
    # lon-acc-1 already depends on lon-core-1 (through lon-dist-1).
    response = admin_client_for.post(url, device_form(network.core, parent=network.access.pk))
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert form.errors["parent"] == ["This parent would make a dependency cycle."]
    network.core.refresh_from_db()
    assert network.core.parent is None


def test_a_good_change_saves(admin_client_for: Client, network: Network) -> None:
    url = reverse("admin:inventory_device_change", args=[network.server.pk])
    response = admin_client_for.post(url, device_form(network.server, check_port=9090))
    assert response.status_code == 302
    network.server.refresh_from_db()
    assert network.server.check_port == 9090


def test_pause_and_resume_actions(admin_client_for: Client, network: Network) -> None:
    url = reverse("admin:inventory_device_changelist")
    selected = [network.phone.pk, network.pc.pk]
    before = Device.objects.get(pk=network.pc.pk).updated_at
    admin_client_for.post(url, {"action": "pause", "_selected_action": selected})
    assert list(
        Device.objects.filter(enabled=False).order_by("name").values_list("name", flat=True)
    ) == [
        "lon-pc-1",
        "lon-phone-1",
    ]
    assert Device.objects.get(pk=network.pc.pk).updated_at > before
    admin_client_for.post(url, {"action": "resume", "_selected_action": selected})
    assert not Device.objects.filter(enabled=False).exists()


def test_a_feed_check_without_a_feed_is_a_form_error_not_a_crash(
    admin_client_for: Client, network: Network
) -> None:
    url = reverse("admin:inventory_device_change", args=[network.server.pk])
    response = admin_client_for.post(url, device_form(network.server, check_method="feed"))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["feed"] == ["A feed device needs its feed."]
