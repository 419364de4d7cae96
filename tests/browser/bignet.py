"""A large network written straight into a fresh SQLite file, served by ``resmon web``.

For the 10,000-device benchmark (bench/dashboard.py) and the browser tests that need
more devices than the simulator comfortably runs. No collector: every device gets a
long check interval so its state stays fresh (not stale) for the length of a run, and a
few events in the last day so the time slider and the 24 h strips have something to show.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.stack import free_port, stack_env, wait_for

ROOT = Path(__file__).resolve().parents[2]
RESMON = str(ROOT / ".venv" / "bin" / "resmon")


def seed(count: int) -> None:
    """Runs inside a child process with RESMON_DATA_DIR set: migrate, then bulk insert."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "resourcemonitor.settings")
    import django

    django.setup()
    from datetime import timedelta

    from django.core.management import call_command
    from django.utils import timezone

    from resourcemonitor.inventory.models import Device, Kind, Site
    from resourcemonitor.monitoring.models import DeviceState, Event

    call_command("migrate", verbosity=0)
    now = timezone.now()
    sites = [Site.objects.create(name=f"site-{index:02d}") for index in range(20)]
    per_site = max(1, count // len(sites))
    devices: list[Device] = []
    parents: dict[int, int] = {}  # index in devices -> index of its parent
    for site_index, site in enumerate(sites):
        base = len(devices)
        for offset in range(per_site):
            if len(devices) >= count:
                break
            number = len(devices)
            if offset == 0:
                kind, parent = Kind.ROUTER, None
            elif offset <= 4:
                kind, parent = Kind.SWITCH, base
            else:
                kind = (Kind.PHONE, Kind.PC, Kind.ACCESS_POINT, Kind.SERVER)[offset % 4]
                parent = base + 1 + offset % 4
            if parent is not None:
                parents[number] = parent
            devices.append(
                Device(
                    name=f"{site.name}-{kind}-{number:05d}",
                    address=f"10.{site_index}.{number // 250 % 250}.{number % 250 + 1}",
                    kind=kind,
                    site=site,
                    check_interval_s=3600,
                    check_timeout_s=2,
                )
            )
    Device.objects.bulk_create(devices, batch_size=2000)
    devices = list(Device.objects.order_by("id"))
    for number, parent in parents.items():
        devices[number].parent_id = devices[parent].pk
    Device.objects.bulk_update(devices, ["parent"], batch_size=2000)

    # One distribution switch down in every fifth site takes its subtree with it.
    down = {
        number
        for number in range(len(devices))
        if number in parents
        and devices[number].kind == Kind.SWITCH
        and number % 5 == 1
        and (number // per_site) % 5 == 0
    }
    states = []
    events = []
    for number, device in enumerate(devices):
        parent = parents.get(number)
        status, error, flapping = "up", "", False
        if number in down:
            status, error = "down", "timeout"
        elif parent in down:
            status = "unreachable"
        elif number % 97 == 0:
            status, error = "degraded", ""
        elif number % 211 == 0:
            status, error = "down", "refused"
        elif number % 389 == 0:
            flapping = True
        since = now - timedelta(minutes=5 + number % 600)
        states.append(
            DeviceState(
                device=device,
                status=status,
                since=since,
                last_check_at=now,
                latency_ms=1 + number % 40,
                last_error=error,
                flapping=flapping,
                changed_at=since,
            )
        )
        events.append(
            Event(
                device=device,
                at=now - timedelta(hours=23),
                from_status="unknown",
                to_status="up",
                processed_at=now,
            )
        )
        if status != "up":
            events.append(
                Event(
                    device=device,
                    at=since,
                    from_status="up",
                    to_status=status,
                    message=error,
                    processed_at=now,
                )
            )
    DeviceState.objects.bulk_create(states, batch_size=2000)
    Event.objects.bulk_create(events, batch_size=2000)


@dataclass
class BigNet:
    process: subprocess.Popen[bytes]
    web_url: str
    data_dir: Path

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


def start_bignet(data_dir: Path, count: int) -> BigNet:
    """Seed ``count`` devices into a new database and serve it with ``resmon web``."""
    env = stack_env(data_dir)
    subprocess.run(
        [sys.executable, "-c", f"from tests.browser.bignet import seed; seed({count})"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=300,
    )
    port = free_port()
    log = open(data_dir / "web.log", "wb")  # noqa: SIM115 - lives as long as the process
    process = subprocess.Popen(
        [RESMON, "web", "--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "4"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    import urllib.request

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"resmon web exited: {(data_dir / 'web.log').read_text()}")
        with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
            return response.status == 200

    try:
        wait_for(ready, timeout=90, what="resmon web")
    except BaseException:
        process.kill()
        raise
    return BigNet(process, url, data_dir)
