"""The dashboard in a real browser against the real product (`resmon run`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.stack import Stack, start_stack

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = start_stack(tmp_path_factory.mktemp("browser"), devices=16, interval=1.0)
    yield stack
    stack.stop()


@pytest.fixture
def page(browser: Any, stack: Stack) -> Iterator[Any]:
    # bypass_csp lets wait_for_function evaluate its predicates; the page's own CSP is
    # exercised by test_csp.py.
    context = browser.new_context(viewport={"width": 1400, "height": 900}, bypass_csp=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.goto(stack.web_url + "/")
    yield page
    context.close()
    assert errors == [], errors


def test_dashboard_shows_the_network_and_a_device_going_down(page: Any, stack: Stack) -> None:
    page.wait_for_function(
        "document.querySelectorAll('[data-device-id]').length >= 16", timeout=20_000
    )
    leaf = stack.leaf()
    chain = stack.pin_up_with_ancestors(leaf)
    try:
        device_id = next(
            item["id"]
            for item in stack.api(f"/api/v1/devices?q={leaf['name']}")["items"]
            if item["name"] == leaf["name"]
        )
        selector = f"[data-device-id='{device_id}']"
        page.wait_for_selector(f"{selector}[data-status='up']", timeout=15_000)
        stack.force(leaf, "down")
        # Live update without a reload: down on the page within a few intervals.
        page.wait_for_selector(f"{selector}[data-status='down']", timeout=15_000)
        count = page.locator("[data-testid='status-count-down']").inner_text()
        assert int("".join(c for c in count if c.isdigit()) or 0) >= 1
    finally:
        stack.release(chain)


def test_search_filters_devices(page: Any, stack: Stack) -> None:
    page.wait_for_function(
        "document.querySelectorAll('[data-device-id]').length >= 16", timeout=20_000
    )
    name = stack.sim("/inventory")[0]["name"]
    page.fill("[data-testid='search']", name)
    page.wait_for_function(
        """(name) => {
            const visible = [...document.querySelectorAll('[data-device-id]')]
                .filter(el => el.offsetParent !== null);
            return visible.length >= 1 && visible.every(el => el.textContent.includes(name));
        }""",
        arg=name,
        timeout=5_000,
    )


def test_drawer_opens_with_device_details(page: Any, stack: Stack) -> None:
    page.wait_for_function(
        "document.querySelectorAll('[data-device-id]').length >= 16", timeout=20_000
    )
    # The demo network flaps, so live updates reorder the tiles: take the name of the tile
    # that is clicked from that tile's own id, not from the API's (problems-first) order.
    device_id = page.locator("[data-device-id]").first.get_attribute("data-device-id")
    name = stack.api(f"/api/v1/devices/{device_id}")["name"]
    page.locator(f"[data-device-id='{device_id}']").first.click()
    drawer = page.locator("[data-testid='drawer']")
    drawer.wait_for(state="visible", timeout=5_000)
    page.wait_for_function(
        """(name) => document.querySelector("[data-testid='drawer']").innerText.includes(name)""",
        arg=name,
        timeout=5_000,
    )
    page.keyboard.press("Escape")
    drawer.wait_for(state="hidden", timeout=5_000)
