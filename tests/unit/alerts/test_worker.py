"""The alert worker's steps, driven event by event with a clock (no waiting)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from resourcemonitor.alerts.models import Delivery, Incident, Notification, NotificationKind
from resourcemonitor.inventory.models import Device, MaintenanceWindow
from resourcemonitor.monitoring.models import Event
from resourcemonitor.monitoring.status import Status

from .conftest import all_up, change

pytestmark = pytest.mark.django_db


def run(worker, clock, seconds: float = 0.0) -> None:
    clock.advance(seconds)
    worker.tick()


def test_parent_down_one_incident_naming_descendants_children_silent(
    network, hook, receiver, worker, clock
):
    n = network
    all_up(n.core, n.dist, n.access, n.phone, n.pc, n.server, clock=clock)
    # The distribution switch's child failed a moment before the switch itself did.
    change(n.access, Status.DOWN, clock)
    clock.advance(2)
    change(n.dist, Status.DOWN, clock)
    change(n.access, Status.UNREACHABLE, clock)
    change(n.phone, Status.UNREACHABLE, clock)
    change(n.pc, Status.UNREACHABLE, clock)
    run(worker, clock)
    assert receiver.posts == []  # waiting out the notify delay
    run(worker, clock, 31)

    assert receiver.titles() == [
        "[PROBLEM] lon-dist-1 is down; 3 device(s) behind it are unreachable"
    ]
    dist_incident = Incident.objects.get(device=n.dist)
    assert dist_incident.affected_count == 3
    access_incident = Incident.objects.get(device=n.access)
    assert access_incident.resolved_at is not None and access_incident.notified_at is None
    assert "unreachable" in access_incident.suppressed_reason
    assert not Incident.objects.filter(device__in=[n.phone, n.pc]).exists()
    assert Event.objects.filter(processed_at=None).count() == 0

    # Recovery: resolved once it held, one resolution to the same channel.
    change(n.dist, Status.UP, clock)
    run(worker, clock, 30)
    assert len(receiver.posts) == 1
    run(worker, clock, 31)
    assert receiver.titles()[1:] == [
        "[RESOLVED] lon-dist-1 is down; 3 device(s) behind it are unreachable"
    ]
    run(worker, clock, 600)
    assert len(receiver.posts) == 2


def test_child_down_while_parent_down_is_suppressed(network, hook, receiver, worker, clock):
    n = network
    all_up(n.core, n.dist, n.access, n.phone, clock=clock)
    change(n.access, Status.DOWN, clock)
    change(n.phone, Status.DOWN, clock)  # its parent is down: not its own problem
    run(worker, clock, 31)
    assert receiver.titles() == [
        "[PROBLEM] lon-acc-1 is down; 2 device(s) behind it are unreachable"
    ]
    assert "parent lon-acc-1 is down" in Incident.objects.get(device=n.phone).suppressed_reason


def test_flapping_twenty_times_in_ten_minutes_at_most_two_notifications(
    network, hook, receiver, worker, clock
):
    n = network
    all_up(n.server, clock=clock)
    for i in range(20):
        # The collector raises its flag after a few changes.
        change(n.server, Status.DOWN, clock, flapping=i >= 3)
        run(worker, clock, 15)
        change(n.server, Status.UP, clock, flapping=i >= 3)
        run(worker, clock, 15)
    assert clock.now.minute == 10
    assert len(receiver.posts) <= 2
    assert receiver.titles() == ["[PROBLEM] par-srv-1 is down", "[FLAPPING] par-srv-1 is down"]
    incident = Incident.objects.get()
    assert incident.flap_count == 19
    # Stable again (the collector clears the flag): one resolution.
    change(n.server, Status.UP, clock, flapping=False)
    Event.objects.all().update(processed_at=clock.now)
    run(worker, clock, 61)
    assert receiver.titles()[-1] == "[RESOLVED] par-srv-1 is down"
    assert len(receiver.posts) == 3


def test_flapping_with_every_down_spell_shorter_than_the_delay_still_pages_once(
    network, hook, receiver, worker, clock
):
    # Down 5 s, up 10 s, over and over: each spell is shorter than the 30 s notify delay,
    # so no look at the incident ever finds the device down. It is still one real problem.
    n = network
    all_up(n.server, clock=clock)
    for i in range(20):
        change(n.server, Status.DOWN, clock, flapping=i >= 3)
        run(worker, clock, 5)
        change(n.server, Status.UP, clock, flapping=i >= 3)
        run(worker, clock, 10)
    assert receiver.titles() == ["[FLAPPING] par-srv-1 is down"]
    assert Incident.objects.count() == 1


def test_maintenance_suppresses_notification(network, hook, receiver, worker, clock):
    n = network
    window = MaintenanceWindow.objects.create(
        name="firmware", starts_at=clock.now, ends_at=clock.now.replace(hour=11)
    )
    window.sites.add(n.paris)
    change(n.server, Status.DOWN, clock)
    run(worker, clock, 31)
    run(worker, clock, 31)
    change(n.server, Status.UP, clock)
    run(worker, clock, 61)
    assert receiver.posts == []
    incident = Incident.objects.get()
    assert incident.resolved_at is not None and incident.notified_at is None
    assert incident.updates.filter(kind="maintenance").count() == 1


def test_resolution_sent_even_when_it_resolves_during_maintenance(
    network, hook, receiver, worker, clock
):
    n = network
    change(n.server, Status.DOWN, clock)
    run(worker, clock, 31)
    assert receiver.titles() == ["[PROBLEM] par-srv-1 is down"]
    MaintenanceWindow.objects.create(
        name="fix it", starts_at=clock.now, ends_at=clock.now.replace(hour=12), kinds=["server"]
    )
    change(n.server, Status.UP, clock)
    run(worker, clock, 61)
    assert receiver.titles() == ["[PROBLEM] par-srv-1 is down", "[RESOLVED] par-srv-1 is down"]


def test_problem_outlasting_maintenance_is_notified_after_it(
    network, hook, receiver, worker, clock
):
    n = network
    window = MaintenanceWindow.objects.create(
        name="short", starts_at=clock.now, ends_at=clock.now.replace(minute=5)
    )
    window.devices.add(n.server)
    change(n.server, Status.DOWN, clock)
    run(worker, clock, 31)
    assert receiver.posts == []
    for _ in range(30):
        run(worker, clock, 20)
    assert receiver.titles() == ["[PROBLEM] par-srv-1 is down"]


def test_degraded_opens_only_after_it_lasted(network, hook, receiver, worker, clock):
    n = network
    all_up(n.server, clock=clock)
    change(n.server, Status.DEGRADED, clock)
    run(worker, clock, 200)
    assert not Incident.objects.exists()
    change(n.server, Status.UP, clock)  # a short slow spell: nothing at all
    change(n.server, Status.DEGRADED, clock)
    run(worker, clock, 200)
    assert not Incident.objects.exists()
    run(worker, clock, 101)
    run(worker, clock, 31)
    assert receiver.titles() == ["[WARNING] par-srv-1 is degraded".replace("WARNING", "PROBLEM")]
    assert Incident.objects.get().severity == "warning"


def test_renotify_long_unacknowledged_incidents(
    network, hook, receiver, worker, clock, settings, alice
):
    from resourcemonitor.alerts.services import incident_acknowledge

    settings.RESMON_ALERT_RENOTIFY_S = 3600.0
    change(network.server, Status.DOWN, clock)
    run(worker, clock, 31)
    run(worker, clock, 1800)
    assert len(receiver.posts) == 1
    run(worker, clock, 1801)
    assert receiver.titles()[-1] == "[STILL OPEN] par-srv-1 is down"
    incident_acknowledge(incident=Incident.objects.get(), user=alice, note="on it")
    run(worker, clock, 7200)
    assert len(receiver.posts) == 2


def test_failing_receiver_three_times_then_one_delivery(network, receiver, worker, clock, db):
    from resourcemonitor.alerts.models import Channel

    receiver.fail_first = 3
    Channel.objects.create(name="flaky", target=receiver.url("/flaky"))
    change(network.server, Status.DOWN, clock)
    run(worker, clock, 31)
    delays = []
    for _ in range(10):
        row = Notification.objects.get()
        if row.status == Delivery.SENT:
            break
        delays.append((row.next_attempt_at - clock.now).total_seconds())
        clock.now = row.next_attempt_at
        worker.tick()
    row = Notification.objects.get()
    assert row.status == Delivery.SENT and row.attempts == 4
    assert receiver.attempts == 4 and len(receiver.posts) == 1
    assert delays == [10.0, 20.0, 40.0]
    assert row.kind == NotificationKind.PROBLEM


def test_gives_up_after_max_attempts(network, receiver, worker, clock, settings):
    from resourcemonitor.alerts.models import Channel

    settings.RESMON_ALERT_MAX_ATTEMPTS = 2
    receiver.fail_first = 100
    Channel.objects.create(name="dead", target=receiver.url())
    change(network.server, Status.DOWN, clock)
    run(worker, clock, 31)
    run(worker, clock, 3600)
    run(worker, clock, 3600)
    row = Notification.objects.get()
    assert row.status == Delivery.FAILED and row.attempts == 2 and row.last_error


def test_routing_by_severity_site_kind_tag(network, receiver, worker, clock):
    from resourcemonitor.alerts.models import Channel
    from resourcemonitor.inventory.models import Tag

    n = network
    Channel.objects.create(name="warnings", target=receiver.url("/warn"), severities=["warning"])
    paris = Channel.objects.create(name="paris", target=receiver.url("/paris"))
    paris.sites.add(n.paris)
    Channel.objects.create(name="phones", target=receiver.url("/phones"), device_kinds=["phone"])
    voice = Channel.objects.create(name="voice", target=receiver.url("/voice"))
    voice.tags.add(Tag.objects.get(name="voice"))
    all_up(n.core, n.dist, n.access, clock=clock)
    change(n.server, Status.DOWN, clock)
    change(n.phone, Status.DOWN, clock)
    run(worker, clock, 31)
    paths = sorted((p["path"], p["title"]) for p in receiver.posts)
    assert paths == [
        ("/paris", "[PROBLEM] par-srv-1 is down"),
        ("/phones", "[PROBLEM] lon-phone-1 is down"),
        ("/voice", "[PROBLEM] lon-phone-1 is down"),
    ]


def test_email_channel_uses_django_mail(network, worker, clock, mailoutbox):
    from resourcemonitor.alerts.models import Channel

    Channel.objects.create(name="noc", kind="email", target="noc@example.org, ops@example.org")
    change(network.server, Status.DOWN, clock)
    run(worker, clock, 31)
    assert [m.subject for m in mailoutbox] == ["[PROBLEM] par-srv-1 is down"]
    assert mailoutbox[0].to == ["noc@example.org", "ops@example.org"]
    assert Notification.objects.get().status == Delivery.SENT


def test_resolution_goes_only_where_the_problem_went(network, hook, receiver, worker, clock):
    from resourcemonitor.alerts.models import Channel

    change(network.server, Status.DOWN, clock)
    run(worker, clock, 31)
    Channel.objects.create(name="late", target=receiver.url("/late"))
    change(network.server, Status.UP, clock)
    run(worker, clock, 61)
    assert [(p["path"], p["title"]) for p in receiver.posts] == [
        ("/hook", "[PROBLEM] par-srv-1 is down"),
        ("/hook", "[RESOLVED] par-srv-1 is down"),
    ]


def test_two_workers_never_handle_an_event_twice(network, hook, receiver, worker, clock):
    from resourcemonitor.alerts.management.commands.alerts import Command

    other = Command()
    other.instance = "other"
    other._now = lambda: clock.now  # type: ignore[method-assign]
    change(network.server, Status.DOWN, clock)
    change(network.pc, Status.DOWN, clock)
    clock.advance(31)
    for _ in range(5):
        worker.tick(max_steps=1)
        other.tick(max_steps=1)
    assert Incident.objects.count() == 2
    assert sorted(receiver.titles()) == [
        "[PROBLEM] lon-pc-1 is down",
        "[PROBLEM] par-srv-1 is down",
    ]


H1, M5, H6, M30, D3 = (
    timedelta(hours=1),
    timedelta(minutes=5),
    timedelta(hours=6),
    timedelta(minutes=30),
    timedelta(days=3),
)


def rates(**values: float | None) -> dict:
    names = {"h1": H1, "m5": M5, "h6": H6, "m30": M30, "d3": D3}
    return {names[k]: v for k, v in values.items()}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (rates(h1=15, m5=15), "critical"),
        (rates(h1=15, m5=2), None),  # the short window says it stopped
        (rates(h1=2, m5=100), None),  # a blip: the long window says it does not matter
        (rates(h6=7, m30=7), "critical"),
        (rates(d3=1.5, h6=1.2), "warning"),
        (rates(d3=1.5, h6=None), None),  # not measured is not burning
        (rates(), None),
    ],
)
def test_burn_rule(given, expected):
    from resourcemonitor.alerts.services import burn_severity

    verdict = burn_severity(given)
    assert (verdict[0] if verdict else None) == expected


def test_burn_rate_incident_opens_escalates_and_resolves(network, hook, receiver, worker, clock):
    from resourcemonitor.alerts.services import apply_burn_rates

    server = network.server.pk
    apply_burn_rates(rates={server: rates(d3=2, h6=2)}, now=clock.now)
    incident = Incident.objects.get(problem="slo_burn")
    assert incident.severity == "warning" and "burning" in incident.title
    run(worker, clock, 31)
    apply_burn_rates(rates={server: rates(d3=2, h6=8, m30=8)}, now=clock.now)
    run(worker, clock, 1)
    assert receiver.titles() == [
        "[PROBLEM] par-srv-1 is burning its error budget",
        "[ESCALATED] par-srv-1 is burning its error budget",
    ]
    apply_burn_rates(rates={server: rates(d3=0.5, h6=0.1)}, now=clock.now)
    run(worker, clock, 61)
    assert receiver.titles()[-1] == "[RESOLVED] par-srv-1 is burning its error budget"


def test_no_burn_page_for_a_device_already_down(network, hook, receiver, worker, clock):
    from resourcemonitor.alerts.services import apply_burn_rates

    change(network.server, Status.DOWN, clock)
    run(worker, clock, 31)
    apply_burn_rates(rates={network.server.pk: rates(h1=50, m5=50)}, now=clock.now)
    assert not Incident.objects.filter(problem="slo_burn").exists()


def test_burn_step_reads_real_rollups(network, worker, clock, settings):
    """Through monitoring.slo.burn_rates on real Rollup rows: 1 h of 50 % failures."""
    from resourcemonitor.monitoring.models import Rollup

    now = clock.now
    start = int(now.timestamp()) // 60 * 60 - 3600
    Rollup.objects.bulk_create(
        Rollup(device=network.server, resolution=60, bucket=start + 60 * i, count=6, ok_count=3)
        for i in range(60)
    )
    assert worker.evaluate_burn_rates(force=True) == 1
    incident = Incident.objects.get(problem="slo_burn")
    assert incident.severity == "critical" and incident.device == network.server


def test_blip_shorter_than_the_notify_delay_pages_nobody(network, hook, receiver, worker, clock):
    change(network.server, Status.DOWN, clock)
    run(worker, clock, 10)
    change(network.server, Status.UP, clock)
    for _ in range(10):
        run(worker, clock, 15)
    assert receiver.posts == []
    incident = Incident.objects.get()
    assert incident.resolved_at is not None and incident.notified_at is None


def test_a_claim_left_by_a_dead_sender_is_retried_after_the_lease(
    network, hook, receiver, worker, clock
):
    from resourcemonitor.alerts.management.commands.alerts import SEND_LEASE_S

    change(network.server, Status.DOWN, clock)
    clock.advance(31)
    worker.process_one_event()
    worker.notify_due_incidents()
    # A sender claimed the row and died before sending.
    Notification.objects.update(status=Delivery.SENDING, claimed_at=clock.now, attempts=1)
    clock.advance(SEND_LEASE_S - 1)
    assert worker.send_one_notification() is False
    clock.advance(2)
    assert worker.send_one_notification() is True
    row = Notification.objects.get()
    assert row.status == Delivery.SENT and row.attempts == 2
    assert len(receiver.posts) == 1


def test_bad_flag_is_a_one_line_error():
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "resourcemonitor", "alerts", "--sleep", "-1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "CommandError: --sleep must be from 0.01 to 60 seconds (got -1.0)"
    ]


def test_backlog_old_down_already_recovered_pages_nobody(network, hook, receiver, worker, clock):
    change(network.server, Status.DOWN, clock)
    clock.advance(5)
    change(network.server, Status.UP, clock)  # both still unprocessed
    clock.advance(3600)
    worker.process_one_event()  # only the old "down" so far
    worker.notify_due_incidents()
    worker.send_one_notification()
    assert receiver.posts == []
    for _ in range(3):
        run(worker, clock, 61)
    assert receiver.posts == []
    assert Incident.objects.get().resolved_at is not None


def test_reboot_events_with_unchanged_status_never_page(network, hook, receiver, worker, clock):
    """An SNMP reboot is recorded as up→up (or down→down): information, not a problem."""
    n = network
    all_up(n.server, clock=clock)
    Event.objects.create(
        device=n.server,
        at=clock.now,
        from_status=Status.UP,
        to_status=Status.UP,
        message="rebooted (sysUpTime went back)",
    )
    run(worker, clock, 120)
    assert receiver.posts == []
    assert not Incident.objects.filter(device=n.server).exists()

    # While down, a reboot lands on the open incident's timeline, with no second page.
    change(n.server, Status.DOWN, clock)
    run(worker, clock, 31)
    assert len(receiver.posts) == 1
    Event.objects.create(
        device=n.server,
        at=clock.now,
        from_status=Status.DOWN,
        to_status=Status.DOWN,
        message="rebooted (sysUpTime went back)",
    )
    run(worker, clock, 31)
    assert len(receiver.posts) == 1
    incident = Incident.objects.get(device=n.server)
    assert incident.updates.filter(message__startswith="rebooted").exists()


def test_count_descendants_walks_the_subtree_and_survives_a_cycle(network):
    from resourcemonitor.alerts.services import count_descendants

    # core → dist → access → phone, pc; the Paris server is nobody's child.
    assert count_descendants(device_id=network.core.pk) == 4
    assert count_descendants(device_id=network.access.pk) == 2
    assert count_descendants(device_id=network.phone.pk) == 0
    # Validation refuses cycles; a raw update can still make one. The walk must end.
    Device.objects.filter(pk=network.core.pk).update(parent=network.access)
    assert count_descendants(device_id=network.dist.pk) == 4
