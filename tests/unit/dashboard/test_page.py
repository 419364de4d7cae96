"""The dashboard page: the server-rendered shell and its first paint."""

from __future__ import annotations

import json
import re
from datetime import timedelta

from django.utils import timezone

from resourcemonitor.inventory.models import Device
from resourcemonitor.monitoring.models import Heartbeat
from resourcemonitor.monitoring.status import STATUS_META
from tests.unit.api.helpers import set_state

HOOKS = [
    'data-testid="search"',
    'data-testid="drawer"',
    'data-testid="stale-banner"',
    'data-testid="tiles"',
    'data-testid="device-table"',
    'data-testid="problems"',
    'data-testid="last-updated"',
    'data-testid="total"',
    'data-testid="view-tiles"',
    'data-testid="view-table"',
    'data-testid="filter-status"',
    'data-testid="filter-kind"',
    'data-testid="filter-site"',
    'data-testid="filter-tag"',
]


def test_renders_shell_with_hooks(client, public, network):
    response = client.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    for hook in HOOKS:
        assert hook in html, hook
    for status in STATUS_META:
        assert f'data-testid="status-count-{status}"' in html


def test_counts_and_problems_in_first_paint(client, public, network):
    set_state(network.core, "down", last_error="Connection refused", since_ago=252)
    set_state(network.pc, "up")
    html = client.get("/").content.decode()
    down = re.search(r'data-testid="status-count-down".*?count__num">(\d+)<', html, re.S)
    up = re.search(r'data-testid="status-count-up".*?count__num">(\d+)<', html, re.S)
    assert down and down.group(1) == "1"
    assert up and up.group(1) == "1"
    # The problem row, with its status in words (not colour alone) and its duration.
    assert f'data-device-id="{network.core.pk}" data-status="down"' in html
    assert "Connection refused" in html
    assert "4 m 12 s" in html
    assert ">Down<" in html or "Down</span>" in html


def test_html_in_device_strings_is_escaped(client, public, network):
    evil = "<img src=x onerror=alert(1)>"
    Device.objects.filter(pk=network.core.pk).update(name=evil, address='"><script>x</script>')
    set_state(network.core, "down", last_error="<b>refused</b>")
    html = client.get("/").content.decode()
    assert evil not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<script>x</script>" not in html
    assert "<b>refused</b>" not in html


def test_no_inline_scripts_or_handlers(client, public, network):
    html = client.get("/").content.decode()
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert 'type="application/json"' in tag or "src=" in tag, tag
    # Inline JSON is only data, and the module is external.
    assert re.search(r'<script type="module" src="[^"]+/main\.js"', html)
    assert not re.search(r"\son[a-z]+\s*=", html), "inline event handler"
    assert "javascript:" not in html
    assert " style=" not in html  # a strict CSP (style-src 'self') comes later


def test_config_is_json_script(client, public, network):
    html = client.get("/").content.decode()
    match = re.search(r'<script id="dashboard-config" type="application/json">(.*?)</script>', html)
    assert match
    config = json.loads(match.group(1))
    assert config["api"] == "/api/v1/"
    assert config["pollMs"] == 2000
    assert set(config["statusMeta"]) == {str(status) for status in STATUS_META}
    assert config["statusOrder"][0] == "down"
    assert config["kinds"]["access_point"] == "Access point"


def stale_banner(html: str) -> str:
    match = re.search(r'<div class="banner banner--stale"[^>]*>', html)
    assert match, "no stale banner"
    return match.group(0)


def test_stale_banner_hidden_with_fresh_collector(client, public, network):
    Heartbeat.beat(component="collector", instance="collector@test")
    html = client.get("/").content.decode()
    banner = stale_banner(html)
    assert "hidden" in banner


def test_stale_banner_shown_when_collector_silent(client, public, network):
    beat = Heartbeat.beat(component="collector", instance="collector@test")
    Heartbeat.objects.filter(pk=beat.pk).update(last_seen_at=timezone.now() - timedelta(minutes=5))
    html = client.get("/").content.decode()
    banner = stale_banner(html)
    assert "hidden" not in banner
    assert "Collector not reporting since" in html


def test_login_link_or_user_name(client, public, bob, network):
    html = client.get("/").content.decode()
    assert 'data-testid="login-link" href="/login/?next=/"' in html
    client.force_login(bob)
    html = client.get("/").content.decode()
    assert 'data-testid="user-name">bob<' in html
    assert "Log out" in html


def test_private_dashboard_redirects_to_login(client, settings, network):
    settings.RESMON_PUBLIC_DASHBOARD = False
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/"


def test_private_dashboard_for_logged_in_user(client, settings, bob, network):
    settings.RESMON_PUBLIC_DASHBOARD = False
    client.force_login(bob)
    assert client.get("/").status_code == 200


def test_first_paint_query_count_is_constant(
    client, public, network, django_assert_max_num_queries
):
    for device in (network.core, network.dist, network.pc):
        set_state(device, "down")
    with django_assert_max_num_queries(6):
        client.get("/")


def test_status_css_from_status_meta(client, db):
    response = client.get("/status.css")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/css")
    css = response.content.decode()
    for status, meta in STATUS_META.items():
        assert f"--st-{status}: {meta.colour};" in css
        assert f'[data-status="{status}"]' in css


def test_static_files_are_served(client, db):
    for path in ("dashboard/dashboard.css", "dashboard/js/main.js", "dashboard/favicon.svg"):
        response = client.get(f"/static/{path}")
        assert response.status_code == 200, path
