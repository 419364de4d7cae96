"""The whole product through its front doors: simulator → collector → SQLite → API."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.stack import Stack, start_stack, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = start_stack(tmp_path_factory.mktemp("e2e"), devices=16, interval=1.0)
    yield stack
    stack.stop()


def _device(stack: Stack, name: str) -> dict:
    items = stack.api(f"/api/v1/devices?q={name}")["items"]
    return next(item for item in items if item["name"] == name)


def test_every_simulated_device_is_checked(stack: Stack) -> None:
    def all_checked() -> list | None:
        items = stack.api("/api/v1/devices")["items"]
        return items if all(item["last_check_at"] for item in items) else None

    items = wait_for(all_checked, timeout=30, what="every device to have a check")
    assert len(items) == 16
    # A device whose first checks fail stays unknown until it crosses its threshold.
    assert {item["status"] for item in items} <= {
        "up",
        "degraded",
        "down",
        "unreachable",
        "unknown",
    }
    assert sum(item["status"] == "up" for item in items) >= 8
    assert stack.api("/api/v1/summary")["collector"]["alive"] is True


def test_device_forced_down_is_down_within_three_intervals(stack: Stack) -> None:
    leaf = stack.leaf()
    chain = stack.pin_up_with_ancestors(leaf)
    try:
        wait_for(lambda: _device(stack, leaf["name"])["status"] == "up", timeout=15, what="up")
        stack.force(leaf, "down")
        # Three 1 s intervals to cross the threshold, plus a batch flush and a poll of slack.
        wait_for(lambda: _device(stack, leaf["name"])["status"] == "down", timeout=6, what="down")
        events = stack.api("/api/v1/events?limit=200")["items"]
        assert any(e["device_name"] == leaf["name"] and e["to_status"] == "down" for e in events)
    finally:
        stack.release(chain)


def test_children_of_a_down_parent_are_unreachable(stack: Stack) -> None:
    leaf = stack.leaf()
    chain = stack.pin_up_with_ancestors(leaf)
    parent = chain[1]
    try:
        wait_for(lambda: _device(stack, leaf["name"])["status"] == "up", timeout=15, what="up")
        stack.force(parent, "down")
        wait_for(
            lambda: (
                _device(stack, parent["name"])["status"] == "down"
                and _device(stack, leaf["name"])["status"] == "unreachable"
            ),
            timeout=10,
            what="parent down and child unreachable",
        )
    finally:
        stack.release(chain)


class _FeedHandler(BaseHTTPRequestHandler):
    body = b"[]"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


def test_feed_in_the_original_format_brings_its_devices_in(stack: Stack, tmp_path: Path) -> None:
    feed = [
        {"id": 1, "name": "legacy-router", "ip_address": "10.0.0.1", "status": True},
        {"id": 2, "name": "legacy-switch", "ip_address": "10.0.0.2", "status": False},
    ]
    _FeedHandler.body = json.dumps(feed).encode()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FeedHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/devices"
        result = stack.resmon("feeds", "add", url, "--interval", "1")
        assert result.returncode == 0, result.stderr

        def feed_devices() -> dict | None:
            items = {i["name"]: i for i in stack.api("/api/v1/devices?q=legacy")["items"]}
            ready = len(items) == 2 and items["legacy-switch"]["status"] == "down"
            return items if ready else None

        items = wait_for(feed_devices, timeout=20, what="the feed's devices")
        assert items["legacy-router"]["status"] == "up"
        assert items["legacy-router"]["address"] == "10.0.0.1"
    finally:
        server.shutdown()


def test_bad_feed_url_is_a_one_line_error(stack: Stack) -> None:
    result = stack.resmon("feeds", "add", "not a url")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_sigterm_stops_everything_cleanly(tmp_path: Path) -> None:
    stack = start_stack(tmp_path, devices=4, interval=1.0)
    assert stack.stop(timeout=15) == 0
    log = stack.log()
    assert "Traceback" not in log, log[-3000:]
