"""/metrics, /readyz, heartbeats and `resmon system` on the real product (`resmon run`:
simulator, collector, gunicorn with two workers, a real SQLite file)."""

from __future__ import annotations

import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.stack import start_stack, wait_for
from tests.unit.observability.conftest import promtool_check

pytestmark = pytest.mark.integration


def get_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        return response.read().decode()


def families(text: str) -> dict[str, list]:
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    running = start_stack(tmp_path_factory.mktemp("obs"), devices=4, interval=1.0)
    yield running
    running.stop()


def test_metrics_from_the_running_product(stack):
    # Requests spread over both gunicorn workers; multiprocess mode must count them all.
    for _ in range(30):
        get_text(f"{stack.web_url}/healthz")

    def scraped():
        found = families(get_text(f"{stack.web_url}/metrics"))
        collectors = [s for s in found.get("resmon_collector_checks", []) if s.value > 0]
        webs = [s for s in found.get("resmon_component_up", []) if s.labels["component"] == "web"]
        return found if collectors and len(webs) >= 2 else None

    found = wait_for(scraped, timeout=30, what="collector checks and two web heartbeats")
    assert len([s for s in found["resmon_device_up"]]) == 4
    healthz = [
        s
        for s in found["resmon_http_request_duration_seconds"]
        if s.name.endswith("_count") and s.labels["handler"] == "/healthz"
    ]
    assert sum(s.value for s in healthz) >= 30
    check = promtool_check(get_text(f"{stack.web_url}/metrics"))
    if check is not None:
        assert check.returncode == 0, check.stdout + check.stderr


def test_readyz_and_system(stack):
    assert '"ready": true' in get_text(f"{stack.web_url}/readyz")
    result = stack.resmon("system", "--require", "collector", "--require", "web", "--this-host")
    assert result.returncode == 0, result.stderr
    assert "collector" in result.stdout
    missing = stack.resmon("system", "--require", "ingester")
    assert missing.returncode == 1
    assert "not reporting: ingester" in missing.stderr
    assert "Traceback" not in missing.stderr


@pytest.mark.browser
def test_system_page_in_a_browser(stack, browser):
    page = browser.new_page()
    errors: list[str] = []
    page.on(
        "console", lambda message: errors.append(message.text) if message.type == "error" else None
    )
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(f"{stack.web_url}/system/", timeout=15000)
        # The script has polled /api/v1/system and redrawn the table.
        page.wait_for_selector(
            "[data-testid=last-updated] .updated__text:has-text('Updated')", timeout=15000
        )
        rows = page.locator("[data-testid=component-table] tbody tr")
        texts = rows.all_inner_texts()
        assert any("collector" in text and "reporting" in text for text in texts), texts
        assert any(text.startswith("web") for text in texts), texts
        assert page.locator("[data-testid=no-collector-banner]").is_hidden()
        assert page.locator("nav.sitenav a[aria-current=page]").inner_text() == "System"
        assert errors == []
    finally:
        page.close()
