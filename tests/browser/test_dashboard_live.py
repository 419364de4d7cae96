"""Live updates touch only what changed; the virtual table; the groups' SLO roll-up.

In Chromium against the real product: ``resmon run`` with the simulator (16 devices,
pinned where a live update could race the assertion), and 2,000 devices written straight
into a database for the virtual table (tests/browser/bignet.py). Waits use selectors, not
``wait_for_function``: the page's strict CSP forbids evaluating strings.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.bignet import BigNet, start_bignet
from tests.chromium import open_page
from tests.stack import Stack, start_stack, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

TILES = "[data-testid='tiles'] [data-device-id]"
ROWS = "[data-testid='device-table-body'] tr[data-device-id]"
GROUPS_API = "/api/v1/summary/groups?window=30d"

# Every tile node gets a mark (a JS property: it survives only with the node itself), and
# an observer records each tile that is inserted anywhere under the tiles panel.
WATCH_TILES = """tiles => {
  for (const tile of tiles.querySelectorAll('[data-device-id]')) tile.__seen = true;
  window.__inserted = [];
  new MutationObserver((records) => {
    for (const record of records) for (const node of record.addedNodes) {
      if (node.dataset && node.dataset.deviceId) window.__inserted.push(node.dataset.deviceId);
    }
  }).observe(tiles, { childList: true, subtree: true });
}"""
SNAPSHOT = (
    "ts => ts.map(t => [t.dataset.deviceId, t.dataset.status, t.classList.contains('is-flapping')])"
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = start_stack(tmp_path_factory.mktemp("live"), devices=16, interval=1.0)
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def bignet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BigNet]:
    net = start_bignet(Path(tmp_path_factory.mktemp("bignet-live")), 2000)
    yield net
    net.stop()


def _open(browser: Any, url: str) -> tuple[Any, list[str]]:
    return open_page(browser, url, timeout_ms=60_000)  # 2,000 devices on a shared box


def test_a_device_going_down_moves_only_its_own_tile(browser: Any, stack: Stack) -> None:
    inventory = stack.sim("/inventory")
    for device in inventory:
        stack.force(device, "up")
    page, errors = _open(browser, stack.web_url + "/")
    try:
        tiles = page.locator(TILES)
        expect(page.locator(f"{TILES}[data-status='up']")).to_have_count(
            len(inventory), timeout=20_000
        )
        page.locator("[data-testid='tiles']").evaluate(WATCH_TILES)
        before = {row[0]: row[1:] for row in tiles.evaluate_all(SNAPSHOT)}
        leaf = stack.leaf()  # every ancestor is pinned up: only the leaf goes down
        items = stack.api("/api/v1/devices")["items"]
        device_id = str(next(item["id"] for item in items if item["name"] == leaf["name"]))
        stack.force(leaf, "down")
        tile = page.locator(f"[data-testid='tiles'] [data-device-id='{device_id}']")
        expect(tile).to_have_attribute("data-status", "down", timeout=20_000)
        after = {row[0]: row[1:] for row in tiles.evaluate_all(SNAPSHOT)}
        inserted = set(page.evaluate("window.__inserted"))
        # Its tile moved (to the problems section, first), as the same node.
        assert device_id in inserted
        assert tile.evaluate("t => t.__seen === true")
        assert tile.evaluate(
            "t => t.closest('.tiles__section') === t.closest('[data-testid=tiles]').firstChild"
        )
        # No other tile was rebuilt, and none moved unless its own status changed meanwhile
        # (the demo network's flapping flags can still settle after the pinning).
        assert tiles.evaluate_all("ts => ts.every(t => t.__seen === true)")
        changed_meanwhile = {key for key in after if after[key] != before.get(key)}
        assert inserted <= changed_meanwhile | {device_id}, (inserted, changed_meanwhile)
        assert len(inserted) < len(inventory)
    finally:
        for device in inventory:
            stack.force(device, "auto")
        page.context.close()
    assert errors == []


def test_group_rows_show_availability_against_their_slo(browser: Any, stack: Stack) -> None:
    # The window ends where the current minute starts: wait for a whole minute of checks.
    def measured() -> dict[str, Any] | None:
        answer: dict[str, Any] = stack.api(GROUPS_API)
        return answer if all(group["checks"] for group in answer["groups"]) else None

    expected = wait_for(measured, timeout=100, what="a whole minute of checks in every group")
    page, errors = _open(browser, stack.web_url + "/?view=groups")
    sites = [group for group in expected["groups"] if group["kind"] is None]
    rows = page.locator("[data-testid='group-row']")
    expect(rows).to_have_count(len(sites))
    expect(page.locator("[data-testid='groups-table'] thead")).to_contain_text("SLO (30d)")
    for group in sites:
        row = page.locator(f"[data-testid='group-row'][data-site='{group['site']}']")
        cell = row.locator("[data-testid='group-slo']")
        # The page asks once a minute; the figures move as the demo network flaps, so
        # compare what cannot race: the target, and that a measured group says met/missed.
        expect(cell).to_contain_text(re.compile(r"of \d+(\.\d+)? %"), timeout=15_000)
        target = round(group["target"], 3)
        expect(cell).to_contain_text(f"of {target:g} %")
        assert cell.get_attribute("data-slo") in {"met", "missed"}
    # Kinds within a site have their own roll-up too.
    kind_cells = page.locator("[data-testid='groups-table'] tr.group__kind td.slo")
    expect(kind_cells).to_have_count(len(expected["groups"]) - len(sites))
    page.context.close()
    assert errors == []


def test_virtual_table_sorts_scrolls_and_keeps_few_rows(browser: Any, bignet: BigNet) -> None:
    page, errors = _open(browser, bignet.web_url + "/?view=table")
    rows = page.locator(ROWS)
    expect(rows.first).to_be_visible()
    expect(page.locator("[data-testid='shown-count']")).to_have_text("2000")
    assert page.locator("[data-testid='device-table']").get_attribute("aria-rowcount") == "2001"
    assert rows.count() < 150  # only the rows in view, and a margin
    header = page.locator("th[data-col='name']")
    header.locator("button").click()
    expect(header).to_have_attribute("aria-sort", "ascending")
    names = sorted(item["name"] for item in bignet_items(page, bignet))
    expect(rows.first.locator("td.name > span").first).to_have_text(names[0])
    # Scrolled to the end: the last rows are drawn, the first are gone.
    page.locator("[data-testid='table-wrap']").evaluate("w => { w.scrollTop = w.scrollHeight; }")
    expect(rows.last.locator("td.name > span").first).to_have_text(names[-1])
    first_name = re.compile(f"^{re.escape(names[0])}$")
    expect(page.locator(f"{ROWS} td.name > span", has_text=first_name)).to_have_count(0)
    assert rows.count() < 150
    header.locator("button").click()
    expect(header).to_have_attribute("aria-sort", "descending")
    page.locator("[data-testid='table-wrap']").evaluate("w => { w.scrollTop = 0; }")
    expect(rows.first.locator("td.name > span").first).to_have_text(names[-1])
    page.context.close()
    assert errors == []


def test_virtual_table_keyboard_goes_past_the_drawn_rows(browser: Any, bignet: BigNet) -> None:
    page, errors = _open(browser, bignet.web_url + "/?view=table")
    page.locator("th[data-col='name'] button").click()
    names = sorted(item["name"] for item in bignet_items(page, bignet))
    first = page.locator(ROWS).first
    expect(first.locator("td.name > span").first).to_have_text(names[0])
    first.focus()
    steps = 90  # well past the rows drawn at first (a screenful and a margin)
    for _ in range(steps):
        page.keyboard.press("j")
    focused = page.locator(f"{ROWS}:focus")
    expect(focused).to_have_attribute("aria-rowindex", str(steps + 2))
    expect(focused.locator("td.name > span").first).to_have_text(names[steps])
    page.keyboard.press("k")
    expect(page.locator(f"{ROWS}:focus td.name > span").first).to_have_text(names[steps - 1])
    page.keyboard.press("Enter")
    expect(page.locator("[data-testid='drawer-title']")).to_have_text(names[steps - 1])
    expect(page).to_have_url(re.compile(r"[?&]device=\d+"))
    page.context.close()
    assert errors == []


def test_virtual_table_deep_link_scrolls_to_the_device(browser: Any, bignet: BigNet) -> None:
    items = bignet_items(None, bignet)
    target = items[-1]  # last in the default order: far below the first screenful
    page, errors = _open(browser, f"{bignet.web_url}/?view=table&device={target['id']}")
    expect(page.locator("[data-testid='drawer-title']")).to_have_text(target["name"])
    row = page.locator(f"{ROWS}[data-device-id='{target['id']}']")
    expect(row).to_be_visible()
    assert page.locator(ROWS).count() < 150
    page.context.close()
    assert errors == []


def bignet_items(page: Any, bignet: BigNet) -> list[dict[str, Any]]:
    """Every device, in the server's order (problems first, then by name)."""
    from tests.stack import http_json

    return list(http_json(f"{bignet.web_url}/api/v1/devices?limit=10000")["items"])
