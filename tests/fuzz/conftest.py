"""A live `resmon web` (gunicorn, real sockets, a temporary SQLite file) for the fuzzers."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.stack import free_port, stack_env, wait_for

INVENTORY = """\
sites:
  - {name: London, description: ""}
devices:
  - {name: lon-core-1, address: 127.31.0.1, kind: router, site: London, check: {method: tcp, port: 22}}
  - {name: lon-sw-1, address: 127.31.0.2, kind: switch, site: London, parent: lon-core-1, tags: [core], check: {method: tcp, port: 22}}
  - {name: "<b>lon-phone</b>", address: 127.31.0.3, kind: phone, site: London, parent: lon-sw-1, check: {method: tcp, port: 5060}}
  - name: lon-sensor-1
    address: 127.31.0.4
    check: {method: push}
"""
SETUP = """
from django.contrib.auth.models import User
from django.core.management import call_command
from resourcemonitor.api.models import ApiToken
call_command("devices", "import", INVENTORY_PATH)
user = User.objects.create_superuser("fuzz", "fuzz@example.org", "fuzz-password-1")
print(ApiToken.issue(user=user, name="fuzz", scopes=["read", "write", "ingest"])[1])
"""


@dataclass
class LiveServer:
    url: str
    token: str
    data_dir: Path


def _resmon(data_dir: Path, *args: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "resourcemonitor", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"resmon {' '.join(args)}: {result.stderr[-2000:]}"
    return result.stdout


@pytest.fixture(scope="session")
def resmon_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data_dir = tmp_path_factory.mktemp("fuzz")
    env = stack_env(data_dir)
    # Fuzzing sends requests as fast as it can: the ingest limit is not under test here.
    env["RESMON_INGEST_RATE_PER_S"] = "100000"
    # Private, as in production: the token pass then also checks that every operation
    # refuses the same request without credentials (schemathesis' ignored_auth check).
    env["RESMON_PUBLIC_DASHBOARD"] = "0"
    _resmon(data_dir, "migrate", "-v", "0", env=env)
    inventory = data_dir / "inventory.yaml"
    inventory.write_text(INVENTORY)
    # One process for the rest of the set-up: each start of Django costs seconds here.
    setup = SETUP.replace("INVENTORY_PATH", repr(str(inventory)))
    token = _resmon(data_dir, "shell", "-c", setup, env=env).strip().splitlines()[-1]
    port = free_port()
    log = (data_dir / "web.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "resourcemonitor",
            "web",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--threads",
            "4",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(
            lambda: urllib.request.urlopen(f"{url}/healthz", timeout=2).status == 200,
            timeout=60,
            what="resmon web to answer /healthz",
        )
        yield LiveServer(url=url, token=token, data_dir=data_dir)
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
