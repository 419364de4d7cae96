"""``resmon collect`` as a real process on a real SQLite file: it checks, writes, and
exits 0 within a few seconds of SIGTERM."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.unit.monitoring.helpers import ServerThread, closed_port, http_answer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def env_for(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.pop("DATABASE_URL", None)
    env.update(
        RESMON_DATA_DIR=str(data_dir),
        RESMON_BATCH_SECONDS="0.2",
        RESMON_INVENTORY_REFRESH_S="1",
    )
    return env


def resmon(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "resourcemonitor", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_collect_runs_writes_and_stops_cleanly_on_sigterm(
    tmp_path: Path, servers: ServerThread
) -> None:
    env = env_for(tmp_path)
    assert resmon("migrate", "-v0", env=env).returncode == 0
    web_port, dead_port = servers.serve(http_answer(200, b"ok")), closed_port()
    create = (
        "from resourcemonitor.inventory.models import Device as D;"
        f"D.objects.create(name='web', address='127.0.0.1', check_method='http', check_port={web_port}, check_interval_s=0.5, check_timeout_s=0.5);"
        f"D.objects.create(name='dead', address='127.0.0.1', check_method='tcp', check_port={dead_port}, check_interval_s=0.5, check_timeout_s=0.5, fail_threshold=1)"
    )
    result = resmon("shell", "-c", create, env=env)
    assert result.returncode == 0, result.stderr

    process = subprocess.Popen(
        [sys.executable, "-m", "resourcemonitor", "collect"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    database = tmp_path / "resmon.sqlite3"

    def statuses() -> dict[str, str]:
        with sqlite3.connect(database, timeout=5) as db:
            rows = db.execute(
                "SELECT d.name, s.status FROM monitoring_devicestate s "
                "JOIN inventory_device d ON d.id = s.device_id"
            ).fetchall()
        return dict(rows)

    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and statuses() != {"web": "up", "dead": "down"}:
            assert process.poll() is None, process.communicate()[1]
            time.sleep(0.2)
        assert statuses() == {"web": "up", "dead": "down"}
    finally:
        process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        _, stderr = process.communicate(timeout=15)
    assert process.returncode == 0, stderr
    # `resmon run` gives a child 8 s before it kills it.
    assert time.monotonic() - started < 8
    assert "Traceback" not in stderr, stderr
    with sqlite3.connect(database) as db:
        (samples,) = db.execute("SELECT count(*) FROM monitoring_sample").fetchone()
        (beats,) = db.execute("SELECT count(*) FROM monitoring_heartbeat").fetchone()
    assert samples >= 2 and beats == 1
