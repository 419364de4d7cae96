"""The full-list micro-cache (RESMON_LIST_CACHE_S) and the JSON encoder of the list."""

from __future__ import annotations

import gc
import json
from datetime import timedelta

import pytest
from django.utils import timezone

from resourcemonitor.api import listing
from resourcemonitor.api.listing import (
    DeviceFilter,
    cached_list_devices,
    encode_json,
    list_devices,
)
from resourcemonitor.inventory.models import Device, Tag

pytestmark = pytest.mark.django_db


def cache_clock(settings, monkeypatch) -> list[float]:
    """A 1 s list cache on a clock the test moves (``clock[0] += seconds``)."""
    settings.RESMON_LIST_CACHE_S = 1.0
    clock = [1000.0]
    monkeypatch.setattr(listing.time, "monotonic", lambda: clock[0])
    return clock


@pytest.fixture(autouse=True)
def empty_cache():
    listing._cache.clear()
    yield
    listing._cache.clear()


def names(result: listing.DeviceListing) -> list[str]:
    return [item["name"] for item in result.items]


def test_off_every_call_reads_the_database(settings, django_assert_num_queries):
    settings.RESMON_LIST_CACHE_S = 0
    Device.objects.create(name="a", address="10.0.0.1")
    cached_list_devices(DeviceFilter(), now=timezone.now())
    Device.objects.create(name="b", address="10.0.0.2")
    with django_assert_num_queries(2):
        assert names(cached_list_devices(DeviceFilter(), now=timezone.now())) == ["a", "b"]


def test_a_full_list_is_reused_within_the_ttl(settings, django_assert_num_queries, monkeypatch):
    clock = cache_clock(settings, monkeypatch)
    Device.objects.create(name="a", address="10.0.0.1")
    first = cached_list_devices(DeviceFilter(), now=timezone.now())
    Device.objects.create(name="b", address="10.0.0.2")
    clock[0] += 0.5
    with django_assert_num_queries(0):
        again = cached_list_devices(DeviceFilter(), now=timezone.now())
    assert again is first and names(again) == ["a"]  # the documented staleness, ≤ TTL
    # Another filter is another entry.
    assert names(cached_list_devices(DeviceFilter(search="b"), now=timezone.now())) == ["b"]
    clock[0] += 0.6
    assert names(cached_list_devices(DeviceFilter(), now=timezone.now())) == ["a", "b"]


def test_an_expired_list_is_served_while_another_thread_rebuilds_it(
    settings, django_assert_num_queries, monkeypatch
):
    clock = cache_clock(settings, monkeypatch)
    Device.objects.create(name="a", address="10.0.0.1")
    first = cached_list_devices(DeviceFilter(), now=timezone.now())
    Device.objects.create(name="b", address="10.0.0.2")
    clock[0] += 1.5  # expired, less than twice the TTL old
    # The lock held: another thread is building.
    with listing._cache_lock, django_assert_num_queries(0):
        assert cached_list_devices(DeviceFilter(), now=timezone.now()) is first
    # Nobody building: the next caller rebuilds it and waits for that.
    rebuilt = cached_list_devices(DeviceFilter(), now=timezone.now())
    assert names(rebuilt) == ["a", "b"]
    clock[0] += 0.5
    assert cached_list_devices(DeviceFilter(), now=timezone.now()) is rebuilt


class BusyLock:
    """A lock another thread holds: a try fails, a blocking acquire gets it."""

    def __init__(self) -> None:
        self.calls: list[object] = []

    def acquire(self, blocking: bool = True) -> bool:
        self.calls.append(blocking)
        return blocking

    def release(self) -> None:
        self.calls.append("release")


def test_a_list_older_than_twice_the_ttl_waits_for_the_build(settings, monkeypatch):
    clock = cache_clock(settings, monkeypatch)
    Device.objects.create(name="a", address="10.0.0.1")
    cached_list_devices(DeviceFilter(), now=timezone.now())
    Device.objects.create(name="b", address="10.0.0.2")
    clock[0] += 2.5
    lock = BusyLock()
    monkeypatch.setattr(listing, "_cache_lock", lock)
    assert names(cached_list_devices(DeviceFilter(), now=timezone.now())) == ["a", "b"]
    assert lock.calls == [False, True, "release"]


def test_a_cached_list_is_encoded_once(client, public, settings, monkeypatch):
    settings.RESMON_LIST_CACHE_S = 60.0
    Device.objects.create(name="a", address="10.0.0.1")
    encoded = []

    def counting(payload):
        encoded.append(payload)
        return encode_json(payload)

    monkeypatch.setattr(listing, "encode_json", counting)
    bodies = [client.get("/api/v1/devices").content for _ in range(3)]
    assert len(encoded) == 1
    assert bodies[0] == bodies[1] == bodies[2]
    assert list(json.loads(bodies[0])) == ["count", "now", "items"]


def test_list_items_are_left_out_of_garbage_collections(db):
    """A cached list's 10,000 items would otherwise be walked by every full collection."""
    edge = Tag.objects.create(name="edge")
    core = Tag.objects.create(name="core")
    tagged = Device.objects.create(name="a", address="10.0.0.1")
    tagged.tags.add(edge, core)
    Device.objects.create(name="b", address="10.0.0.2")
    result = list_devices(DeviceFilter(), now=timezone.now())
    gc.collect()
    assert [item["tags"] for item in result.items] == [("core", "edge"), ()]
    assert not any(gc.is_tracked(item) for item in result.items)


def test_changes_only_lists_are_never_cached(settings, django_assert_num_queries):
    settings.RESMON_LIST_CACHE_S = 60.0
    since = timezone.now() - timedelta(minutes=1)
    Device.objects.create(name="a", address="10.0.0.1")
    cached_list_devices(DeviceFilter(changed_since=since), now=timezone.now())
    Device.objects.create(name="b", address="10.0.0.2")
    result = cached_list_devices(DeviceFilter(changed_since=since), now=timezone.now())
    assert names(result) == ["a", "b"]
    assert listing._cache == {}


def test_the_api_answer_is_the_same_json_with_the_cache_on(client, public, settings):
    Device.objects.create(name="a", address="10.0.0.1")
    cold = client.get("/api/v1/devices").json()
    settings.RESMON_LIST_CACHE_S = 60.0
    warm = [client.get("/api/v1/devices").json() for _ in range(2)]
    assert warm[0] == warm[1]  # the second one came from the cache, "now" included
    assert [i["name"] for i in cold["items"]] == [i["name"] for i in warm[0]["items"]]
    assert cold["items"][0].keys() == warm[0]["items"][0].keys()


def test_encode_json_is_compact_standard_json():
    payload = {"count": 1, "items": [{"name": "sw-ü", "latency_ms": 1.25, "tags": []}]}
    body = encode_json(payload)
    assert json.loads(body) == payload
    assert body == json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
