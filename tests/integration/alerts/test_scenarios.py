"""The whole product with its alert worker (resmon run), a real webhook receiver and the
simulator: one page per real problem, and its resolution."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.chromium import browser  # noqa: F401 (the Chromium fixture)
from tests.integration.alerts.receiver import Receiver
from tests.stack import Stack, start_stack, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

NOTIFY_DELAY_S = 3


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with pytest.MonkeyPatch.context() as env:
        # stack_env() copies the environment: these reach the alerts child of `resmon run`.
        env.setenv("RESMON_ALERT_NOTIFY_DELAY_S", str(NOTIFY_DELAY_S))
        env.setenv("RESMON_ALERT_RESOLVE_HOLD_S", "2")
        env.setenv("RESMON_ALERT_DEGRADED_AFTER_S", "3600")
        env.setenv("RESMON_ALERT_BURN_EVERY_S", "0")
        stack = start_stack(tmp_path_factory.mktemp("alerts"), devices=12, interval=1.0)
    yield stack
    stack.stop()


def descendants(inventory: list[dict], device_id: int) -> list[dict]:
    found, frontier = [], [device_id]
    while frontier:
        parent = frontier.pop()
        children = [d for d in inventory if d["parent_id"] == parent]
        found += children
        frontier += [c["id"] for c in children]
    return found


def statuses(stack: Stack) -> dict[str, str]:
    return {d["name"]: d["status"] for d in stack.api("/api/v1/devices?limit=1000")["items"]}


def settle(stack: Stack, inventory: list[dict]) -> None:
    """Every simulated device pinned up, answering, and no incident left open."""
    for device in inventory:
        stack.force(device, "up")
    # Degraded is fine here: it opens an incident only after an hour in this stack.
    wait_for(
        lambda: set(statuses(stack).values()) <= {"up", "degraded"},
        timeout=60,
        what="every device answering",
    )
    # Startup blips resolve (the hold is 2 s) before the channel exists.
    wait_for(
        lambda: stack.api("/api/v1/incidents?state=active")["count"] == 0,
        timeout=30,
        what="no active incidents",
    )


def only_channel(stack: Stack, name: str, receiver: Receiver) -> None:
    """The receiver's webhook as the one notification channel."""
    created = stack.resmon(
        "shell",
        "-c",
        "from resourcemonitor.alerts.models import Channel; "
        "Channel.objects.all().delete(); "
        f"Channel.objects.create(name={name!r}, target='{receiver.url()}')",
    )
    assert created.returncode == 0, created.stderr


def test_switch_down_one_page_children_silent_then_one_resolution(stack: Stack) -> None:
    inventory = stack.sim("/inventory")
    # A switch with a parent (distribution, not the core) and devices behind it.
    switch = next(
        d
        for d in inventory
        if d["parent_id"] is not None and len(descendants(inventory, d["id"])) >= 2
    )
    behind = descendants(inventory, switch["id"])
    settle(stack, inventory)
    receiver = Receiver()
    try:
        only_channel(stack, "hook", receiver)

        stack.force(switch, "down")
        wait_for(lambda: receiver.posts, timeout=30, what="the page for the switch")
        wait_for(
            lambda: all(statuses(stack)[d["name"]] == "unreachable" for d in behind),
            timeout=15,
            what="the devices behind it unreachable",
        )
        time.sleep(NOTIFY_DELAY_S + 2)  # any page for a child would have come by now
        assert receiver.titles() == [
            f"[PROBLEM] {switch['name']} is down; {len(behind)} device(s) behind it are unreachable"
        ]

        stack.force(switch, "up")
        wait_for(lambda: len(receiver.posts) >= 2, timeout=30, what="the resolution")
        time.sleep(2)
        assert receiver.titles()[1:] == [
            f"[RESOLVED] {switch['name']} is down; {len(behind)} device(s) behind it are unreachable"
        ]
        incidents = stack.api("/api/v1/incidents")["items"]
        paged = [i for i in incidents if i["notified_at"]]
        assert [i["device_name"] for i in paged] == [switch["name"]]
        assert paged[0]["notifications_sent"] == 2
        assert paged[0]["affected_count"] == len(behind)
    finally:
        receiver.close()


