"""Screenshots of the dashboard for the README, taken from the real product.

    .venv/bin/python -m tests.browser.take_screenshots [--out docs/img]

Starts ``resmon run`` with a simulated network, takes a distribution switch down (so the
problems, the unreachable subtree and the topology have something to show), and saves
PNGs of the main views, the drawer, the dark theme and a phone.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.chromium import CHROMIUM, CHROMIUM_ARGS
from tests.stack import Stack, start_stack, wait_for

ROOT = Path(__file__).resolve().parents[2]


def switch_with_children(stack: Stack) -> dict[str, Any]:
    inventory = stack.sim("/inventory")
    parents = {entry["parent_id"] for entry in inventory}
    return next(e for e in inventory if e["id"] in parents and e["parent_id"] is not None)


def shoot(stack: Stack, out: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    # SLO windows end where the current minute starts: the group SLO column has figures
    # once a whole minute of checks (before the outage below) is behind us.
    wait_for(
        lambda: all(group["checks"] > 0 for group in stack.api("/api/v1/summary/groups")["groups"]),
        timeout=90,
        interval=2,
        what="a whole minute of checks for the group SLO column",
    )
    switch = switch_with_children(stack)
    stack.force(switch, "down")
    wait_for(
        lambda: any(
            item["status"] == "unreachable" for item in stack.api("/api/v1/devices")["items"]
        ),
        timeout=30,
        what="the switch's subtree to turn unreachable",
    )
    saved = []
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)

        def page_for(scheme: Any, **options: Any) -> Any:
            options.setdefault("viewport", {"width": 1440, "height": 900})
            context = browser.new_context(color_scheme=scheme, **options)
            page = context.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            return page

        def save(page: Any, name: str, full: bool = False) -> None:
            page.wait_for_timeout(400)
            path = out / f"{name}.png"
            page.screenshot(path=str(path), full_page=full)
            saved.append(path)

        for view in ("tiles", "table", "groups", "topology"):
            page = page_for("light")
            page.goto(f"{stack.web_url}/?view={view}")
            page.wait_for_selector("body[data-loaded='true']", timeout=30_000)
            save(page, f"dashboard-{view}")
            page.context.close()

        page = page_for("light")
        device_id = stack.api(f"/api/v1/devices?q={switch['name']}")["items"][0]["id"]
        page.goto(f"{stack.web_url}/?device={device_id}")
        try:
            page.wait_for_selector("[data-testid='drawer-events']", timeout=30_000)
        except Exception:
            print("page errors:", *errors, sep="\n  ", file=sys.stderr)
            page.screenshot(path=str(out / "failed.png"))
            raise
        save(page, "dashboard-drawer")
        page.context.close()

        page = page_for("dark")
        page.goto(f"{stack.web_url}/?view=topology")
        page.wait_for_selector("body[data-loaded='true']", timeout=30_000)
        save(page, "dashboard-dark")
        page.context.close()

        page = page_for(
            "light",
            viewport={"width": 390, "height": 844},
            device_scale_factor=2,
            is_mobile=True,
            has_touch=True,
        )
        page.goto(f"{stack.web_url}/")
        page.wait_for_selector("body[data-loaded='true']", timeout=30_000)
        save(page, "dashboard-phone")
        page.context.close()
        browser.close()
    stack.force(switch, "auto")
    if errors:
        print("page errors:", *errors, sep="\n  ", file=sys.stderr)
    return saved


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument("--devices", type=int, default=40)
    options = parser.parse_args()
    options.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="resmon-shots-") as tmp:
        stack = start_stack(Path(tmp), devices=options.devices, interval=1.0)
        try:
            time.sleep(3)  # a few checks, so charts and timelines have points
            for path in shoot(stack, options.out):
                print(path)
        finally:
            stack.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
