"""The full-list micro-cache (RESMON_LIST_CACHE_S) and the JSON encoder of the list."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from resourcemonitor.api import listing
from resourcemonitor.api.listing import DeviceFilter, cached_list_devices, encode_json
from resourcemonitor.inventory.models import Device

pytestmark = pytest.mark.django_db


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
    settings.RESMON_LIST_CACHE_S = 1.0
    clock = [1000.0]
    monkeypatch.setattr(listing.time, "monotonic", lambda: clock[0])
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
