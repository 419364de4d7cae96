"""Headless Debian Chromium driven by Playwright (never a downloaded browser)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("RESMON_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


# Module scope, on purpose: Playwright's sync API keeps an asyncio loop running in the main
# thread for as long as it is open, and every asyncio.run() in a later test would then
# fail with "Cannot run the event loop while another loop is running". Opened per module
# and closed at its end, it never overlaps the collector's and probes' asyncio tests.
@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: `make browser-deps` should have installed it")
        pytest.skip(f"{CHROMIUM} is not installed (make browser-deps)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def open_page(
    browser: Any, url: str, *, timeout_ms: float = 30_000, **options: Any
) -> tuple[Any, list[str]]:
    """A new context and page at ``url``, loaded (``body[data-loaded]``), and the list its
    page errors and console errors are collected into (tests assert it stays empty)."""
    options.setdefault("viewport", {"width": 1440, "height": 900})
    context = browser.new_context(**options)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.goto(url)
    page.wait_for_selector("body[data-loaded='true']", timeout=timeout_ms)
    return page, errors
