"""The system page, GET /api/v1/system, /readyz and `resmon system`."""

from __future__ import annotations

import json
import socket
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from resourcemonitor.api import system
from resourcemonitor.monitoring.models import Heartbeat


def beat(component: str, instance: str, age_s: float = 0.0, **info) -> Heartbeat:
    row = Heartbeat.beat(component=component, instance=instance, info=info)
    if age_s:
        Heartbeat.objects.filter(pk=row.pk).update(
            last_seen_at=timezone.now() - timedelta(seconds=age_s)
        )
    return row


@pytest.fixture
def components(db):
    beat(
        "collector",
        "collector@hostA:10",
        checks_per_s=512.5,
        lag_p99_ms=42.0,
        held_batches=2,
        queue_depth=7,
        errors_total=3,
        recent_errors=["db locked", "<b>x</b>"],
    )
    beat("collector", "collector@hostB:11", age_s=120)
    beat("web", "web@hostA:12", requests_per_s=3.0)
    beat("simulator", "simulator@hostC:13", age_s=7200)  # an hour gone: not shown


def test_api_lists_live_components_first(client, public, components):
    body = client.get("/api/v1/system").json()
    instances = [row["instance"] for row in body["components"]]
    assert instances == ["collector@hostA:10", "web@hostA:12", "collector@hostB:11"]
    first = body["components"][0]
    assert first["alive"] is True
    assert first["rate_per_s"] == 512.5
    assert first["lag_p99_ms"] == 42.0
    assert first["spool"] == 2
    assert first["queue_depth"] == 7
    assert first["errors_total"] == 3
    assert first["recent_errors"] == ["db locked", "<b>x</b>"]
    assert body["components"][2]["alive"] is False
    assert body["collectors_alive"] == 1
    assert body["deadman"]["configured"] is False


def test_api_needs_read_access(client, db, settings):
    settings.RESMON_PUBLIC_DASHBOARD = False
    assert client.get("/api/v1/system").status_code == 401


def test_page_renders_components_as_text(client, public, components):
    response = client.get("/system/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-instance="collector@hostA:10"' in html
    assert "not reporting" in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html  # device/component text is escaped, never markup
    assert "<b>x</b>" not in html
    assert "dashboard/js/system.js" in html
    assert "<script>" not in html  # no inline scripts (a strict CSP is coming)
    assert 'href="/system/" aria-current="page"' in html


def test_page_shows_the_no_collector_banner(client, public, db):
    beat("collector", "collector@hostA:10", age_s=300)
    html = client.get("/system/").content.decode()
    banner = html.split('data-testid="no-collector-banner"', 1)[1].split(">", 1)[0]
    assert "hidden" not in banner


def test_page_redirects_anonymous_to_login(client, db, settings):
    settings.RESMON_PUBLIC_DASHBOARD = False
    response = client.get("/system/")
    assert response.status_code == 302
    assert "/login/" in response["Location"]


def test_api_is_one_query(client, public, components, django_assert_max_num_queries):
    with django_assert_max_num_queries(1):
        system.system_status()


def test_readyz_when_migrated(client, db):
    system.reset_ready_cache()
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["ready"] is True
    # cached: the next answer reads no migration state
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/readyz").json()["cached"] is True
    assert len(queries) == 0


def test_readyz_with_unapplied_migrations(client, db, monkeypatch):
    system.reset_ready_cache()
    monkeypatch.setattr(system, "unapplied_migrations", lambda: ["monitoring.0099_future"])
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["ready"] is False
    assert body["unapplied"] == ["monitoring.0099_future"]
    assert "resmon migrate" in body["error"]


def test_readyz_when_the_database_is_gone(client, db, monkeypatch):
    from django.db import OperationalError

    system.reset_ready_cache()

    def broken():
        raise OperationalError("unable to open database file")

    monkeypatch.setattr(system, "unapplied_migrations", broken)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["database"] == "error"


def test_command_table_and_json(components, capsys):
    call_command("system")
    out = capsys.readouterr().out
    assert "collector@hostB:11" in out and "NOT REPORTING" in out
    call_command("system", "--json")
    body = json.loads(capsys.readouterr().out)
    assert body["collectors_alive"] == 1


def test_command_require(components, capsys):
    call_command("system", "--require", "collector", "--require", "web")
    with pytest.raises(CommandError, match="not reporting: ingester"):
        call_command("system", "--require", "ingester")


def test_command_require_this_host(db, capsys):
    host = socket.gethostname()
    beat("collector", "collector@elsewhere:1")
    with pytest.raises(CommandError, match="on this host: collector"):
        call_command("system", "--require", "collector", "--this-host")
    beat("collector", f"collector[2/4]@{host}:99")
    call_command("system", "--require", "collector", "--this-host")


def test_command_on_an_unmigrated_database_is_one_line(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "RESMON_DATA_DIR": str(tmp_path)}
    env.pop("DATABASE_URL", None)
    result = subprocess.run(
        [sys.executable, "-m", "resourcemonitor", "system", "--require", "collector"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "cannot read storage" in result.stderr
    assert "Traceback" not in result.stderr
