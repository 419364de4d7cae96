"""Retention per tier, and pruning that never changes a figure the next tier answers."""

from __future__ import annotations

from datetime import timedelta

from django.core.management import call_command
from django.db import connection

from resourcemonitor.inventory.models import Device
from resourcemonitor.monitoring import slo
from resourcemonitor.monitoring.metricstore import rows_for, write_metrics
from resourcemonitor.monitoring.retention import cutoffs, prune
from tests.unit.slo.helpers import at, created, ms, write

NOW = at("2026-06-30 12:20:10")


def _counts() -> dict[tuple[str, int], int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM monitoring_sample")
        raw = cursor.fetchone()[0]
        cursor.execute("SELECT resolution, COUNT(*) FROM monitoring_rollup GROUP BY resolution")
        tiers = dict(cursor.fetchall())
    return {
        ("raw", 0): raw,
        ("1m", 60): tiers.get(60, 0),
        ("1h", 3600): tiers.get(3600, 0),
        ("1d", 86400): tiers.get(86400, 0),
    }


def test_each_tier_keeps_its_retention(network):
    device = network.core
    # One check at each age: 1 d, 8 d, 36 d, 401 d.
    ages = [timedelta(days=d) for d in (1, 8, 36, 401)]
    write(device, [(NOW - age, True) for age in ages])
    assert _counts() == {("raw", 0): 4, ("1m", 60): 4, ("1h", 3600): 4, ("1d", 86400): 4}
    report = prune(now=NOW)
    # Raw keeps 7 d (1 left), 1-minute 35 d (2 left), 1-hour and 1-day 400 d (3 left).
    assert (report.raw, report.minute, report.hour, report.day) == (3, 2, 1, 1)
    assert _counts() == {("raw", 0): 1, ("1m", 60): 2, ("1h", 3600): 3, ("1d", 86400): 3}
    assert prune(now=NOW) == type(report)(0, 0, 0, 0)  # idempotent


def test_a_day_row_goes_only_with_the_last_of_its_hours(network):
    device = network.core
    hour_s = cutoffs(NOW)[2]
    # One check in the last hour before the hour cutoff, one in the first hour after it:
    # the same day. The day row stays while any of its hours does.
    write(device, [(at("1970-01-01") + timedelta(seconds=s), True) for s in (hour_s - 1800,)])
    write(device, [(at("1970-01-01") + timedelta(seconds=s), True) for s in (hour_s + 1800,)])
    assert hour_s % 86400 not in (0, 84600), "both hours in one day"
    report = prune(now=NOW)
    assert (report.hour, report.day) == (1, 0)
    assert _counts()[("1d", 86400)] == 1


def test_cutoffs_follow_the_settings(settings):
    settings.RESMON_RETENTION_RAW_DAYS = 1
    raw_ms, minute_s, hour_s = cutoffs(NOW)
    assert raw_ms == int((NOW - timedelta(days=1)).timestamp()) * 1000
    assert minute_s % 60 == 0 and hour_s % 3600 == 0


def test_pruning_changes_no_slo_figure(network):
    device = network.core
    Device.objects.filter(pk=device.pk).update(check_interval_s=600.0)
    created(device, NOW - timedelta(days=60))
    # Every 10 minutes for 45 days, one in seven failing.
    start = NOW - timedelta(days=45)
    rows = [(start + timedelta(minutes=10 * i), i % 7 != 0) for i in range(45 * 144)]
    write(device, rows)
    before = {w: slo.device_report(w, NOW, device_ids=[device.pk]).items for w in slo.WINDOW_NAMES}
    pruned = prune(now=NOW)
    assert pruned.raw > 0 and pruned.minute > 0
    after = {w: slo.device_report(w, NOW, device_ids=[device.pk]).items for w in slo.WINDOW_NAMES}
    assert after == before
    # The window is 12:20 on 31 May to 12:20 on 30 June: 12:20:10 … 12:10:10, every 10 min.
    assert before["30d"][0]["checks"] == 30 * 144


def test_prune_command(network, capsys):
    write(network.core, [(at("2020-01-01 00:00"), True)])
    write_metrics(rows_for(ms(at("2020-01-01 00:00")), network.core.pk, {"cpu_percent": 5.0}))
    call_command("prune")
    assert (
        "pruned 1 raw samples, 1 1-minute, 1 1-hour and 1 1-day rollups, 1 device metrics"
        in capsys.readouterr().out
    )
