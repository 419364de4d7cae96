"""Two ``resmon alerts`` processes against one real SQLite file: every message once."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.integration.alerts.receiver import Receiver
from tests.stack import stack_env

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

MESSAGES = 40

SEED = """
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.utils import timezone
from resourcemonitor.alerts.models import Channel, Incident, Notification
from resourcemonitor.inventory.models import Device
device = Device.objects.create(name="sw-1", address="127.0.0.1", check_method="tcp", check_port=9)
incident = Incident.objects.create(device=device, severity="critical", title="sw-1 is down",
                                   notified_at=timezone.now())
channel = Channel.objects.create(name="hook", target={url!r})
# A plain loop: `shell -c` runs this with separate globals and locals, which a
# comprehension's own scope cannot see.
for i in range({count}):
    Notification.objects.create(incident=incident, channel=channel, kind="problem", title=f"n{{i}}")
"""


def resmon(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "resourcemonitor", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def test_two_senders_at_once_send_each_message_once(tmp_path: Path) -> None:
    receiver = Receiver()
    env = stack_env(tmp_path)
    try:
        resmon(env, "shell", "-c", SEED.format(url=receiver.url(), count=MESSAGES))
        workers = [
            subprocess.Popen(
                [sys.executable, "-m", "resourcemonitor", "alerts", "--sleep", "0.05"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            for _ in range(2)
        ]
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and len(receiver.posts) < MESSAGES:
                time.sleep(0.2)
            time.sleep(1.0)  # a duplicate, if any, would arrive now
        finally:
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
            errors = [worker.communicate(timeout=15)[1] for worker in workers]
        assert all(worker.returncode == 0 for worker in workers), errors
        titles = Counter(receiver.titles())
        assert len(titles) == MESSAGES, titles
        assert max(titles.values()) == 1, [t for t, n in titles.items() if n > 1]
        # Straight from the SQLite file the workers shared.
        with sqlite3.connect(tmp_path / "resmon.sqlite3") as db:
            rows = db.execute(
                "SELECT status, attempts, claimed_by FROM alerts_notification"
            ).fetchall()
        assert [(status, attempts) for status, attempts, _ in rows] == [("sent", 1)] * MESSAGES
        # Both took part: each claimed rows of its own.
        assert len({claimed_by for *_, claimed_by in rows}) == 2
    finally:
        receiver.close()
