"""The accounting rules of docs/slo.md, with hand-computed expectations."""

from __future__ import annotations

from datetime import timedelta

import pytest

from resourcemonitor.inventory.models import Device, MaintenanceWindow, Recurrence
from resourcemonitor.monitoring import slo
from resourcemonitor.monitoring.models import SloTarget
from tests.unit.slo.helpers import at, created, write

NOW = at("2026-03-10 12:00:30")  # the current minute is 12:00: windows end at 12:00


@pytest.fixture
def device(network) -> Device:
    """lon-core-1, checked every 60 s, in the inventory since 1 February."""
    core = network.core
    Device.objects.filter(pk=core.pk).update(check_interval_s=60.0)
    created(core, at("2026-02-01 00:00"))
    core.refresh_from_db()
    return core


def minutes(start: str, count: int, ok: bool = True) -> list:
    first = at(start)
    return [(first + timedelta(minutes=i), ok) for i in range(count)]


def item(window: str, now=NOW, device_id: int | None = None) -> dict:
    report = slo.device_report(window, now, device_ids=[device_id] if device_id else None)
    return report.items[0]


def test_no_data_at_all_is_not_measured(device):
    figures = item("24h", device_id=device.pk)
    assert figures["checks"] == 0
    assert figures["sli"] is None
    assert figures["coverage"] == 0.0
    assert figures["budget_remaining_pct"] is None
    assert figures["budget_remaining_min"] is None
    assert all(rate is None for rate in figures["burn_rates"].values())
    rates = slo.burn_rates(device_ids=[device.pk], windows=[timedelta(hours=1)], now=NOW)
    assert rates == {device.pk: {timedelta(hours=1): None}}


def test_window_that_starts_before_the_first_sample(device):
    # 60 checks in the last hour (11:00 … 11:59), 3 failed; nothing before.
    write(device, minutes("2026-03-10 11:00", 57) + minutes("2026-03-10 11:57", 3, ok=False))
    figures = item("24h", device_id=device.pk)
    assert figures["checks"] == 60
    assert figures["failed"] == 3
    assert figures["sli"] == pytest.approx(95.0)
    # 24 h expect 1,440 checks at 60 s: 60 arrived.
    assert figures["coverage"] == pytest.approx(100 * 60 / 1440, abs=1e-3)
    # Budget: 0.1 % of 60 checks = 0.06 checks; 3 failed → 100 × (1 − 3/0.06) = −4,900 %.
    assert figures["budget_checks"] == pytest.approx(0.06)
    assert figures["budget_remaining_pct"] == pytest.approx(-4900.0)
    assert figures["budget_remaining_min"] == pytest.approx(0.06 - 3)


def test_time_before_the_device_existed_is_not_expected(device):
    created(device, at("2026-03-10 11:00"))
    write(device, minutes("2026-03-10 11:00", 60))
    figures = item("30d", device_id=device.pk)
    assert figures["sli"] == 100.0
    assert figures["coverage"] == 100.0


def test_maintenance_in_the_middle_is_excluded(device):
    # 09:00–11:59: 180 checks; the middle hour 10:00–10:59 all failed, in maintenance.
    write(device, minutes("2026-03-10 09:00", 60))
    write(device, minutes("2026-03-10 10:00", 60, ok=False))
    write(device, minutes("2026-03-10 11:00", 60))
    window = MaintenanceWindow.objects.create(
        name="upgrade", starts_at=at("2026-03-10 10:00"), ends_at=at("2026-03-10 11:00")
    )
    window.devices.add(device)
    created(device, at("2026-03-10 09:00"))
    figures = item("24h", device_id=device.pk)
    assert figures["checks"] == 120
    assert figures["failed"] == 0
    assert figures["sli"] == 100.0
    # Valid time is 3 h − 1 h = 120 minutes: coverage 100 %.
    assert figures["coverage"] == 100.0


def test_maintenance_counts_whole_minutes_whose_start_is_inside(device):
    # A window 10:00:30–10:02:30 excludes the buckets starting 10:01 and 10:02 only.
    write(device, minutes("2026-03-10 10:00", 4, ok=False))
    window = MaintenanceWindow.objects.create(
        name="blip", starts_at=at("2026-03-10 10:00:30"), ends_at=at("2026-03-10 10:02:30")
    )
    window.devices.add(device)
    assert item("24h", device_id=device.pk)["failed"] == 2


