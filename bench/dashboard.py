"""The dashboard at 10,000 devices in headless Chromium: first render, search, live update.

    .venv/bin/python bench/dashboard.py            # 10,000 devices
    .venv/bin/python bench/dashboard.py --small    # 1,000 devices (make bench)

Prints one JSON line: {"bench": "dashboard", "devices", "first_render_ms", "search_ms",
"search_longest_task_ms", "update_ms", "update_longest_task_ms", "load1"}.
first_render_ms is navigation start to the first full render (the page's
``resmon:first-render`` mark); search_ms is the worst of several keystrokes, measured by
the page's own ``resmon:filter`` measure (filter + render, synchronous), and
search_longest_task_ms the longest task while typing them, the frame the browser renders
after each keystroke included; update_ms is the time to apply a poll that changed 100
devices' status, spread over the grid (style and layout included), and
update_longest_task_ms the longest task while it applied and in the 1.5 s after. Long
tasks come from a PerformanceObserver (``longtask``: over 50 ms; none reads as 0).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.browser.bignet import start_bignet  # noqa: E402
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

# Resets window.__longest to 0, then keeps the longest task the page runs from now on.
LONGEST_TASK_OBSERVER = (
    "window.__longest = 0; window.__observer?.disconnect();"
    " window.__observer = new PerformanceObserver((list) => { for (const e of"
    " list.getEntries()) window.__longest = Math.max(window.__longest, e.duration); });"
    " window.__observer.observe({type: 'longtask'})"
)
SEARCHES = ["s", "si", "site-0", "site-07-pc", "10.3.", "zzz-no-match", ""]


def measure(url: str, count: int, verbose: bool = False) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        # wait_for_function evaluates strings in the page, which the strict CSP forbids.
        page = browser.new_page(viewport={"width": 1440, "height": 900}, bypass_csp=True)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{url}/?bench=1")
        page.wait_for_selector("body[data-loaded='true']", timeout=60_000)
        first = page.evaluate("performance.getEntriesByName('resmon:first-render')[0].startTime")
        marks = page.evaluate(
            "Object.fromEntries(performance.getEntriesByType('mark')"
            ".map(m => [m.name, m.startTime]))"
        )
        if verbose:
            print(f"marks: {marks}", file=sys.stderr)
        resources = page.evaluate(
            "performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource'))"
            ".map(r => [r.name.split('/').slice(-2).join('/'), Math.round(r.startTime),"
            " Math.round(r.responseStart), Math.round(r.responseEnd)])"
        )
        for resource in resources if verbose else []:
            print(f"  {resource}", file=sys.stderr)
        # Long tasks (over 50 ms) while searching: the frame the browser renders after a
        # keystroke (style, layout, paint of the new grid) is not in resmon:filter.
        page.evaluate(LONGEST_TASK_OBSERVER)
        worst_search = 0.0
        for text in SEARCHES:
            page.evaluate("performance.clearMeasures('resmon:filter')")
            page.fill("[data-testid='search']", text)
            page.wait_for_function(
                "performance.getEntriesByName('resmon:filter').length > 0", timeout=10_000
            )
            took = page.evaluate("performance.getEntriesByName('resmon:filter')[0].duration")
            worst_search = max(worst_search, took)
            page.wait_for_timeout(300)  # let the next frame render before the next key
            if verbose:
                print(f"search {text!r}: {took:.1f} ms", file=sys.stderr)
        # A 100-device status update, applied in a task of its own as a poll's answer
        # is: its duration (style and layout included) and the longest task the page
        # ran meanwhile (long tasks are those over 50 ms; none reads as 0).
        search_longest = page.evaluate("window.__longest")
        page.evaluate(LONGEST_TASK_OBSERVER)
        page.evaluate("window.__resmonBench.later(100)")
        page.wait_for_timeout(1500)
        update = page.evaluate("window.__resmonBench.last")
        longest = page.evaluate("window.__longest")
        nodes = page.evaluate(
            "document.querySelectorAll('[data-testid=tiles] [data-device-id]').length"
        )
        if errors or nodes != count:
            raise SystemExit(f"page errors {errors[:3]} or {nodes} tiles for {count} devices")
        browser.close()
    return {
        "first_render_ms": first,
        "search_ms": worst_search,
        "search_longest_task_ms": search_longest,
        "update_ms": update,
        "update_longest_task_ms": longest,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="1,000 devices, for make bench")
    parser.add_argument("--devices", type=int, default=None)
    parser.add_argument(
        "--verbose", action="store_true", help="marks, resource timings, each search (stderr)"
    )
    options = parser.parse_args()
    count = options.devices or (1000 if options.small else 10000)
    with tempfile.TemporaryDirectory(prefix="resmon-bench-") as tmp:
        net = start_bignet(Path(tmp), count)
        try:
            figures = measure(net.web_url, count, options.verbose)
        finally:
            net.stop()
    line: dict[str, object] = {"bench": "dashboard", "devices": count}
    line.update({key: round(value, 1) for key, value in figures.items()})
    line["load1"] = float(Path("/proc/loadavg").read_text().split()[0])
    print(json.dumps(line))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
