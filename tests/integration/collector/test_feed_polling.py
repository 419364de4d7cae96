"""A JSON feed in the original exercise's format, polled by a running collector.

The collector runs on a thread of its own for the whole test; the feed server changes
what it serves (valid, invalid JSON, 500, hang) and the test watches the database
through the collector's writer thread (the one seam to the ORM).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.management import call_command

from resourcemonitor.inventory.models import Device, Feed
from resourcemonitor.monitoring.collector import Collector, run_collector
from resourcemonitor.monitoring.models import DeviceState, Event
from tests.unit.monitoring.helpers import ServerThread, json_feed_handler

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(60),
    pytest.mark.django_db(transaction=True),
]

ORIGINAL = [
    {"id": 1, "name": "legacy-router", "ip_address": "10.0.0.1", "status": True},
    {"id": 2, "name": "legacy-switch", "ip_address": "10.0.0.2", "status": False},
    {"id": 3, "name": "legacy-ap", "ip_address": "10.0.0.3"},  # no status: skipped
]


class RunningCollector:
    def __init__(self) -> None:
        self.collector = Collector(batch_seconds=0.1, inventory_refresh_s=0.5, heartbeat_s=1.0)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            run_collector(self.collector, handle_signals=False)
        except BaseException as exc:  # reported by the test
            self.error = exc

    def db(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the collector's writer thread (after what is queued)."""
        return self.collector.writer.call(fn).result(timeout=10)

    def wait_for(self, fn: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
        """Poll ``fn`` (run on the writer thread) until it returns something truthy."""
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            assert self.thread.is_alive(), f"collector died: {self.error!r}"
            value = self.db(fn)
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what} (last: {value!r})")

    def stop(self) -> None:
        self.collector.request_stop()  # hands itself over to the collector's loop
        self.thread.join(15)
        assert not self.thread.is_alive()
        assert self.error is None, self.error


def statuses() -> dict[str, str]:
    return dict(
        DeviceState.objects.filter(device__feed__isnull=False).values_list("device__name", "status")
    )


def feed_error() -> str:
    return Feed.objects.get().last_error


@pytest.fixture
def feed_server(servers: ServerThread) -> Iterator[tuple[str, dict[str, Any]]]:
    served: dict[str, Any] = {"body": json.dumps(ORIGINAL).encode()}
    port = servers.serve(json_feed_handler(lambda: served["body"]))
    yield f"http://127.0.0.1:{port}/devices", served


def test_feed_devices_appear_and_a_broken_feed_makes_them_unknown(
    feed_server: tuple[str, dict[str, Any]], no_samples: None
) -> None:
    url, served = feed_server
    call_command("feeds", "add", url, "--interval", "1", "--timeout", "0.5")
    running = RunningCollector()
    try:
        expected = {"legacy-router": "up", "legacy-switch": "down"}
        running.wait_for(lambda: statuses() == expected, "the feed's devices")
        assert running.db(feed_error) == "skipped 1 of 3 entries: entry 2: missing 'status'"
        router = running.db(lambda: Device.objects.get(name="legacy-router"))
        assert (router.address, router.external_id, router.check_method) == (
            "10.0.0.1",
            "1",
            "feed",
        )
        assert router.id not in running.collector.scheduler, "feed devices are not probed"
        switch_error = running.db(
            lambda: DeviceState.objects.get(device__name="legacy-switch").last_error
        )
        assert switch_error == "reported down by feed"

        served["body"] = b"<html>not json</html>"
        running.wait_for(lambda: set(statuses().values()) == {"unknown"}, "unknown on bad JSON")
        assert running.db(feed_error).startswith("invalid JSON")

        served["body"] = json.dumps(ORIGINAL).encode()
        running.wait_for(lambda: statuses() == expected, "recovery")

        served["body"] = (500, b"oops")
        running.wait_for(lambda: feed_error() == "HTTP 500", "HTTP 500")
        assert set(running.db(statuses).values()) == {"unknown"}

        served["body"] = (200, b'{"not": "a list"}')
        running.wait_for(lambda: "expected a JSON list" in feed_error(), "wrong shape")

        served["body"] = "hang"
        running.wait_for(lambda: feed_error() == "timeout after 0.5 s", "a timeout")
        assert set(running.db(statuses).values()) == {"unknown"}
        assert running.thread.is_alive()
        feed = running.db(Feed.objects.get)
        assert feed.device_count == 2
        assert feed.last_ok_at is not None and feed.last_polled_at > feed.last_ok_at
    finally:
        running.stop()

    messages = set(Event.objects.filter(to_status="unknown").values_list("message", flat=True))
    assert any(m.startswith("feed error: invalid JSON") for m in messages)
    assert "feed error: HTTP 500" in messages
    assert DeviceState.objects.get(device__name="legacy-switch").status == "unknown"