def test_recurring_maintenance_by_site(device, network):
    # Every day 02:00–03:00 at London; failures at 02:xx on three days are excluded,
    # the one at 04:00 is not.
    rows = []
    for day in ("2026-03-07", "2026-03-08", "2026-03-09"):
        rows += minutes(f"{day} 02:00", 60, ok=False)
    write(device, rows + minutes("2026-03-09 04:00", 1, ok=False))
    window = MaintenanceWindow.objects.create(
        name="nightly",
        starts_at=at("2026-01-01 02:00"),
        ends_at=at("2026-01-01 03:00"),
        recurrence=Recurrence.DAILY,
    )
    window.sites.add(network.london)
    figures = item("7d", device_id=device.pk)
    assert figures["checks"] == 1
    assert figures["failed"] == 1


def test_unknown_for_half_the_window(device):
    # The 1 h window is 11:00–12:00; checks arrive 11:00–11:29 only (then unknown).
    write(device, minutes("2026-03-10 11:00", 29) + minutes("2026-03-10 11:29", 1, ok=False))
    figures = item("1h", device_id=device.pk)
    assert figures["checks"] == 30
    assert figures["coverage"] == 50.0
    assert figures["sli"] == pytest.approx(100 * 29 / 30)


@pytest.mark.parametrize(
    ("window", "checks", "failed"),
    [("month", 30, 1), ("24h", 60, 2), ("30d", 60, 2)],
)
def test_calendar_month_starts_at_midnight_utc(device, window, checks, failed):
    now = at("2026-03-01 00:30:10")
    # 28 Feb 23:30–23:59 (one failure at 23:59), 1 Mar 00:00–00:29 (one failure at 00:29);
    # the window ends at 00:30 (the current minute is not complete yet).
    write(device, minutes("2026-02-28 23:30", 29) + minutes("2026-02-28 23:59", 1, ok=False))
    write(device, minutes("2026-03-01 00:00", 29) + minutes("2026-03-01 00:29", 1, ok=False))
    write(device, minutes("2026-03-01 00:30", 1, ok=False))
    figures = item(window, now=now, device_id=device.pk)
    assert (figures["checks"], figures["failed"]) == (checks, failed)


def test_window_edges_inside_an_hour_read_minutes(device):
    # 30 d window ending 12:00 starts 8 Feb 12:00. Checks at 11:59 and 12:00 that day.
    write(device, [(at("2026-02-08 11:59"), False), (at("2026-02-08 12:00"), True)])
    write(device, [(at("2026-02-08 12:45"), False)])
    figures = item("30d", device_id=device.pk)
    assert (figures["checks"], figures["failed"]) == (2, 1)


def test_a_check_counts_once_even_when_written_twice(device):
    rows = minutes("2026-03-10 11:50", 5, ok=False)
    write(device, rows)
    write(device, rows)  # a spool replay
    assert item("1h", device_id=device.pk)["checks"] == 5


def test_burn_rates_need_a_minimum_of_failed_checks_in_short_windows(device, settings):
    settings.RESMON_SLO_BURN_MIN_FAILED = 3
    write(device, minutes("2026-03-10 11:55", 4) + minutes("2026-03-10 11:59", 1, ok=False))
    five, day = timedelta(minutes=5), timedelta(days=1)
    rates = slo.burn_rates(device_ids=[device.pk], windows=[five, day], now=NOW)[device.pk]
    # One lost probe in 5 minutes would be a 200x burn: below the minimum it reads 0.
    assert rates[five] == 0.0
    # The 1 d window is long: 1 failed of 5 / 0.001 = 200.
    assert rates[day] == pytest.approx(200.0)
    write(device, minutes("2026-03-10 11:57:30", 2, ok=False))
    rates = slo.burn_rates(device_ids=[device.pk], windows=[five], now=NOW)[device.pk]
    # 11:55–12:00 now holds 4 ok, 3 failed: (3/7) / 0.001 ≈ 428.6.
    assert rates[five] == pytest.approx(3 / 7 / 0.001)


def test_projected_exhaustion_at_the_current_burn(device):
    # 24 h window: 1,000 ok checks earlier, then the last hour 57 ok + 3 failed.
    rows = [(at("2026-03-09 13:00") + timedelta(seconds=60 * i), True) for i in range(1000)]
    write(device, rows)
    figures = item("24h", device_id=device.pk)
    assert figures["exhausted_in_s"] is None  # not burning
    write(device, minutes("2026-03-10 11:57", 3, ok=False))
    figures = item("24h", device_id=device.pk)
    checks = 1003
    remaining = 1 - 3 / (0.001 * checks)
    assert remaining < 0
    assert figures["exhausted_in_s"] == 0.0


