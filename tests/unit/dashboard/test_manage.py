"""The self-service pages: devices and maintenance windows from the dashboard."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone

from resourcemonitor.inventory.models import Device, MaintenanceWindow


@pytest.fixture
def operator(db, client):
    user = User.objects.create_user("olga", password="pw-olga-123")
    group, _ = Group.objects.get_or_create(name="operator")
    user.groups.add(group)
    client.force_login(user)
    return user


@pytest.fixture
def viewer(db, client):
    user = User.objects.create_user("vic", password="pw-vic-123")
    client.force_login(user)
    return user


DEVICE = {
    "name": "new-router",
    "address": "10.9.9.9",
    "kind": "router",
    "check_method": "tcp",
    "check_port": "22",
    "check_path": "/",
    "check_expect_status": "200",
    "check_interval_s": "10",
    "check_timeout_s": "2",
    "fail_threshold": "3",
    "recover_threshold": "1",
    "slo_target": "99.9",
    "enabled": "on",
}


def test_anonymous_goes_to_login_and_viewer_is_refused(client, db, network):
    response = client.get("/devices/new")
    assert response.status_code == 302 and "login" in response["Location"]
    client.force_login(User.objects.create_user("vic"))
    assert client.get("/devices/new").status_code == 403
    assert client.post(f"/devices/{network.pc.pk}/delete").status_code == 403
    assert Device.objects.filter(pk=network.pc.pk).exists()


def test_operator_adds_a_device(client, operator, network):
    response = client.post("/devices/new", {**DEVICE, "parent": network.core.pk})
    assert response.status_code == 302, response.content.decode()[:2000]
    device = Device.objects.get(name="new-router")
    assert device.parent == network.core and device.check_port == 22
    assert response["Location"].endswith(f"?device={device.pk}")


def test_validation_message_sits_next_to_the_field(client, operator, network):
    response = client.post("/devices/new", {**DEVICE, "check_port": "", "address": ""})
    assert response.status_code == 400
    html = response.content.decode()
    assert 'data-testid="error-check_port"' in html and "A TCP check needs a port." in html
    assert 'data-testid="error-address"' in html
    assert not Device.objects.filter(name="new-router").exists()


def test_dependency_cycle_is_a_field_error_and_nothing_is_saved(client, operator, network):
    # core -> dist -> access -> pc: making the core a child of the pc closes a loop.
    core = network.core
    data = {**DEVICE, "name": core.name, "address": core.address, "parent": network.pc.pk}
    response = client.post(f"/devices/{core.pk}/edit", data)
    assert response.status_code == 400
    assert "dependency cycle" in response.content.decode()
    core.refresh_from_db()
    assert core.parent is None and core.kind == network.core.kind


def test_pause_resume_and_bad_choice(client, operator, network):
    pc = network.pc
    assert client.post(f"/devices/{pc.pk}/pause", {"enabled": "0"}).status_code == 302
    pc.refresh_from_db()
    assert pc.enabled is False
    client.post(f"/devices/{pc.pk}/pause", {"enabled": "1"})
    pc.refresh_from_db()
    assert pc.enabled is True
    client.post(f"/devices/{pc.pk}/pause", {"enabled": "maybe"})
    pc.refresh_from_db()
    assert pc.enabled is True
    assert client.get(f"/devices/{pc.pk}/pause").status_code == 405


def test_delete_asks_then_deletes(client, operator, network):
    page = client.get(f"/devices/{network.access.pk}/delete")
    assert page.status_code == 200 and "2 device(s) depending on it" in page.content.decode()
    assert client.post(f"/devices/{network.access.pk}/delete").status_code == 302
    assert not Device.objects.filter(pk=network.access.pk).exists()
    assert client.post("/devices/999999/delete").status_code == 404


def _window(**extra):
    now = timezone.now().replace(second=0, microsecond=0)
    return {
        "name": "core upgrade",
        "starts_at": (now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
        "ends_at": (now + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"),
        "recurrence": "",
        **extra,
    }


def test_maintenance_window_ending_before_it_starts(client, operator, network):
    data = _window()
    data["ends_at"], data["starts_at"] = data["starts_at"], data["ends_at"]
    response = client.post("/maintenance/new", {**data, "devices": [network.core.pk]})
    assert response.status_code == 400
    html = response.content.decode()
    assert 'data-testid="error-ends_at"' in html and "must end after it starts" in html
    assert not MaintenanceWindow.objects.exists()


def test_maintenance_add_list_edit_delete(client, operator, network, django_assert_max_num_queries):
    response = client.post(
        "/maintenance/new",
        _window(devices=[network.core.pk, network.pc.pk], kinds=["phone"]),
    )
    assert response.status_code == 302
    window = MaintenanceWindow.objects.get()
    assert set(window.devices.all()) == {network.core, network.pc}
    assert window.kinds == ["phone"] and window.created_by == operator
    for index in range(5):
        MaintenanceWindow.objects.create(
            name=f"w{index}", starts_at=timezone.now(), ends_at=timezone.now() + timedelta(hours=1)
        )
    with django_assert_max_num_queries(8):
        listing = client.get("/maintenance/")
    assert listing.status_code == 200 and "core upgrade" in listing.content.decode()
    edit = client.post(f"/maintenance/{window.pk}/edit", _window(name="renamed"))
    assert edit.status_code == 302
    window.refresh_from_db()
    assert window.name == "renamed"
    assert client.post(f"/maintenance/{window.pk}/delete").status_code == 302
    assert not MaintenanceWindow.objects.filter(pk=window.pk).exists()


def test_dashboard_shows_edit_controls_to_operators_only(client, network, viewer, settings):
    html = client.get("/").content.decode()
    assert 'data-testid="device-add"' not in html
    client.force_login(User.objects.create_user("op2"))
    group, _ = Group.objects.get_or_create(name="operator")
    User.objects.get(username="op2").groups.add(group)
    html = client.get("/").content.decode()
    assert 'data-testid="device-add"' in html and 'id="device-action-form"' in html


def test_favicon_carries_the_problem_count(client, db):
    body = client.get("/favicon.svg?problems=7").content.decode()
    assert ">7</text>" in body
    assert "<text" not in client.get("/favicon.svg?problems=0").content.decode()
    assert ">99+</text>" in client.get("/favicon.svg?problems=12345").content.decode()
    assert client.get("/favicon.svg?problems=abc").status_code == 200