def test_a_device_flapping_twenty_times_pages_at_most_twice_then_resolves(stack: Stack) -> None:
    inventory = stack.sim("/inventory")
    parents = {d["parent_id"] for d in inventory}
    leaf = next(d for d in inventory if d["id"] not in parents)
    settle(stack, inventory)
    receiver = Receiver()
    try:
        only_channel(stack, "flaps", receiver)

        def device() -> dict[str, Any]:
            return next(
                d
                for d in stack.api(f"/api/v1/devices?q={leaf['name']}")["items"]
                if d["name"] == leaf["name"]
            )

        flagged = False
        for _ in range(10):  # 20 state changes, each seen by the collector
            stack.force(leaf, "down")
            wait_for(lambda: device()["status"] == "down", timeout=20, what="down")
            stack.force(leaf, "up")
            wait_for(lambda: device()["status"] == "up", timeout=20, what="up again")
            flagged = flagged or device()["flapping"]
        assert flagged, "20 changes in a minute or two should raise the flapping flag"
        time.sleep(NOTIFY_DELAY_S + 2)
        during = receiver.titles()
        assert 1 <= len(during) <= 2, during
        assert all(leaf["name"] in title for title in during), during

        # Held up, the flag clears and the incident resolves: the all-clear goes out once.
        wait_for(
            lambda: any(t.startswith("[RESOLVED]") for t in receiver.titles()),
            timeout=90,
            what="the resolution after the flapping stopped",
        )
        time.sleep(2)
        titles = receiver.titles()
        assert [t for t in titles if t.startswith("[RESOLVED]")] == [
            f"[RESOLVED] {leaf['name']} is down"
        ], titles
        assert len(titles) == len(during) + 1, titles
    finally:
        stack.release(inventory)
        receiver.close()


HOSTILE = '<img src=x onerror="window.__xss=1">sw'
SETUP = f"""
from django.contrib.auth.models import User
from django.utils import timezone
from resourcemonitor.alerts.services import open_incident
from resourcemonitor.inventory.models import Device
User.objects.create_superuser("root", "root@example.org", "root-password-1")
device = Device.objects.order_by("id").last()
device.name = {HOSTILE!r}
device.save()
print(open_incident(device=device, problem="slo_burn", message="test", now=timezone.now()).pk)
"""


@pytest.mark.browser
def test_incidents_page_lists_acknowledges_and_channels_form(
    stack: Stack,
    browser: Any,  # noqa: F811
) -> None:
    result = stack.resmon("shell", "-c", SETUP)
    assert result.returncode == 0, result.stderr
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on(
        "console",
        lambda msg: errors.append(f"{msg.text} {msg.location}") if msg.type == "error" else None,
    )
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "response",
        lambda r: errors.append(f"{r.status} {r.url}") if r.status == 404 else None,
    )
    page.on("dialog", lambda dialog: dialog.accept("looking into it"))
    try:
        page.goto(stack.web_url + "/login/?next=/incidents/")
        page.fill("input[name='username']", "root")
        page.fill("input[name='password']", "root-password-1")
        page.click("input[type='submit']")
        page.wait_for_url("**/incidents/", timeout=10_000)
        row = page.locator("[data-testid=incidents-table] tbody tr", has_text="burning")
        row.wait_for(timeout=15_000)
        assert f"{HOSTILE} is burning its error budget" in row.inner_text()
        assert row.locator("img").count() == 0
        row.locator("[data-testid=ack]").click()
        page.locator("tbody tr", has_text="acknowledged by root").wait_for(timeout=10_000)
        row.get_by_text("Details").click()
        detail = page.locator("[data-testid=incident-detail]")
        detail.get_by_text("looking into it").wait_for(timeout=10_000)
        assert page.evaluate("window.__xss") is None

        page.goto(stack.web_url + "/channels/")
        page.fill("input[name='name']", "broken")
        page.fill("input[name='target']", "notaurl")
        page.click("[data-testid=channel-form] button[type=submit]")
        error = page.locator("[data-testid=error-target]")
        error.wait_for(timeout=10_000)
        assert "apprise" in error.inner_text()
        # Chromium asks for /favicon.ico on its own after a POST's answer; not a page error.
        assert [e for e in errors if "422" not in e and "favicon.ico" not in e] == []
    finally:
        context.close()