def test_budget_figures_by_hand():
    counts = slo.Counts(checks=10_000, ok=9_995)
    figures = slo.budget_figures(
        counts, 99.9, valid_s=30 * 86400, interval_s=259.2, window_s=30 * 86400, current_burn=2.0
    )
    assert figures["sli"] == pytest.approx(99.95)
    assert figures["coverage"] == 100.0
    assert figures["budget_checks"] == pytest.approx(10.0)
    assert figures["budget_remaining_pct"] == pytest.approx(50.0)
    # 5 checks of budget left x 259.2 s = 21.6 minutes.
    assert figures["budget_remaining_min"] == pytest.approx(21.6)
    # Half the budget left, burning twice the sustainable rate: 0.5 x 30 d / 2 = 7.5 d.
    assert figures["exhausted_in_s"] == pytest.approx(7.5 * 86400)


def test_targets_per_kind_site_and_tag(network):
    SloTarget.objects.create(scope="kind", kind="switch", target=99.0)
    SloTarget.objects.create(scope="site", object_id=network.paris.pk, target=98.0)
    voice = network.phone.tags.get()
    SloTarget.objects.create(scope="tag", object_id=voice.pk, target=99.5)
    Device.objects.filter(pk=network.pc.pk).update(slo_target=95.0)
    targets = {d.name: d.target for d in slo.load_devices()}
    assert targets == {
        "lon-core-1": 99.9,
        "lon-dist-1": 99.0,
        "lon-acc-1": 99.0,
        "lon-phone-1": 99.5,
        "lon-pc-1": 95.0,
        "par-srv-1": 98.0,
    }


def test_group_report_counts_every_check_of_the_group(network):
    for d in (network.dist, network.access):
        Device.objects.filter(pk=d.pk).update(check_interval_s=60.0)
        created(d, at("2026-03-10 11:00"))
    write(network.dist, minutes("2026-03-10 11:00", 60))
    write(network.access, minutes("2026-03-10 11:00", 58) + minutes("2026-03-10 11:58", 2, False))
    write(network.server, minutes("2026-03-10 11:00", 60, ok=False))
    group = slo.group_report("site:London,kind:switch", "24h", NOW, target=99.5)
    assert group["devices"] == 2
    assert (group["checks"], group["failed"]) == (120, 2)
    assert group["sli"] == pytest.approx(100 * 118 / 120)
    assert group["coverage"] == 100.0
    assert group["budget_checks"] == pytest.approx(0.6)


def test_group_latency_slo_from_the_histogram(network):
    Device.objects.filter(pk=network.server.pk).update(check_interval_s=60.0)
    write(network.server, minutes("2026-03-10 11:00", 30), latency_ms=30.0)
    write(network.server, minutes("2026-03-10 11:30", 10), latency_ms=300.0)
    group = slo.group_report(
        "site:Paris", "1h", NOW, target=99.0, latency_threshold_ms=50, latency_target=90.0
    )
    assert group["latency_sli"] == pytest.approx(75.0)


@pytest.mark.parametrize("text", ["", "site", "colour:red", "site:a,site:b", "kind:"])
def test_bad_group_selectors(text):
    with pytest.raises(slo.GroupError):
        slo.parse_group(text)


def test_unknown_window():
    with pytest.raises(ValueError, match="unknown window"):
        slo.window_bounds("2w", NOW)


def test_history_reads_the_next_tier_past_a_retention():
    now_s = int(NOW.timestamp())
    assert slo.history_source(30, now_s - 3600, now_s) == 0
    assert slo.history_source(30, now_s - 8 * 86400, now_s) == 60
    assert slo.history_source(600, now_s - 30 * 86400, now_s) == 60
    assert slo.history_source(600, now_s - 36 * 86400, now_s) == 3600
    assert slo.history_source(7200, now_s - 3600, now_s) == 3600


def test_history_points_by_hand(device):
    # 11:00–11:59: 60 checks, every 6th failed, 5 ms; 10-minute points from the minute tier.
    write(device, [(at("2026-03-10 11:00") + timedelta(minutes=i), i % 6 != 0) for i in range(60)])
    start_s, end_s = int(at("2026-03-10 11:00").timestamp()), int(NOW.timestamp())
    history = slo.device_history(device.pk, start_s, end_s, 600)
    assert history["source"] in {"1m", "1h"}  # NOW is in the past: retention decides
    points = slo.device_history(device.pk, start_s, end_s, 3600)["items"]
    assert [(p["checks"], p["ok"]) for p in points] == [(60, 50)]
    assert points[0]["latency_avg_ms"] == pytest.approx(5.0)
    assert points[0]["latency_p95_ms"] == 5.0  # the bucket "up to 5 ms" (bounds inclusive)
