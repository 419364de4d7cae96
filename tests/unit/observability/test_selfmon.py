"""The web's heartbeat and the dead-man's switch, against a real local HTTP receiver."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from resourcemonitor.monitoring import selfmon
from resourcemonitor.monitoring.models import Heartbeat


class Receiver:
    """A real HTTP server on 127.0.0.1 that records the paths it was asked for."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.paths: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                receiver.paths.append(self.path)
                self.send_response(receiver.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/ping/abc"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


@pytest.fixture
def collector_alive(db):
    Heartbeat.beat(component="collector", instance="collector@h:1", info={})


def test_pings_once_per_interval_across_processes(receiver, collector_alive):
    now = timezone.now()
    assert selfmon.deadman_step(now=now, url=receiver.url, interval_s=60) == "ok"
    # a second web worker beating a few seconds later: not its turn
    assert (
        selfmon.deadman_step(now=now + timedelta(seconds=10), url=receiver.url, interval_s=60)
        is None
    )
    assert receiver.paths == ["/ping/abc"]
    # a minute on: due again
    assert (
        selfmon.deadman_step(now=now + timedelta(seconds=61), url=receiver.url, interval_s=60)
        == "ok"
    )
    assert receiver.paths == ["/ping/abc", "/ping/abc"]
    row = Heartbeat.objects.get(instance="deadman")
    assert row.info["result"] == "ok"


def test_no_ping_while_no_collector_reports(receiver, db):
    old = Heartbeat.beat(component="collector", instance="collector@h:1", info={})
    Heartbeat.objects.filter(pk=old.pk).update(last_seen_at=timezone.now() - timedelta(minutes=5))
    result = selfmon.deadman_step(url=receiver.url, interval_s=60)
    assert result == "skipped: no collector reporting"
    assert receiver.paths == []


def test_a_failing_receiver_is_recorded_not_raised(collector_alive):
    with Receiver(status=500) as failing:
        assert selfmon.deadman_step(url=failing.url, interval_s=60) == "http 500"
    assert Heartbeat.objects.get(instance="deadman").info["result"] == "http 500"


def test_an_unreachable_receiver_is_recorded_not_raised(collector_alive):
    with Receiver() as gone:
        url = gone.url
    # the server is closed: connection refused
    result = selfmon.deadman_step(url=url, interval_s=60)
    assert result is not None and result.startswith("error:")


def test_off_without_url(db):
    assert selfmon.deadman_step(url="", interval_s=60) is None
    assert not Heartbeat.objects.filter(instance="deadman").exists()


def test_web_heartbeat_step_reports_requests(db, receiver, settings):
    settings.RESMON_DEADMAN_URL = ""
    beat = selfmon.WebHeartbeat(period_s=10, instance="web@test:1")
    selfmon.note_request()
    selfmon.note_request()
    beat.step()
    row = Heartbeat.objects.get(instance="web@test:1")
    assert row.component == "web"
    assert row.info["requests_total"] >= 2
    assert row.info["pid"] > 0
