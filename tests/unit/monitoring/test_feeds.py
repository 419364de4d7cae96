"""JSON device feeds: parsing, applying to the inventory, and ``resmon feeds``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from resourcemonitor.inventory.models import CheckMethod, Device, Feed
from resourcemonitor.monitoring.collector.feeds import (
    FeedError,
    apply_feed,
    parse_feed,
    record_feed_failure,
    summarize_problems,
)

POLLED = datetime(2026, 1, 1, tzinfo=UTC)


def body(entries: object) -> bytes:
    return json.dumps(entries).encode()


def entry(ident: object, name: str, status: bool = True, address: str = "10.0.0.1") -> dict:
    return {"id": ident, "name": name, "ip_address": address, "status": status}


# -- parsing ----------------------------------------------------------------------------


def test_a_valid_feed_in_the_original_format() -> None:
    parsed = parse_feed(body([entry(1, "router", True), entry("sw-2", "switch", False)]))
    assert parsed.problems == []
    assert [(e.external_id, e.name, e.address, e.status) for e in parsed.entries] == [
        ("1", "router", "10.0.0.1", True),
        ("sw-2", "switch", "10.0.0.1", False),
    ]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "invalid JSON"),
        (b"", "invalid JSON"),
        (b"\xff\xfe\x00", "invalid JSON"),
        (b'{"devices": []}', "expected a JSON list of devices, got a JSON object"),
        (b'"hello"', "got a JSON string"),
        (b"null", "got a JSON null"),
        (b"[" * 100_000, "invalid JSON"),
    ],
)
def test_an_unusable_feed_raises_one_line(raw: bytes, message: str) -> None:
    with pytest.raises(FeedError) as caught:
        parse_feed(raw)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_bad_entries_are_skipped_and_counted_the_rest_applies() -> None:
    parsed = parse_feed(
        body(
            [
                entry(1, "a"),
                {"id": 2, "name": "b", "status": True},  # no ip_address
                entry(True, "c"),  # a boolean is not an id
                entry(4, ""),
                {**entry(5, "e"), "status": "up"},
                entry(1, "f"),  # duplicate id
                entry(7, "a"),  # duplicate name
                entry(8, "h", address="10.0.0.8 10.0.0.9"),
                "not an object",
                entry("9", "i"),
            ]
        )
    )
    assert [e.external_id for e in parsed.entries] == ["1", "9"]
    assert parsed.total == 10
    assert parsed.problems == [
        "entry 1: missing 'ip_address'",
        "entry 2: 'id' must be an integer or a string",
        "entry 3: 'name' must be a non-empty string",
        "entry 4: 'status' must be true or false",
        "entry 5: duplicate id 1",
        "entry 6: duplicate name 'a'",
        "entry 7: 'ip_address' must be a non-empty string without spaces",
        "entry 8: not an object",
    ]
    summary = summarize_problems(parsed.problems, parsed.total)
    assert summary.startswith("skipped 8 of 10 entries: entry 1: missing 'ip_address'")
    assert summary.endswith("; and 3 more")


def test_an_empty_list_is_a_valid_feed() -> None:
    parsed = parse_feed(b"[]")
    assert parsed.entries == [] and parsed.problems == []


# -- applying ---------------------------------------------------------------------------


@pytest.fixture
def feed(db) -> Feed:
    return Feed.objects.create(url="http://127.0.0.1:9/devices", interval_s=10, timeout_s=2)


def test_apply_creates_feed_devices_and_records_the_poll(feed: Feed) -> None:
    applied = apply_feed(
        feed.id, parse_feed(body([entry(1, "router"), entry(2, "switch", False)])), polled_at=POLLED
    )
    assert sorted((c.name, status) for c, status in applied.devices) == [
        ("router", True),
        ("switch", False),
    ]
    router = Device.objects.get(name="router")
    assert (router.feed_id, router.external_id, router.address) == (feed.id, "1", "10.0.0.1")
    assert router.check_method == CheckMethod.FEED and router.fail_threshold == 1
    feed.refresh_from_db()
    assert (feed.device_count, feed.last_error) == (2, "")
    assert feed.last_polled_at == POLLED and feed.last_ok_at == POLLED


def test_apply_updates_by_external_id_and_reports_missing_devices(feed: Feed) -> None:
    apply_feed(
        feed.id, parse_feed(body([entry(1, "router"), entry(2, "switch")])), polled_at=POLLED
    )
    switch_id = Device.objects.get(name="switch").id
    applied = apply_feed(
        feed.id,
        parse_feed(body([entry(1, "router-renamed", address="10.9.9.9")])),
        polled_at=POLLED,
    )
    renamed = Device.objects.get(feed=feed, external_id="1")
    assert (renamed.name, renamed.address) == ("router-renamed", "10.9.9.9")
    assert applied.missing == [switch_id]
    assert Device.objects.filter(feed=feed).count() == 2


def test_a_name_owned_by_another_device_is_skipped_with_the_reason(feed: Feed, network) -> None:
    applied = apply_feed(
        feed.id, parse_feed(body([entry(1, network.core.name), entry(2, "new")])), polled_at=POLLED
    )
    assert [c.name for c, _ in applied.devices] == ["new"]
    feed.refresh_from_db()
    assert feed.last_error == (
        f"skipped 1 of 2 entries: id 1: name '{network.core.name}' belongs to another device"
    )
    assert Device.objects.get(name=network.core.name).feed_id is None


def test_a_removed_feed_applies_nothing(feed: Feed) -> None:
    feed_id = feed.id
    feed.delete()
    applied = apply_feed(feed_id, parse_feed(body([entry(1, "x")])), polled_at=POLLED)
    assert applied.devices == [] and not Device.objects.filter(name="x").exists()


def test_record_feed_failure_keeps_last_ok_and_lists_the_devices(feed: Feed) -> None:
    apply_feed(feed.id, parse_feed(body([entry(1, "router")])), polled_at=POLLED)
    later = datetime(2026, 1, 2, tzinfo=UTC)
    ids = record_feed_failure(feed.id, "HTTP 500", polled_at=later)
    feed.refresh_from_db()
    assert ids == [Device.objects.get(name="router").id]
    assert (feed.last_error, feed.last_polled_at, feed.last_ok_at) == ("HTTP 500", later, POLLED)


# -- resmon feeds -----------------------------------------------------------------------


def run(*args: str) -> str:
    out = StringIO()
    call_command("feeds", *args, stdout=out)
    return out.getvalue()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", "not a url"], "not an http(s) URL"),
        (["add", "ftp://example.org/feed"], "not an http(s) URL"),
        (["add", "http://127.0.0.1/feed", "--interval", "0"], "--interval must be from 1 to 86400"),
        (["add", "http://127.0.0.1/feed", "--interval", "86401"], "--interval must be"),
        (["add", "http://127.0.0.1/feed", "--interval", "abc"], "must be a number"),
        (["add", "http://127.0.0.1/feed", "--interval", "nan"], "--interval must be"),
        (["add", "http://127.0.0.1/feed", "--timeout", "0"], "--timeout must be"),
        (["add", "http://127.0.0.1/feed", "--interval", "2", "--timeout", "5"], "not be longer"),
        (["remove", "http://127.0.0.1/nope"], "no feed with URL"),
        ([], "say what to do"),
    ],
)
@pytest.mark.django_db
def test_feeds_bad_input_is_a_command_error(args: list[str], message: str) -> None:
    with pytest.raises(CommandError) as caught:
        run(*args)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert not Feed.objects.exists()


@pytest.mark.django_db
def test_feeds_add_list_remove() -> None:
    url = "http://127.0.0.1:8001/devices"
    assert run("add", url, "--interval", "15", "--timeout", "3").startswith("added feed")
    assert run("add", url, "--interval", "20").startswith("updated feed")
    feed = Feed.objects.get(url=url)
    assert (feed.interval_s, feed.timeout_s) == (20.0, 5.0)
    run("add", url, "--interval", "1")
    feed.refresh_from_db()
    assert (feed.interval_s, feed.timeout_s) == (1.0, 1.0), "the default timeout fits"
    assert url in run("list")
    [listed] = json.loads(run("list", "--json"))
    assert listed["url"] == url and listed["interval_s"] == 1.0
    assert listed["last_polled_at"] is None
    assert "removed" in run("remove", url)
    assert not Feed.objects.exists()
    assert "no feeds" in run("list")
