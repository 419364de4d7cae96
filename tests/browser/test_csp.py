"""The strict Content-Security-Policy in a real browser: the dashboard, the login page and
the admin run without a single CSP violation, and a device named with HTML shows as text."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.stack import Stack, start_stack

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

HOSTILE = '<img src=x onerror="window.__xss=1"><b>bold</b>'
# Collects violations from the page itself: an init script is injected by the driver, not
# by the page, so the policy does not block it.
WATCH = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__csp.push(e.violatedDirective + ' ' + e.blockedURI + ' ' + (e.sample || ''));
});
"""
SETUP = f"""
from django.contrib.auth.models import User
from resourcemonitor.inventory.models import Device
User.objects.create_superuser("root", "root@example.org", "root-password-1")
device = Device.objects.order_by("id").last()
device.name = {HOSTILE!r}
device.save()
print(device.pk)
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = start_stack(tmp_path_factory.mktemp("csp"), devices=8, interval=1.0)
    result = stack.resmon("shell", "-c", SETUP)
    assert result.returncode == 0, result.stderr
    stack.hostile_id = int(result.stdout.strip().splitlines()[-1])  # type: ignore[attr-defined]
    yield stack
    stack.stop()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.add_init_script(WATCH)
    page = context.new_page()
    page.console_errors = []
    page.on(
        "console", lambda msg: page.console_errors.append(msg.text) if msg.type == "error" else None
    )
    page.on("pageerror", lambda exc: page.console_errors.append(str(exc)))
    yield page
    context.close()


def _assert_clean(page: Any) -> None:
    violations = page.evaluate("window.__csp")
    assert violations == [], violations
    csp_errors = [text for text in page.console_errors if "Content Security Policy" in text]
    assert csp_errors == [], csp_errors


def test_dashboard_runs_under_the_csp_and_shows_html_names_as_text(page: Any, stack: Stack) -> None:
    response = page.goto(stack.web_url + "/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    page.locator("[data-device-id]").nth(7).wait_for(timeout=20_000)  # no eval under CSP
    tile = page.locator(f"[data-device-id='{stack.hostile_id}']").first  # type: ignore[attr-defined]
    assert HOSTILE in tile.inner_text()
    assert tile.locator("b").count() == 0 and tile.locator("img").count() == 0
    tile.click()
    drawer = page.locator("[data-testid='drawer']")
    drawer.wait_for(state="visible", timeout=5_000)
    assert HOSTILE in drawer.inner_text()
    assert drawer.locator("b, img[src='x']").count() == 0
    assert page.evaluate("window.__xss") is None
    _assert_clean(page)
    assert page.console_errors == [], page.console_errors


def test_login_and_admin_run_under_the_csp(page: Any, stack: Stack) -> None:
    page.goto(stack.web_url + "/login/?next=/admin/inventory/device/")
    page.fill("input[name='username']", "root")
    page.fill("input[name='password']", "root-password-1")
    page.click("input[type='submit']")
    page.wait_for_url("**/admin/inventory/device/", timeout=10_000)
    assert page.locator("#result_list").count() == 1
    # The admin's change list shows the hostile name escaped too.
    assert page.get_by_text(HOSTILE).count() >= 1
    assert page.evaluate("window.__xss") is None
    _assert_clean(page)
    page.goto(f"{stack.web_url}/admin/inventory/device/{stack.hostile_id}/change/")  # type: ignore[attr-defined]
    page.wait_for_selector("#device_form", timeout=10_000)
    _assert_clean(page)
    page.goto(stack.web_url + "/")
    page.locator("[data-device-id]").nth(7).wait_for(timeout=20_000)  # no eval under CSP
    _assert_clean(page)
    # The API's browsable docs (Swagger UI) too.
    page.goto(stack.web_url + "/api/v1/docs")
    page.wait_for_selector(".swagger-ui .opblock", timeout=20_000)
    _assert_clean(page)
