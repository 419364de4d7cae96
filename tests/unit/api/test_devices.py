"""GET /api/v1/devices: shape, filters, order, pagination, changes-only, bad input, queries."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from resourcemonitor.api.schemas import DeviceItem
from resourcemonitor.inventory.models import CheckMethod, Device, Kind, Site, Tag
from resourcemonitor.monitoring.models import DeviceState
from tests.unit.api.helpers import set_state

URL = "/api/v1/devices"

ITEM_KEYS = {
    "id",
    "name",
    "address",
    "kind",
    "site",
    "tags",
    "parent_id",
    "parent_name",
    "status",
    "stale",
    "last_known_status",
    "since",
    "last_check_at",
    "latency_ms",
    "last_error",
    "flapping",
    "check_method",
    "check_interval_s",
    "enabled",
}


def names(response) -> list[str]:
    return [item["name"] for item in response.json()["items"]]


@pytest.fixture
def states(network):
    """core down, dist unreachable, access degraded, phone up and flapping, pc up, server
    never checked (no state)."""
    set_state(network.core, "down", last_error="Connection refused", since_ago=252)
    set_state(network.dist, "unreachable")
    set_state(network.access, "degraded", latency_ms=350.0)
    set_state(network.phone, "up", flapping=True)
    set_state(network.pc, "up")
    return network


def test_list_shape(client, public, states):
    response = client.get(URL)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["count"] == 6
    assert body["now"].endswith("Z")
    assert len(body["items"]) == 6
    for item in body["items"]:
        assert set(item) == ITEM_KEYS
        DeviceItem.model_validate(item)  # what the OpenAPI schema promises

    core = next(item for item in body["items"] if item["name"] == "lon-core-1")
    assert core["address"] == "127.20.0.1"
    assert core["kind"] == "router"
    assert core["site"] == "London"
    assert core["status"] == "down"
    assert core["stale"] is False
    assert core["last_error"] == "Connection refused"
    assert core["check_method"] == "http"
    assert core["check_interval_s"] == 10.0
    assert core["enabled"] is True
    assert core["parent_id"] is None and core["parent_name"] is None
    assert core["since"].endswith("Z") and core["last_check_at"].endswith("Z")

    phone = next(item for item in body["items"] if item["name"] == "lon-phone-1")
    assert phone["tags"] == ["voice"]
    assert phone["parent_name"] == "lon-acc-1"
    assert phone["parent_id"] == states.access.pk
    assert phone["flapping"] is True


def test_device_without_state_is_unknown(client, public, states):
    server = next(item for item in client.get(URL).json()["items"] if item["name"] == "par-srv-1")
    assert server["status"] == "unknown"
    assert server["stale"] is False
    assert server["since"] is None
    assert server["last_check_at"] is None
    assert server["latency_ms"] is None
    assert server["last_known_status"] is None


def test_order_is_problems_first_then_flapping_then_name(client, public, states):
    assert names(client.get(URL)) == [
        "lon-core-1",  # down
        "lon-dist-1",  # unreachable
        "lon-acc-1",  # degraded
        "lon-phone-1",  # up, flapping
        "par-srv-1",  # unknown
        "lon-pc-1",  # up
    ]


def test_same_status_sorts_by_name(client, public, network):
    for device in (network.server, network.pc, network.core):
        set_state(device, "down")
    assert names(client.get(URL, {"status": "down"})) == ["lon-core-1", "lon-pc-1", "par-srv-1"]


def test_filter_by_status_repeatable(client, public, states):
    response = client.get(URL, {"status": ["down", "degraded"]})
    assert names(response) == ["lon-core-1", "lon-acc-1"]
    assert response.json()["count"] == 2


def test_filter_problems(client, public, states):
    assert names(client.get(URL, {"problems": "true"})) == ["lon-core-1", "lon-dist-1", "lon-acc-1"]
    # problems and status narrow each other
    assert names(client.get(URL, {"problems": "true", "status": "down"})) == ["lon-core-1"]
    assert names(client.get(URL, {"problems": "true", "status": "up"})) == []


def test_filter_kind_site_tag(client, public, states):
    assert names(client.get(URL, {"kind": "switch"})) == ["lon-dist-1", "lon-acc-1"]
    assert names(client.get(URL, {"site": "Paris"})) == ["par-srv-1"]
    assert names(client.get(URL, {"site": "Nowhere"})) == []
    assert names(client.get(URL, {"tag": "voice"})) == ["lon-phone-1"]


def test_search_name_or_address_case_insensitive(client, public, states):
    assert names(client.get(URL, {"q": "LON-P"})) == ["lon-phone-1", "lon-pc-1"]
    assert names(client.get(URL, {"q": "127.20.1."})) == ["par-srv-1"]
    assert names(client.get(URL, {"q": "nothing-like-it"})) == []


def test_pagination(client, public, states):
    everything = names(client.get(URL))
    page = client.get(URL, {"limit": 2, "offset": 2}).json()
    assert page["count"] == 6
    assert [item["name"] for item in page["items"]] == everything[2:4]
    beyond = client.get(URL, {"limit": 2, "offset": 100}).json()
    assert beyond["count"] == 6 and beyond["items"] == []


def test_stale_state_shows_as_unknown(client, public, network):
    # 10 s interval: stale after max(30, 30) = 30 s without a check.
    set_state(network.core, "up", checked_ago=31)
    set_state(network.pc, "down", checked_ago=29)
    items = {item["name"]: item for item in client.get(URL).json()["items"]}
    assert items["lon-core-1"]["status"] == "unknown"
    assert items["lon-core-1"]["stale"] is True
    assert items["lon-core-1"]["last_known_status"] == "up"
    assert items["lon-pc-1"]["status"] == "down"
    assert items["lon-pc-1"]["stale"] is False
    # Filters and counts use the effective status.
    assert names(client.get(URL, {"status": "unknown"})) == [
        "lon-acc-1",
        "lon-core-1",
        "lon-dist-1",
        "lon-phone-1",
        "par-srv-1",
    ]
    assert names(client.get(URL, {"status": "up"})) == []


def test_stale_window_follows_the_interval(client, public, network):
    Device.objects.filter(pk=network.core.pk).update(check_interval_s=60)
    set_state(network.core, "up", checked_ago=150)  # < 3 × 60 s
    set_state(network.pc, "up", checked_ago=150)  # > 30 s at a 10 s interval
    items = {item["name"]: item for item in client.get(URL).json()["items"]}
    assert items["lon-core-1"]["status"] == "up"
    assert items["lon-pc-1"]["status"] == "unknown"


def test_html_in_names_is_returned_verbatim(client, public, network):
    evil = "<img src=x onerror=alert(1)>"
    Device.objects.filter(pk=network.core.pk).update(name=evil)
    set_state(network.core, "down", last_error="<b>bold</b> & co")
    item = client.get(URL, {"status": "down"}).json()["items"][0]
    assert item["name"] == evil
    assert item["last_error"] == "<b>bold</b> & co"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "10001"}, "limit"),
        ({"limit": "abc"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"status": "sideways"}, "status"),
        ({"kind": "toaster"}, "kind"),
        ({"problems": "perhaps"}, "problems"),
        ({"changed_since": "yesterday"}, "changed_since"),
        ({"changed_since": "2025-13-45T00:00:00"}, "changed_since"),
    ],
)
def test_bad_parameters_are_422_naming_the_field(client, public, network, params, field):
    response = client.get(URL, params)
    assert response.status_code == 422
    assert response["Content-Type"].startswith("application/json")
    errors = response.json()["detail"]
    assert any(error["loc"][-1] == field or field in error["loc"] for error in errors), errors


class TestChangedSince:
    def test_returns_now_to_pass_back(self, client, public, states):
        first = client.get(URL).json()
        again = client.get(URL, {"changed_since": first["now"]}).json()
        assert again["items"] == []
        assert again["count"] == 0
        assert again["total_devices"] == 6
        assert again["now"] >= first["now"]

    def test_status_change_and_new_check_are_sent(self, client, public, states):
        cursor = client.get(URL).json()["now"]
        later = timezone.now() + timedelta(seconds=1)
        DeviceState.objects.filter(device=states.pc).update(
            status="down", changed_at=later, last_check_at=later
        )
        DeviceState.objects.filter(device=states.phone).update(last_check_at=later)
        changed = client.get(URL, {"changed_since": cursor}).json()
        assert sorted(names_of(changed)) == ["lon-pc-1", "lon-phone-1"]
        pc = next(item for item in changed["items"] if item["name"] == "lon-pc-1")
        assert pc["status"] == "down"

    def test_late_committed_change_is_still_sent(self, client, public, states):
        # The collector stamped changed_at a moment before our cursor but committed after.
        cursor = timezone.now()
        DeviceState.objects.filter(device=states.pc).update(
            status="down", changed_at=cursor - timedelta(seconds=2)
        )
        changed = client.get(URL, {"changed_since": cursor.isoformat()}).json()
        assert names_of(changed) == ["lon-pc-1"]

    def test_going_stale_is_a_change(self, client, public, network):
        now = timezone.now()
        Device.objects.update(updated_at=now - timedelta(hours=1))  # no inventory edits
        cursor = now - timedelta(seconds=10)
        # core's last check is 35 s old: it crossed its 30 s window 5 s ago, after the
        # cursor. Nothing was written, yet the client must learn it is now unknown.
        set_state(network.core, "up", checked_ago=35, since_ago=600, now=now)
        # pc was checked after the cursor; dist long before it and is still fresh enough?
        # No: dist was checked 20 s ago, before the cursor, and is not stale yet.
        set_state(network.pc, "up", checked_ago=5, since_ago=600, now=now)
        set_state(network.dist, "up", checked_ago=20, since_ago=600, now=now)
        changed = client.get(URL, {"changed_since": cursor.isoformat()}).json()
        items = {item["name"]: item for item in changed["items"]}
        assert set(items) == {"lon-core-1", "lon-pc-1"}
        assert items["lon-core-1"]["status"] == "unknown"
        assert items["lon-core-1"]["stale"] is True
        assert items["lon-pc-1"]["status"] == "up"

    def test_long_stale_device_is_not_resent(self, client, public, network):
        now = timezone.now()
        Device.objects.update(updated_at=now - timedelta(hours=1))
        set_state(network.core, "up", checked_ago=3600, since_ago=7200, now=now)
        changed = client.get(URL, {"changed_since": (now - timedelta(seconds=5)).isoformat()})
        assert names_of(changed.json()) == []

    def test_inventory_edit_is_a_change(self, client, public, states):
        cursor = client.get(URL).json()["now"]
        device = Device.objects.get(pk=states.server.pk)
        device.address = "127.20.1.2"
        device.save()
        assert names_of(client.get(URL, {"changed_since": cursor}).json()) == ["par-srv-1"]

    def test_nothing_changed_reads_no_device_rows(
        self, client, public, states, django_assert_max_num_queries
    ):
        cursor = client.get(URL).json()["now"]
        # The stale windows with the device count, then the candidates: none, so done.
        with django_assert_max_num_queries(2):
            again = client.get(URL, {"changed_since": cursor}).json()
        assert again["items"] == [] and again["total_devices"] == 6

    def test_total_devices_ignores_the_filters(self, client, public, states):
        cursor = client.get(URL).json()["now"]
        later = timezone.now() + timedelta(seconds=1)
        DeviceState.objects.filter(device=states.pc).update(last_check_at=later)
        changed = client.get(URL, {"changed_since": cursor, "kind": "pc"}).json()
        assert names_of(changed) == ["lon-pc-1"]
        assert changed["count"] == 1 and changed["total_devices"] == 6
        routers = client.get(URL, {"changed_since": cursor, "kind": "router"}).json()
        assert list(routers) == ["count", "now", "total_devices", "items"]
        assert (routers["count"], routers["total_devices"], routers["items"]) == (0, 6, [])

    def test_many_changes_at_once_are_all_sent(self, client, public, network):
        # More changed devices than listing binds as parameters (after a collector
        # restart, say): they are read by the candidates' subquery instead.
        now = timezone.now()
        site = Site.objects.create(name="bulk")
        devices = Device.objects.bulk_create(
            Device(
                name=f"bulk-{index:04}", address=f"127.41.{index // 250}.{index % 250}", site=site
            )
            for index in range(1040)
        )
        Device.objects.update(updated_at=now - timedelta(hours=1))  # no inventory edits
        cursor = now - timedelta(seconds=10)
        DeviceState.objects.bulk_create(
            DeviceState(
                device=device,
                status="up",
                since=now - timedelta(hours=1),
                changed_at=now - timedelta(hours=1),
                # Every other one was checked after the cursor; the rest before it.
                last_check_at=now - timedelta(seconds=5 if index % 2 else 15),
            )
            for index, device in enumerate(devices)
        )
        changed = client.get(URL, {"changed_since": cursor.isoformat(), "limit": 1000}).json()
        assert changed["count"] == 520
        assert names_of(changed) == [f"bulk-{index:04}" for index in range(1, 1040, 2)]
        assert changed["total_devices"] == 1040 + 6

    def test_accepts_epoch_seconds(self, client, public, states):
        epoch = (timezone.now() - timedelta(hours=1)).timestamp()
        response = client.get(URL, {"changed_since": str(epoch)})
        assert response.status_code == 200
        assert response.json()["count"] == 6  # every device was edited within the hour


def names_of(body) -> list[str]:
    return [item["name"] for item in body["items"]]


def _make_devices(count: int) -> None:
    site = Site.objects.create(name=f"site-{count}")
    tag = Tag.objects.create(name=f"tag-{count}")
    parent = None
    for index in range(count):
        device = Device.objects.create(
            name=f"dev-{count}-{index:03}",
            address=f"127.30.{count}.{index}",
            kind=Kind.SWITCH,
            site=site,
            parent=parent,
            check_method=CheckMethod.TCP,
            check_port=22,
        )
        device.tags.add(tag)
        set_state(device, "down" if index % 3 == 0 else "up")
        parent = device


@pytest.mark.parametrize("count", [3, 30])
def test_query_count_does_not_grow_with_devices(
    db, client, public, django_assert_max_num_queries, count
):
    _make_devices(count)
    # Session/auth lookups are 0 in public mode; the list is one query plus one for tags.
    with django_assert_max_num_queries(2):
        response = client.get(URL)
    assert response.json()["count"] == count
    cursor = response.json()["now"]
    with django_assert_max_num_queries(4):
        client.get(URL, {"changed_since": cursor})


def test_big_page_reads_tags_with_a_subquery(db, client, public, django_assert_max_num_queries):
    tag = Tag.objects.create(name="edge")
    devices = Device.objects.bulk_create(
        Device(name=f"bulk-{index:04}", address=f"127.40.{index // 250}.{index % 250}")
        for index in range(600)
    )
    Device.tags.through.objects.bulk_create(
        Device.tags.through(device_id=device.pk, tag_id=tag.pk) for device in devices[::2]
    )
    with django_assert_max_num_queries(2):
        items = client.get(URL, {"limit": 600, "tag": "edge"}).json()["items"]
    assert len(items) == 300
    assert all(item["tags"] == ["edge"] for item in items)
    items = client.get(URL, {"limit": 600}).json()["items"]
    assert sum(item["tags"] == ["edge"] for item in items) == 300
